"""Weighted sums of registered segmentation losses: ``dice_ce``, ``dice_focal`` and any user mix.

YAML::

    _target_: losses.composite.CompositeLoss
    terms:
      dice: {weight: 1.0}
      focal: {weight: 0.5, gamma: 2.0}
      dice_fg: {loss: dice, weight: 0.2, include_background: false}   # a label for a 2nd dice
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from losses._common import check_choice
from losses.base import ClassWeights, SegmentationLoss
from losses.registry import build_loss, get_loss_class, loss_task, register


@register("composite")
class CompositeLoss(SegmentationLoss):
    """``L = sum_k weight_k * L_k`` over the configured terms, each a registered segmentation loss.

    ``terms`` maps a term name to its keyword arguments plus ``weight`` (default 1.0) and optional
    ``loss`` (the registered name; defaults to the term name). ``mode``, ``from_logits``,
    ``ignore_index`` and ``reduction`` are shared by all terms; ``class_weights`` /
    ``weight_scheme`` / ``beta`` are passed to every term that accepts class weights unless the
    term sets its own. One forward validates the input and computes the softmax / log-softmax
    (sigmoid in binary modes) once, shared by every term. After each forward ``last_terms`` holds
    every term's detached, unweighted value. ``reduction`` is ``mean`` or ``sum`` (per-term shapes
    of ``none`` differ between terms). Without ``terms`` it is ``dice + ce``.
    """

    default_terms: Mapping[str, Mapping[str, object]] = {"dice": {"weight": 1.0}, "ce": {"weight": 1.0}}

    def __init__(self, terms: Mapping[str, Mapping[str, object]] | None = None, mode: str = "multiclass",
                 from_logits: bool = True, ignore_index: int | None = None,
                 class_weights: ClassWeights = None, weight_scheme: str = "inverse",
                 beta: float = 0.9999, reduction: str = "mean") -> None:
        super().__init__(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                         class_weights=class_weights, reduction=reduction,
                         weight_scheme=weight_scheme, beta=beta)
        check_choice("reduction", reduction, ("mean", "sum"))
        terms = self.default_terms if terms is None else terms
        if not isinstance(terms, Mapping) or not terms:
            raise ValueError(f"terms must be a non-empty mapping of term name -> options, got {terms!r}")
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
            options.update(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                           reduction=reduction)
            if class_weights is not None and "class_weights" not in options and \
                    _accepts(loss_name, "class_weights"):
                options.update(class_weights=class_weights)
                if isinstance(class_weights, str):
                    options.update(weight_scheme=weight_scheme)
                    options.update({"weight_beta" if _accepts(loss_name, "weight_beta") else "beta": beta})
            self.terms[name] = build_loss(loss_name, **options)
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
            inp = self.prepare(prediction, target)
            inp.plan = frozenset().union(*(term.uses for term in self.terms.values()))
            total = None
            values: dict[str, Tensor] = {}
            for name, term in self.terms.items():
                value = term.compute(inp)
                values[name] = value.detach()
                weighted = self.term_weights[name] * value
                total = weighted if total is None else total + weighted
            self.last_terms = values
            return total


def _accepts(loss_name: str, argument: str) -> bool:
    return argument in inspect.signature(get_loss_class(loss_name).__init__).parameters


@register("dice_ce")
class DiceCELoss(CompositeLoss):
    """``1.0 * dice + 1.0 * ce`` by default (nnU-Net's loss; Isensee et al. 2021)."""

    default_terms = {"dice": {"weight": 1.0}, "ce": {"weight": 1.0}}


@register("dice_focal")
class DiceFocalLoss(CompositeLoss):
    """``1.0 * dice + 1.0 * focal(gamma=2)`` by default (Zhu et al. 2019, AnatomyNet)."""

    default_terms = {"dice": {"weight": 1.0}, "focal": {"weight": 1.0, "gamma": 2.0}}
