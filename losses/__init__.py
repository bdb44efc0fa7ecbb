"""lossbench losses: ``build_loss(name, **kw)``, ``available()``; the contract is in docs/losses.md.

Importing a module registers its losses, and every public module of this package is imported here,
so a new loss module needs no edit of this file.

Map of the package:

- the losses: ``distribution`` (ce, weighted_ce, bce, focal, topk_ce), ``region`` (dice, jaccard,
  tversky, focal_tversky, generalized_dice, mcc), ``unified_focal``, ``lovasz``, ``cldice``,
  ``composite`` (dice_ce, dice_focal, any weighted sum), ``box`` (the box-regression losses);
- ``registry``: ``register``, ``available``, ``build_loss``;
- ``base``: ``SegmentationLoss``, the shared keywords, class weights and reductions, with
  ``options`` (the shared keywords' names and defaults) and ``class_weights`` (``"auto"`` schemes);
- ``inputs``: ``SegInput``, the validated, flattened ``(prediction, target)`` pair every
  segmentation loss computes from (mode handling, ignore masks, cached softmax, per-class sums);
- ``validation``: the shape and value checks ``SegInput`` runs on prediction and target;
- ``fused``: the hand-written autograd nodes behind ``SegInput`` and ce / bce (fewer passes and
  saved tensors than torch's compositions; twice differentiable).
"""
import importlib
import pkgutil

from losses.registry import available, build_loss, get_loss_class, loss_task, register

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["available", "build_loss", "get_loss_class", "loss_task", "register"]
