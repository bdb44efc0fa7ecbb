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

from common.checks import check_range
from losses.base import SegmentationLoss
from losses.fused import logit_bce_sum, target_nll_sum
from losses.inputs import SegInput
from losses.options import CLASS_WEIGHTING, COMMON
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
    if inp.from_logits and not inp.planned("log_probs"):
        # the fused kernel saves only its inputs; a plan that reads log-sigmoids anyway shares them
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
    smoothing term per class instead).

    Args:
        label_smoothing: in [0, 1); default 0.
        **shared: ``mode``, ``from_logits``, ``ignore_index``, ``reduction``, ``class_weights``,
            ``weight_scheme``, ``class_weight_beta`` (:class:`~losses.options.SharedOptions`).

    Raises:
        ValueError: ``label_smoothing`` out of range or an unsupported keyword (e.g.
            ``include_background``); at call time, input that does not fit ``mode``.

    Example::

        loss = CrossEntropyLoss(mode="multiclass", ignore_index=255)
        value = loss(logits, target)  # equals F.cross_entropy(logits, target, ignore_index=255)
    """

    uses = frozenset({"log_prob_of_target"})
    shared_keywords = COMMON + CLASS_WEIGHTING

    def __init__(self, *, label_smoothing: float = 0.0, **shared: object) -> None:
        super().__init__(**shared)
        check_range("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
        self.label_smoothing = float(label_smoothing)

    def compute(self, inp: SegInput) -> Tensor:
        if inp.mode != "multiclass" and inp.from_logits and self.reduction != "none":
            return self._fused_sigmoid_ce(inp)
        if self._reduced_multiclass(inp):
            weights = self.pixel_weights(inp)
            total = target_nll_sum(inp.scores, inp.target, weights)
            return self.reduce_pixel_sum(total, weights, inp.target.numel())
        return self.reduce_pixels(pixel_ce(inp, self.label_smoothing), inp, self.pixel_weights(inp))

    def _reduced_multiclass(self, inp: SegInput) -> bool:
        """Whether one reduced cross-entropy node computes this call
        (:func:`~losses.fused.target_nll_sum`): logits, no smoothing, a reduction, and no other
        term sharing ``inp``; class weights and ignored positions enter as its weight map."""
        return (inp.from_logits and self.label_smoothing == 0.0 and self.reduction != "none"
                and inp.plan <= self.uses)

    def _fused_sigmoid_ce(self, inp: SegInput) -> Tensor:
        """Binary/multilabel: one fused call that also weights and reduces (same value as
        :meth:`reduce_pixels`; 0, not NaN, for an all-ignored batch): unweighted, the three-pass
        :func:`~losses.fused.logit_bce_sum`, else ``binary_cross_entropy_with_logits``.
        """
        weights = self.pixel_weights(inp)
        t = inp.target
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if weights is None:
            total = logit_bce_sum(inp.scores, t)
        else:
            total = F.binary_cross_entropy_with_logits(inp.scores, t, weight=weights, reduction="sum")
        return self.reduce_pixel_sum(total, weights, t.numel())


@register("weighted_ce")
class WeightedCrossEntropyLoss(CrossEntropyLoss):
    """Cross-entropy with class weights derived from the data by default.

    Same formula as ``ce``; ``class_weights="auto"`` (default) resolves the weights from the
    training split's pixel counts with ``weight_scheme`` in ``inverse`` (default),
    ``inverse_sqrt``, ``median_frequency`` (Eigen & Fergus 2015), ``effective_number``
    (Cui et al. 2019, ``class_weight_beta``); see :mod:`losses.class_weights`. An explicit list
    also works.

    Args:
        label_smoothing, **shared: as :class:`CrossEntropyLoss`; ``class_weights`` defaults to
            ``"auto"``.

    Raises:
        ValueError: as :class:`CrossEntropyLoss`; a forward call before ``set_class_counts``.

    Example::

        loss = WeightedCrossEntropyLoss(mode="multiclass", weight_scheme="median_frequency")
        loss.set_class_counts(torch.tensor([9e5, 9e4, 1e4]))
    """

    shared_defaults = {"class_weights": "auto"}


@register("bce")
class BCELoss(SegmentationLoss):
    """Binary cross-entropy ``-(pw t log p + (1-t) log(1-p))`` per channel, binary/multilabel modes.

    ``pos_weight`` (float, or one per channel) multiplies the positive term as in
    ``torch.nn.BCEWithLogitsLoss``; values > 1 raise recall on rare foreground.
    ``include_background=False`` drops multilabel channel 0. Mean over non-ignored elements.

    Args:
        pos_weight: positive float, or one per channel; default ``None`` (1).
        **shared: ``mode`` (``binary`` default, or ``multilabel``), ``from_logits``,
            ``ignore_index``, ``reduction``, ``include_background``.

    Raises:
        ValueError: ``mode="multiclass"``, a non-positive ``pos_weight`` or an unsupported keyword.

    Example::

        loss = BCELoss(mode="binary", pos_weight=3.0)
        value = loss(logits, target)  # logits (N, 1, H, W), target (N, H, W) in {0, 1}
    """

    shared_keywords = COMMON + ("include_background",)
    shared_defaults = {"mode": "binary"}

    def __init__(self, *, pos_weight: float | Sequence[float] | None = None, **shared: object) -> None:
        super().__init__(**shared)
        if self.mode == "multiclass":
            raise ValueError("mode: bce supports 'binary' and 'multilabel', got 'multiclass'; use 'ce' for multiclass")
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
        if inp.from_logits and self.reduction != "none":
            # one fused call; weighted, the mean divides by the summed weights (non-ignored count)
            weights = self.pixel_weights(inp)
            if weights is None and pw is None:
                total = logit_bce_sum(inp.scores, inp.target)
            elif self.reduction == "mean" and weights is None:
                return F.binary_cross_entropy_with_logits(inp.scores, inp.target, pos_weight=pw)
            else:
                total = F.binary_cross_entropy_with_logits(inp.scores, inp.target, weight=weights, pos_weight=pw,
                                                           reduction="sum")
            return self.reduce_pixel_sum(total, weights, inp.target.numel())
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
    apply on top as in ``ce``.

    Args:
        gamma: focusing exponent >= 0; default 2 (0 with ``alpha=None`` is ``ce``).
        alpha: ``None`` (default), a float in [0, 1] or one per class (multiclass) / channel.
        **shared: ``mode``, ``from_logits``, ``ignore_index``, ``reduction``, ``class_weights``,
            ``weight_scheme``, ``class_weight_beta``, ``include_background``.

    Raises:
        ValueError: ``gamma < 0``, ``alpha`` outside [0, 1] or an unsupported keyword; at call
            time, an ``alpha`` list of the wrong length or input that does not fit ``mode``.

    Example::

        loss = FocalLoss(mode="multiclass", gamma=2.0)
        value = loss(logits, target)
    """

    uses = frozenset({"log_prob_of_target"})

    def __init__(self, *, gamma: float = 2.0, alpha: float | Sequence[float] | None = None,
                 **shared: object) -> None:
        super().__init__(**shared)
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

    Args:
        k: percent of non-ignored positions kept, in (0, 100]; default 10.
        label_smoothing, **shared: as :class:`CrossEntropyLoss`.

    Raises:
        ValueError: ``k`` out of range; otherwise as :class:`CrossEntropyLoss`.

    Example::

        loss = TopKCrossEntropyLoss(mode="multiclass", k=10.0)
        value = loss(logits, target)
    """

    def __init__(self, *, k: float = 10.0, **rest: object) -> None:
        super().__init__(**rest)
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
