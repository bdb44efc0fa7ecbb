"""Region (overlap) losses: ``dice``, ``jaccard``, ``tversky``, ``focal_tversky``,
``generalized_dice``, ``mcc``.

All start from the soft per-sample, per-class sums over non-ignored positions
``TP = sum p t``, ``FP = sum p (1-t)``, ``FN = sum (1-p) t`` (:meth:`SegInput.class_stats`; no
one-hot target is built). Conventions shared by this module:

- ``smooth`` is added to numerator and denominator; a class empty in both prediction and target
  scores 1 (loss 0) also with ``smooth=0``, never NaN.
- ``batch=True`` sums the statistics over the batch before the ratio (per-class losses ``(C,)``
  instead of ``(N, C)``).
- ``squared=True`` uses ``sum p^2`` and ``sum t^2`` in place of ``sum p`` and ``sum t``
  (Milletari et al. 2016).
- ``log_loss=True`` turns score ``s`` into ``-log(s)`` instead of ``1 - s``.
- classes absent from the target still cost their predicted mass (the score is
  ``smooth / (sum p + smooth)``): a false-positive class is penalised. smp instead zeroes the loss
  of classes absent from the target; MONAI agrees with us.
- ``reduction="none"`` returns ``(N, C)`` (``(C,)`` with ``batch=True``), class weights applied;
  ``mean`` is the class-weighted mean ``sum_c w_c L_c / sum_c w_c`` (averaged over samples).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from losses._common import SegInput, check_choice, check_range, safe_ratio
from losses.base import ClassWeights, SegmentationLoss
from losses.registry import register


class RegionLoss(SegmentationLoss):
    """Shared machinery of the overlap losses; subclasses define :meth:`score`."""

    uses = frozenset({"class_stats"})

    def __init__(self, mode: str = "multiclass", from_logits: bool = True,
                 ignore_index: int | None = None, class_weights: ClassWeights = None,
                 include_background: bool = True, reduction: str = "mean", smooth: float = 1e-5,
                 batch: bool = False, squared: bool = False, log_loss: bool = False,
                 weight_scheme: str = "inverse", beta: float = 0.9999) -> None:
        super().__init__(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                         class_weights=class_weights, include_background=include_background,
                         reduction=reduction, weight_scheme=weight_scheme, beta=beta)
        check_range("smooth", smooth, 0.0, math.inf)
        self.smooth = float(smooth)
        self.batch = bool(batch)
        self.squared = bool(squared)
        self.log_loss = bool(log_loss)

    def stats(self, inp: SegInput) -> tuple[Tensor, Tensor, Tensor]:
        tp, sum_p, sum_t = inp.class_stats(self.squared)
        if self.batch:
            return tp.sum(0), sum_p.sum(0), sum_t.sum(0)
        return tp, sum_p, sum_t

    def score(self, tp: Tensor, sum_p: Tensor, sum_t: Tensor) -> Tensor:
        raise NotImplementedError

    def score_to_loss(self, score: Tensor) -> Tensor:
        return -score.clamp_min(1e-7).log() if self.log_loss else 1.0 - score

    def compute(self, inp: SegInput) -> Tensor:
        per_class = self.score_to_loss(self.score(*self.stats(inp)))
        return self.reduce_classes(per_class, inp)


@register("dice")
class DiceLoss(RegionLoss):
    """Soft Dice loss ``1 - (2 TP + smooth) / (sum p + sum t + smooth)`` per sample and class
    (Milletari et al. 2016, V-Net; Sudre et al. 2017). Conventions in the module docstring.
    Defaults: ``smooth=1e-5`` (MONAI's), ``batch=False``, ``squared=False``, ``log_loss=False``.
    """

    def score(self, tp: Tensor, sum_p: Tensor, sum_t: Tensor) -> Tensor:
        return safe_ratio(2.0 * tp + self.smooth, sum_p + sum_t + self.smooth)


@register("jaccard")
class JaccardLoss(RegionLoss):
    """Soft Jaccard (IoU) loss ``1 - (TP + smooth) / (sum p + sum t - TP + smooth)``
    (Rahman & Wang 2016). Conventions in the module docstring. Defaults as ``dice``.
    """

    def score(self, tp: Tensor, sum_p: Tensor, sum_t: Tensor) -> Tensor:
        return safe_ratio(tp + self.smooth, sum_p + sum_t - tp + self.smooth)


@register("tversky")
class TverskyLoss(RegionLoss):
    """Tversky loss ``1 - (TP + smooth) / (TP + alpha FP + beta FN + smooth)`` (Salehi et al. 2017).

    ``alpha`` weights false positives, ``beta`` false negatives (both in [0, 1]; defaults 0.3 / 0.7,
    favouring recall on small structures); ``alpha = beta = 0.5`` is Dice, ``alpha = beta = 1``
    Jaccard. ``FP = sum p - TP``, ``FN = sum t - TP`` (squared sums with ``squared=True``).
    """

    def __init__(self, mode: str = "multiclass", from_logits: bool = True,
                 ignore_index: int | None = None, alpha: float = 0.3, beta: float = 0.7,
                 class_weights: ClassWeights = None, include_background: bool = True,
                 reduction: str = "mean", smooth: float = 1e-5, batch: bool = False,
                 squared: bool = False, log_loss: bool = False, weight_scheme: str = "inverse",
                 weight_beta: float = 0.9999) -> None:
        super().__init__(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                         class_weights=class_weights, include_background=include_background,
                         reduction=reduction, smooth=smooth, batch=batch, squared=squared,
                         log_loss=log_loss, weight_scheme=weight_scheme, beta=weight_beta)
        check_range("alpha", alpha, 0.0, 1.0)
        check_range("beta", beta, 0.0, 1.0)
        self.alpha = float(alpha)
        self.tversky_beta = float(beta)

    def score(self, tp: Tensor, sum_p: Tensor, sum_t: Tensor) -> Tensor:
        fp, fn = sum_p - tp, sum_t - tp
        return safe_ratio(tp + self.smooth, tp + self.alpha * fp + self.tversky_beta * fn + self.smooth)


@register("focal_tversky")
class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss ``(1 - TI)^gamma`` with TI the Tversky index (Abraham & Khan 2019).

    ``gamma`` is the exponent itself (default 0.75, the paper's ``1/gamma`` with gamma = 4/3),
    applied to each class before the class mean as in the paper; smp's ``TverskyLoss(gamma=...)``
    raises the class *mean* instead (equal for one class). ``gamma < 1`` raises the loss of
    nearly-correct classes, focusing on hard, small ones. ``alpha``/``beta`` as ``tversky``.
    """

    def __init__(self, mode: str = "multiclass", from_logits: bool = True,
                 ignore_index: int | None = None, alpha: float = 0.3, beta: float = 0.7,
                 gamma: float = 0.75, class_weights: ClassWeights = None,
                 include_background: bool = True, reduction: str = "mean", smooth: float = 1e-5,
                 batch: bool = False, squared: bool = False, log_loss: bool = False,
                 weight_scheme: str = "inverse", weight_beta: float = 0.9999) -> None:
        super().__init__(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                         alpha=alpha, beta=beta, class_weights=class_weights,
                         include_background=include_background, reduction=reduction, smooth=smooth,
                         batch=batch, squared=squared, log_loss=log_loss,
                         weight_scheme=weight_scheme, weight_beta=weight_beta)
        check_range("gamma", gamma, 0.0, math.inf, low_open=True)
        self.gamma = float(gamma)

    def score_to_loss(self, score: Tensor) -> Tensor:
        # the clamp keeps the gradient of x**gamma (gamma < 1) finite at a perfect score
        return super().score_to_loss(score).clamp_min(1e-12).pow(self.gamma)


GD_WEIGHT_TYPES = ("square", "simple", "uniform")


@register("generalized_dice")
class GeneralizedDiceLoss(RegionLoss):
    """Generalized Dice loss (Sudre et al. 2017), pooling classes with weights ``w_c``:

    ``1 - (2 sum_c w_c TP_c + smooth) / (sum_c w_c (sum p_c + sum t_c) + smooth)``

    ``weight_type``: ``square`` ``w_c = 1/(sum t_c)^2`` (default), ``simple`` ``1/sum t_c``,
    ``uniform`` ``1`` (``sum t_c^2`` with ``squared=True``; equal for hard targets). A class absent from the target (infinite weight) gets the largest finite
    weight of its sample, as MONAI. ``reduction="none"`` gives ``(N,)``, or a 0-dim value with
    ``batch=True``. Per-class ``class_weights`` do not apply (the weights are the method).
    """

    def __init__(self, mode: str = "multiclass", from_logits: bool = True,
                 ignore_index: int | None = None, weight_type: str = "square",
                 include_background: bool = True, reduction: str = "mean", smooth: float = 1e-5,
                 batch: bool = False, squared: bool = False, log_loss: bool = False) -> None:
        super().__init__(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                         include_background=include_background, reduction=reduction,
                         smooth=smooth, batch=batch, squared=squared, log_loss=log_loss)
        check_choice("weight_type", weight_type, GD_WEIGHT_TYPES)
        self.weight_type = weight_type

    def compute(self, inp: SegInput) -> Tensor:
        tp, sum_p, sum_t = self.stats(inp)
        if not self.include_background and inp.mode != "binary":
            tp, sum_p, sum_t = tp[..., 1:], sum_p[..., 1:], sum_t[..., 1:]
        w = self._class_weights(sum_t)
        numerator = 2.0 * (w * tp).sum(-1) + self.smooth
        denominator = (w * (sum_p + sum_t)).sum(-1) + self.smooth
        loss = self.score_to_loss(safe_ratio(numerator, denominator))
        if self.reduction == "none":
            return loss
        return loss.sum() if self.reduction == "sum" else loss.mean()

    def _class_weights(self, sum_t: Tensor) -> Tensor:
        if self.weight_type == "uniform":
            return torch.ones_like(sum_t)
        w = sum_t.reciprocal()
        if self.weight_type == "square":
            w = w * w
        infinite = torch.isinf(w)
        w = w.masked_fill(infinite, 0.0)
        largest = w.amax(-1, keepdim=True) if w.numel() else w
        return torch.where(infinite, largest.expand_as(w), w)


@register("mcc")
class MCCLoss(RegionLoss):
    """Matthews correlation loss ``1 - MCC`` per class (one-vs-rest; Abhishek & Hamarneh 2021):

    ``MCC = (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))`` with soft counts and
    ``TN = n_valid - TP - FP - FN``; ``smooth`` is added to each of the four counts (smp adds 1e-5).
    MCC is undefined when a factor of the denominator is 0 (e.g. a class absent from the target):
    it then scores 1 (loss 0), never NaN. Defaults: ``batch=True`` (counts pooled over the batch,
    as smp's ``MCCLoss``), ``smooth=0``.
    """

    def __init__(self, mode: str = "multiclass", from_logits: bool = True,
                 ignore_index: int | None = None, class_weights: ClassWeights = None,
                 include_background: bool = True, reduction: str = "mean", smooth: float = 0.0,
                 batch: bool = True, weight_scheme: str = "inverse", beta: float = 0.9999) -> None:
        super().__init__(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                         class_weights=class_weights, include_background=include_background,
                         reduction=reduction, smooth=smooth, batch=batch,
                         weight_scheme=weight_scheme, beta=beta)

    def compute(self, inp: SegInput) -> Tensor:
        tp, sum_p, sum_t = inp.class_stats(False)
        n = inp.valid_counts()
        if self.batch:
            tp, sum_p, sum_t, n = tp.sum(0), sum_p.sum(0), sum_t.sum(0), n.sum(0)
        fp, fn = sum_p - tp, sum_t - tp
        tn = n - sum_p - sum_t + tp
        tp, fp, fn, tn = (x + self.smooth for x in (tp, fp, fn, tn))
        product = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
        defined = product > 0
        # sqrt only of positive values, so the undefined case has no infinite gradient
        root = torch.where(defined, product, torch.ones_like(product)).sqrt()
        mcc = torch.where(defined, (tp * tn - fp * fn) / root, torch.ones_like(product))
        return self.reduce_classes(1.0 - mcc, inp)
