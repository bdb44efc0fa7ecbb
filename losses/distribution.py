"""Distribution (per-pixel) losses: ``ce``, ``weighted_ce``, ``bce``, ``focal``, ``topk_ce``.

Each computes a per-position loss ``l_i`` and reduces it as a weighted mean over non-ignored
positions, ``sum_i w_{y_i} l_i / sum_i w_{y_i}`` (``w`` = ``class_weights``, 1 when unset), or its
sum; ``reduction="none"`` returns the map (multiclass ``(N, *S)``, sigmoid modes ``(N, C, *S)``)
with ignored positions at 0.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losses._common import SegInput, check_range
from losses.base import ClassWeights, SegmentationLoss
from losses.registry import register


def pixel_ce(inp: SegInput, label_smoothing: float = 0.0, pos_weight: Tensor | None = None) -> Tensor:
    """Per-position cross-entropy, shaped like ``inp.target`` (unweighted, unmasked).

    Multiclass: ``(1-eps) * -log p_y + eps * mean_c(-log p_c)``. Sigmoid modes: binary cross-entropy
    against the smoothed target ``t (1-eps) + eps/2``, with ``pos_weight`` scaling the positive term.
    """
    if inp.mode == "multiclass":
        nll = -inp.log_prob_of_target
        if label_smoothing == 0.0:
            return nll
        # mean_c log p_c = log p_y + mean_c x_c - x_y: no full log-softmax needed
        if inp.from_logits:
            x = inp.scores
            mean_log_p = -nll + x.mean(1) - x.gather(1, inp.target.unsqueeze(1)).squeeze(1)
        else:
            mean_log_p = inp.log_probs.mean(1)
        return (1.0 - label_smoothing) * nll - label_smoothing * mean_log_p
    t = inp.target
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if inp.from_logits and "log_probs" not in inp.__dict__:
        # the fused kernel saves only its inputs; reuse cached log-sigmoids when a composite has them
        return F.binary_cross_entropy_with_logits(inp.scores, t, pos_weight=pos_weight, reduction="none")
    positive = t * inp.log_probs
    if pos_weight is not None:
        positive = positive * pos_weight
    return -(positive + (1.0 - t) * inp.log_one_minus_probs)


@register("ce")
class CrossEntropyLoss(SegmentationLoss):
    """Cross-entropy ``-log p_y`` (softmax in multiclass mode, sigmoid/BCE in binary and multilabel).

    ``label_smoothing`` ``eps`` in [0, 1) mixes the one-hot target with the uniform distribution
    (Szegedy et al. 2016): multiclass ``(1-eps)(-log p_y) + eps * mean_c(-log p_c)``; sigmoid modes
    smooth each target to ``t (1-eps) + eps/2``. ``class_weights`` weight each pixel by its true class
    and normalise by the summed weights, as ``torch.nn.functional.cross_entropy`` does; with both
    weights and smoothing the whole smoothed term is weighted by ``w_y`` (torch weights the
    smoothing term per class instead). Defaults: no weights, no smoothing.
    """

    uses = frozenset({"log_prob_of_target"})

    def __init__(self, mode: str = "multiclass", from_logits: bool = True,
                 ignore_index: int | None = None, class_weights: ClassWeights = None,
                 label_smoothing: float = 0.0, reduction: str = "mean",
                 weight_scheme: str = "inverse", beta: float = 0.9999) -> None:
        super().__init__(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                         class_weights=class_weights, reduction=reduction,
                         weight_scheme=weight_scheme, beta=beta)
        check_range("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
        self.label_smoothing = float(label_smoothing)

    def compute(self, inp: SegInput) -> Tensor:
        return self.reduce_pixels(pixel_ce(inp, self.label_smoothing), inp, self.pixel_weights(inp))


@register("weighted_ce")
class WeightedCrossEntropyLoss(CrossEntropyLoss):
    """Cross-entropy with class weights derived from the data by default.

    Same formula as ``ce``; ``class_weights="auto"`` (default) resolves the weights from the
    training split's pixel counts with ``weight_scheme`` in ``inverse`` (default),
    ``inverse_sqrt``, ``median_frequency`` (Eigen & Fergus 2015), ``effective_number``
    (Cui et al. 2019, ``beta``); see :mod:`losses.class_weights`. An explicit list also works.
    """

    def __init__(self, mode: str = "multiclass", from_logits: bool = True,
                 ignore_index: int | None = None, class_weights: ClassWeights = "auto",
                 weight_scheme: str = "inverse", beta: float = 0.9999,
                 label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                         class_weights=class_weights, label_smoothing=label_smoothing,
                         reduction=reduction, weight_scheme=weight_scheme, beta=beta)


@register("bce")
class BCELoss(SegmentationLoss):
    """Binary cross-entropy ``-(pw t log p + (1-t) log(1-p))`` per channel, binary/multilabel modes.

    ``pos_weight`` (float, or one per channel) multiplies the positive term as in
    ``torch.nn.BCEWithLogitsLoss``; values > 1 raise recall on rare foreground.
    ``include_background=False`` drops multilabel channel 0. Mean over non-ignored elements.
    """

    def __init__(self, mode: str = "binary", from_logits: bool = True,
                 ignore_index: int | None = None, pos_weight: float | Sequence[float] | None = None,
                 include_background: bool = True, reduction: str = "mean") -> None:
        if mode == "multiclass":
            raise ValueError(f"mode: bce supports 'binary' and 'multilabel', got {mode!r}; use 'ce' for multiclass")
        super().__init__(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                         include_background=include_background, reduction=reduction)
        pw = None
        if pos_weight is not None:
            values = [float(pos_weight)] if isinstance(pos_weight, (int, float)) else [float(v) for v in pos_weight]
            if not values or any(not math.isfinite(v) or v <= 0 for v in values):
                raise ValueError(f"pos_weight must be a positive number or a list of them, got {pos_weight!r}")
            pw = torch.tensor(values)
        self.register_buffer("pos_weight", pw)

    def compute(self, inp: SegInput) -> Tensor:
        pw = self.pos_weight
        if pw is not None:
            if pw.numel() not in (1, inp.num_channels):
                raise ValueError(f"pos_weight: expected 1 or {inp.num_channels} values, got {pw.numel()}")
            pw = pw.to(inp.scores.device).view(1, -1, 1)
        return self.reduce_pixels(pixel_ce(inp, pos_weight=pw), inp, self.pixel_weights(inp))


@register("focal")
class FocalLoss(SegmentationLoss):
    """Focal loss ``FL = -alpha_t (1 - p_t)^gamma log p_t`` (Lin et al., ICCV 2017).

    Binary/multilabel use the sigmoid per channel with ``p_t = p t + (1-p)(1-t)`` and
    ``alpha_t = alpha t + (1-alpha)(1-t)`` (``alpha`` = weight of positives, as torchvision's
    ``sigmoid_focal_loss``; a list gives one alpha per channel); mean over all non-ignored elements.
    Multiclass uses the softmax with ``p_t`` the probability of the true class — focal loss is not
    limited to binary problems — and ``alpha`` either a float (``1-alpha`` for class 0, ``alpha``
    for the others, as MONAI) or one value per class; mean over non-ignored pixels, so
    ``gamma=0, alpha=None`` equals ``ce``. MONAI's multiclass mean divides by C as well (its loss is
    C times smaller) and its ``include_background=False`` drops channel 0 *before* the softmax;
    ours keeps the softmax over all classes and drops the pixels labelled 0. ``class_weights``
    apply on top as in ``ce``. Defaults: ``gamma=2``, ``alpha=None``.
    """

    uses = frozenset({"log_prob_of_target"})

    def __init__(self, mode: str = "multiclass", from_logits: bool = True,
                 ignore_index: int | None = None, gamma: float = 2.0,
                 alpha: float | Sequence[float] | None = None, class_weights: ClassWeights = None,
                 include_background: bool = True, reduction: str = "mean",
                 weight_scheme: str = "inverse", beta: float = 0.9999) -> None:
        super().__init__(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                         class_weights=class_weights, include_background=include_background,
                         reduction=reduction, weight_scheme=weight_scheme, beta=beta)
        check_range("gamma", gamma, 0.0, math.inf)
        self.gamma = float(gamma)
        a = None
        if alpha is not None:
            values = [float(alpha)] if isinstance(alpha, (int, float)) else [float(v) for v in alpha]
            for v in values:
                check_range("alpha", v, 0.0, 1.0)
            a = torch.tensor(values)
        self.register_buffer("alpha", a)
        self.alpha_is_scalar = isinstance(alpha, (int, float))

    def compute(self, inp: SegInput) -> Tensor:
        if inp.mode == "multiclass":
            log_pt = inp.log_prob_of_target
            one_minus_pt = -torch.expm1(log_pt)
            loss = -self._modulate(one_minus_pt) * log_pt
            if self.alpha is not None:
                loss = loss * self._multiclass_alpha(inp)
        else:
            t = inp.target
            # 1 - p_t from p and 1 - p = exp(log(1-p)): both ends stay exact in float32
            one_minus_pt = t * inp.log_one_minus_probs.exp() + (1.0 - t) * inp.probs
            loss = self._modulate(one_minus_pt) * pixel_ce(inp)
            if self.alpha is not None:
                a = self._channel_alpha(inp)
                loss = loss * (a * t + (1.0 - a) * (1.0 - t))
        return self.reduce_pixels(loss, inp, self.pixel_weights(inp))

    def _modulate(self, one_minus_pt: Tensor) -> Tensor:
        if self.gamma == 0.0:
            return torch.ones_like(one_minus_pt)
        # the clamp keeps d/dp of x**gamma finite at x = 0 when gamma < 1 (saturated logits)
        return one_minus_pt.clamp_min(1e-12).pow(self.gamma)

    def _multiclass_alpha(self, inp: SegInput) -> Tensor:
        a = self.alpha.to(inp.scores.device)
        if self.alpha_is_scalar:
            return torch.where(inp.target == 0, 1.0 - a, a)
        if a.numel() != inp.num_channels:
            raise ValueError(f"alpha: expected one value per class ({inp.num_channels}), got {a.numel()}")
        return a[inp.target]

    def _channel_alpha(self, inp: SegInput) -> Tensor:
        a = self.alpha.to(inp.scores.device)
        if a.numel() not in (1, inp.num_channels):
            raise ValueError(f"alpha: expected a float or {inp.num_channels} values, got {a.numel()}")
        return a.view(1, -1, 1)


@register("topk_ce")
class TopKCrossEntropyLoss(CrossEntropyLoss):
    """Cross-entropy over the hardest ``k`` percent of positions (bootstrapped CE; Wu et al. 2016,
    as nnU-Net's ``TopKLoss``).

    The per-position (class-weighted) CE values of all non-ignored positions of the batch are
    ranked and the largest ``ceil(k/100 * n_valid)`` kept; ``mean`` is their weighted mean, ``sum``
    their sum, ``none`` the map with unselected positions at 0. ``k=100`` equals ``ce``.
    Defaults: ``k=10``.
    """

    def __init__(self, mode: str = "multiclass", from_logits: bool = True,
                 ignore_index: int | None = None, k: float = 10.0, class_weights: ClassWeights = None,
                 label_smoothing: float = 0.0, reduction: str = "mean",
                 weight_scheme: str = "inverse", beta: float = 0.9999) -> None:
        super().__init__(mode=mode, from_logits=from_logits, ignore_index=ignore_index,
                         class_weights=class_weights, label_smoothing=label_smoothing,
                         reduction=reduction, weight_scheme=weight_scheme, beta=beta)
        check_range("k", k, 0.0, 100.0, low_open=True)
        self.k = float(k)

    def compute(self, inp: SegInput) -> Tensor:
        loss = pixel_ce(inp, self.label_smoothing)
        weights = self.pixel_weights(inp)
        weights = torch.ones_like(loss) if weights is None else weights
        weighted = (loss * weights).flatten()
        n_valid = int((weights > 0).sum())
        if n_valid == 0:
            selected = torch.zeros_like(weighted, dtype=torch.bool)
        else:
            n_keep = max(1, math.ceil(self.k / 100.0 * n_valid))
            # excluded positions rank below every valid one (CE >= 0)
            ranking = weighted.masked_fill(weights.flatten() <= 0, -1.0)
            selected = torch.zeros_like(weighted, dtype=torch.bool)
            selected[ranking.topk(n_keep, sorted=False).indices] = True
        keep = selected.view_as(loss).to(loss.dtype)
        return self.reduce_pixels(loss, inp, weights * keep)
