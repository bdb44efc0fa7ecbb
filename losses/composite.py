"""Weighted sums of registered segmentation losses: ``dice_ce``, ``dice_focal`` and any user mix.

YAML::

    _target_: losses.composite.CompositeLoss
    terms:
      dice: {weight: 1.0}
      focal: {weight: 0.5, gamma: 2.0}
      dice_fg: {loss: dice, weight: 0.2, include_background: false}   # a label for a 2nd dice
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from common.checks import check_choice
from losses.base import SegmentationLoss
from losses.options import CLASS_WEIGHTING, COMMON
from losses.registry import get_loss_class, loss_task, register


@register("composite")
class CompositeLoss(SegmentationLoss):
    """``L = sum_k weight_k * L_k`` over the configured terms, each a registered segmentation loss.

    One forward validates the input and computes the softmax / log-softmax (sigmoid in binary
    modes) once, planned from what all terms read, and shares it with every term. After each
    forward ``last_terms`` holds every term's detached, unweighted value.

    Args:
        terms: term name -> its keyword arguments plus ``weight`` (default 1.0) and optional
            ``loss`` (the registered name; defaults to the term name). Without ``terms``:
            ``dice + ce``.
        **shared: ``mode``, ``from_logits``, ``ignore_index`` and ``reduction`` (``mean`` or
            ``sum``: per-term shapes of ``none`` differ) go to every term; ``class_weights``,
            ``weight_scheme`` and ``class_weight_beta`` to every term that takes class weights,
            unless the term sets its own.

    Raises:
        ValueError: an unknown or non-segmentation term, a negative weight, ``reduction="none"``,
            a keyword a term does not accept (naming the term's loss) or one the composite does
            not accept.

    Example::

        loss = CompositeLoss(terms={"dice": {"weight": 1.0}, "focal": {"weight": 0.5, "gamma": 2}})
        value = loss(logits, target); loss.last_terms  # {"dice": ..., "focal": ...}
    """

    shared_keywords = COMMON + CLASS_WEIGHTING
    default_terms: Mapping[str, Mapping[str, object]] = {"dice": {"weight": 1.0}, "ce": {"weight": 1.0}}

    def __init__(self, *, terms: Mapping[str, Mapping[str, object]] | None = None,
                 **shared: object) -> None:
        super().__init__(**shared)
        check_choice("reduction", self.reduction, ("mean", "sum"))
        terms = self.default_terms if terms is None else terms
        if not isinstance(terms, Mapping) or not terms:
            raise ValueError(f"terms must be a non-empty mapping of term name -> options, got {terms!r}")
        common = dict(mode=self.mode, from_logits=self.from_logits, ignore_index=self.ignore_index,
                      reduction=self.reduction)
        weighting = dict(weight_scheme=self.weight_scheme, class_weight_beta=self.class_weight_beta,
                         class_weights=self.class_weights.tolist() if self.class_weights is not None
                         else ("auto" if self._auto_weights else None))
        self.terms = nn.ModuleDict()
        self.term_weights: dict[str, float] = {}
        for name, options in terms.items():
            options = dict(options or {})
            weight = float(options.pop("weight", 1.0))
            if weight < 0:
                raise ValueError(f"terms.{name}.weight must be >= 0, got {weight}")
            loss_name = str(options.pop("loss", name))
            if loss_name in ("composite",) or loss_task(loss_name) != "segmentation":
                raise ValueError(f"terms.{name}: {loss_name!r} is not a segmentation loss term")
            term_class = get_loss_class(loss_name)
            options.update(common)
            if weighting["class_weights"] is not None and "class_weights" not in options \
                    and term_class.accepts("class_weights"):
                options = {**weighting, **options}
            try:
                self.terms[name] = term_class(**options)
            except ValueError as error:
                raise ValueError(f"terms.{name}: {error}") from None
            self.term_weights[name] = weight
        self.last_terms: dict[str, Tensor] = {}

    @property
    def requires_class_counts(self) -> bool:
        return any(getattr(t, "requires_class_counts", False) for t in self.terms.values()) or \
            super().requires_class_counts

    def set_class_counts(self, counts: Tensor) -> None:
        super().set_class_counts(counts)
        for term in self.terms.values():
            if getattr(term, "requires_class_counts", False):
                term.set_class_counts(counts)

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        with torch.autocast(device_type=prediction.device.type, enabled=False):
            plan = frozenset().union(*(term.uses for term in self.terms.values()))
            inp = self.prepare(prediction, target, plan)
            total = None
            values: dict[str, Tensor] = {}
            for name, term in self.terms.items():
                value = term.compute(inp)
                values[name] = value.detach()
                weighted = self.term_weights[name] * value
                total = weighted if total is None else total + weighted
            self.last_terms = values
            return total


@register("dice_ce")
class DiceCELoss(CompositeLoss):
    """``1.0 * dice + 1.0 * ce`` by default (nnU-Net's loss; Isensee et al. 2021).

    Args:
        terms, **shared: as :class:`CompositeLoss`; ``terms`` defaults to the pair above.

    Raises:
        ValueError: as :class:`CompositeLoss`.

    Example::

        loss = DiceCELoss(mode="multiclass", ignore_index=255)
        value = loss(logits, target)
    """

    default_terms = {"dice": {"weight": 1.0}, "ce": {"weight": 1.0}}


@register("dice_focal")
class DiceFocalLoss(CompositeLoss):
    """``1.0 * dice + 1.0 * focal(gamma=2)`` by default (Zhu et al. 2019, AnatomyNet).

    Args:
        terms, **shared: as :class:`CompositeLoss`; ``terms`` defaults to the pair above.

    Raises:
        ValueError: as :class:`CompositeLoss`.

    Example::

        loss = DiceFocalLoss(mode="binary", terms={"dice": {}, "focal": {"weight": 0.5}})
        value = loss(logits, target)
    """

    default_terms = {"dice": {"weight": 1.0}, "focal": {"weight": 1.0, "gamma": 2.0}}


@register("dice_cldice")
class DiceClDiceLoss(CompositeLoss):
    """``0.5 * dice + 0.5 * clDice``: the published soft-Dice + clDice compound (Shit et al., CVPR 2021,
    ``(1 - α) L_Dice + α L_clDice`` with the authors' α = 0.5) as a composite, so that its Dice term is
    exactly the ``dice`` loss (same ``smooth``, background included) and each term is reported.

    The clDice term is :class:`~losses.cldice.SoftClDiceLoss` with ``alpha=1`` (its skeleton ratios only)
    and the authors' ``smooth=1``: the soft skeleton of an undecided prediction is near empty, and a
    ratio smoothed by 1e-5 would then have gradients of order 1e5. ``loss=cldice`` is the same
    compound in one class with one ``smooth`` for both parts and the background left out.

    Args:
        terms, **shared: as :class:`CompositeLoss`; ``terms`` defaults to the pair above.

    Raises:
        ValueError: as :class:`CompositeLoss`.

    Example::

        loss = DiceClDiceLoss(mode="binary")
        value = loss(logits, target); loss.last_terms  # {"dice": ..., "cldice": ...}
    """

    default_terms = {"dice": {"weight": 0.5},
                     "cldice": {"weight": 0.5, "alpha": 1.0, "include_background": True}}
