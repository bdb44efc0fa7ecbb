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
  (Milletari et al. 2016); the Tversky family then weights ``FP2 = sum relu(p - t)^2`` and
  ``FN2 = sum relu(t - p)^2`` (both >= 0, 0 at ``p = t``), so it stays in [0, 1] for every
  ``alpha``, ``beta`` and is minimal at ``p = t``.
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

from common.checks import check_choice, check_range
from losses.base import SegmentationLoss
from losses.inputs import SegInput
from losses.options import COMMON
from losses.registry import register


def safe_ratio(numerator: Tensor, denominator: Tensor, empty_value: float = 1.0) -> Tensor:
    """``numerator / denominator`` with ``empty_value`` where the denominator is 0 (no NaN, no
    NaN gradient: the masked division never sees a zero)."""
    empty = denominator <= 0
    ratio = numerator / torch.where(empty, torch.ones_like(denominator), denominator)
    return torch.where(empty, torch.full_like(ratio, empty_value), ratio)


class RegionLoss(SegmentationLoss):
    """Shared machinery of the overlap losses; subclasses define :meth:`score`.

    Args (besides the shared keywords ``mode``, ``from_logits``, ``ignore_index``, ``reduction``,
    ``class_weights``, ``weight_scheme``, ``class_weight_beta``, ``include_background``):
        smooth: added to numerator and denominator (>= 0).
        batch: sum the statistics over the batch before the ratio.
        squared: ``sum p^2 + sum t^2`` denominators (Milletari et al. 2016).
        log_loss: ``-log(score)`` instead of ``1 - score``.
    """

    uses = frozenset({"class_stats"})

    def __init__(self, *, smooth: float = 1e-5, batch: bool = False, squared: bool = False,
                 log_loss: bool = False, **shared: object) -> None:
        super().__init__(**shared)
        check_range("smooth", smooth, 0.0, math.inf)
        self.smooth = float(smooth)
        self.batch = bool(batch)
        self.squared = bool(squared)
        self.log_loss = bool(log_loss)

    def stats(self, inp: SegInput) -> tuple[Tensor, Tensor, Tensor]:
        return self._pool(inp.class_stats(self.squared))

    def _pool(self, sums: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return tuple(s.sum(0) for s in sums) if self.batch else sums

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

    Args:
        smooth: added to numerator and denominator; default 1e-5 (MONAI's).
        batch, squared, log_loss: see :class:`RegionLoss`.
        **shared: ``mode``, ``from_logits``, ``ignore_index``, ``reduction``, ``class_weights``,
            ``weight_scheme``, ``class_weight_beta``, ``include_background``
            (:class:`~losses.options.SharedOptions`).

    Raises:
        ValueError: an option out of range or an unsupported keyword; at call time, input shapes
            or values that do not fit ``mode``.

    Example::

        loss = DiceLoss(mode="multiclass", ignore_index=255)
        value = loss(logits, target)  # logits (N, C, H, W), target (N, H, W) long
    """

    def score(self, tp: Tensor, sum_p: Tensor, sum_t: Tensor) -> Tensor:
        return safe_ratio(2.0 * tp + self.smooth, sum_p + sum_t + self.smooth)


@register("jaccard")
class JaccardLoss(RegionLoss):
    """Soft Jaccard (IoU) loss ``1 - (TP + smooth) / (sum p + sum t - TP + smooth)``
    (Rahman & Wang 2016). Conventions in the module docstring.

    Args:
        smooth, batch, squared, log_loss, **shared: as :class:`DiceLoss`.

    Raises:
        ValueError: as :class:`DiceLoss`.

    Example::

        loss = JaccardLoss(mode="binary")
        value = loss(logits, target)  # logits (N, 1, H, W), target (N, H, W) in {0, 1}
    """

    def score(self, tp: Tensor, sum_p: Tensor, sum_t: Tensor) -> Tensor:
        return safe_ratio(tp + self.smooth, sum_p + sum_t - tp + self.smooth)


@register("tversky")
class TverskyLoss(RegionLoss):
    """Tversky loss ``1 - (TP + smooth) / (TP + alpha FP + beta FN + smooth)`` (Salehi et al. 2017).

    ``FP = sum p - TP``, ``FN = sum t - TP``; with ``squared=True`` ``FP = sum relu(p - t)^2`` and
    ``FN = sum relu(t - p)^2`` (never negative, so the loss stays in [0, 1] for every ``alpha``,
    ``beta``). ``alpha = beta = 0.5`` is Dice, ``alpha = beta = 1`` Jaccard.

    Args:
        alpha: weight of false positives, in [0, 1]; default 0.3.
        beta: weight of false negatives, in [0, 1]; default 0.7 (favours recall on small
            structures). The class-weight β is ``class_weight_beta``.
        smooth, batch, squared, log_loss, **shared: as :class:`DiceLoss`.

    Raises:
        ValueError: ``alpha`` or ``beta`` outside [0, 1]; otherwise as :class:`DiceLoss`.

    Example::

        loss = TverskyLoss(mode="multiclass", alpha=0.3, beta=0.7)
        value = loss(logits, target)
    """

    def __init__(self, *, alpha: float = 0.3, beta: float = 0.7, **rest: object) -> None:
        super().__init__(**rest)
        check_range("alpha", alpha, 0.0, 1.0)
        check_range("beta", beta, 0.0, 1.0)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def stats(self, inp: SegInput) -> tuple[Tensor, Tensor, Tensor]:
        if not self.squared:
            return super().stats(inp)
        tp = inp.class_stats(True)[0]
        return self._pool((tp, *inp.squared_errors()))

    def score(self, tp: Tensor, a: Tensor, b: Tensor) -> Tensor:
        # (tp, sum p, sum t), or (tp, FP2, FN2) with squared=True
        fp, fn = (a, b) if self.squared else (a - tp, b - tp)
        return safe_ratio(tp + self.smooth, tp + self.alpha * fp + self.beta * fn + self.smooth)


@register("focal_tversky")
class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss ``(1 - TI)^gamma`` with TI the Tversky index (Abraham & Khan 2019).

    ``gamma`` is applied to each class before the class mean as in the paper; smp's
    ``TverskyLoss(gamma=...)`` raises the class *mean* instead (equal for one class).

    Args:
        gamma: the exponent itself, > 0; default 0.75 (the paper's ``1/gamma`` with gamma = 4/3).
            ``gamma < 1`` raises the loss of nearly-correct classes, focusing on hard, small ones.
        alpha, beta, smooth, batch, squared, log_loss, **shared: as :class:`TverskyLoss`.

    Raises:
        ValueError: ``gamma <= 0``; otherwise as :class:`TverskyLoss`.

    Example::

        loss = FocalTverskyLoss(mode="binary", gamma=0.75)
        value = loss(logits, target)
    """

    def __init__(self, *, gamma: float = 0.75, **rest: object) -> None:
        super().__init__(**rest)
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

    A class absent from the target (infinite weight) gets the largest finite weight of its sample,
    as MONAI. When no scored class of a sample is present (a background-only image: binary with
    an empty target, or multiclass without foreground and ``include_background=False``), every
    class gets the weight of a class filling the sample (``1/n^2``, ``1/n`` with ``n`` its valid
    positions), so false positives cost and have a gradient; MONAI gives 0 with no gradient there.
    ``reduction="none"`` gives ``(N,)``, or a 0-dim value with ``batch=True``.

    Args:
        weight_type: ``square`` ``w_c = 1/(sum t_c)^2`` (default), ``simple`` ``1/sum t_c``,
            ``uniform`` ``1`` (``sum t_c^2`` with ``squared=True``; equal for hard targets).
        smooth, batch, squared, log_loss: as :class:`DiceLoss`.
        **shared: ``mode``, ``from_logits``, ``ignore_index``, ``reduction``,
            ``include_background``; no ``class_weights`` (the weights are the method).

    Raises:
        ValueError: an unknown ``weight_type``; otherwise as :class:`DiceLoss`.

    Example::

        loss = GeneralizedDiceLoss(mode="multiclass", weight_type="square")
        value = loss(logits, target)
    """

    shared_keywords = COMMON + ("include_background",)

    def __init__(self, *, weight_type: str = "square", **rest: object) -> None:
        super().__init__(**rest)
        check_choice("weight_type", weight_type, GD_WEIGHT_TYPES)
        self.weight_type = weight_type

    def compute(self, inp: SegInput) -> Tensor:
        tp, sum_p, sum_t = self.stats(inp)
        n = inp.valid_counts()
        if self.batch:
            n = n.sum(0)
        if not self.include_background and inp.mode != "binary":
            tp, sum_p, sum_t, n = tp[..., 1:], sum_p[..., 1:], sum_t[..., 1:], n[..., 1:]
        w = self._class_weights(sum_t, n)
        numerator = 2.0 * (w * tp).sum(-1) + self.smooth
        denominator = (w * (sum_p + sum_t)).sum(-1) + self.smooth
        loss = self.score_to_loss(safe_ratio(numerator, denominator))
        if self.reduction == "none":
            return loss
        return loss.sum() if self.reduction == "sum" else loss.mean()

    def _class_weights(self, sum_t: Tensor, n: Tensor) -> Tensor:
        if self.weight_type == "uniform":
            return torch.ones_like(sum_t)
        power = 2 if self.weight_type == "square" else 1
        absent = sum_t <= 0
        w = sum_t.masked_fill(absent, 1.0).pow(-power).masked_fill(absent, 0.0)
        largest = w.amax(-1, keepdim=True) if w.numel() else w
        # a sample without any present class: the weight of a class that fills it
        filling = n.clamp_min(1.0).pow(-power)
        largest = torch.where(largest > 0, largest, filling.amax(-1, keepdim=True) if w.numel() else largest)
        return torch.where(absent, largest.expand_as(w), w)


#: weight of the soft error share ``(FP + FN) / n`` added to an undefined MCC's loss of 1
MCC_UNDEFINED_ERROR_WEIGHT = 0.1
#: a soft count below this (in pixels) counts as 0 in the MCC denominator
MCC_MIN_COUNT = 1e-6


@register("mcc")
class MCCLoss(SegmentationLoss):
    """Matthews correlation loss ``1 - MCC`` per class (one-vs-rest; Abhishek & Hamarneh 2021):

    ``MCC = (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))`` with soft counts and
    ``TN = n_valid - TP - FP - FN``; ``smooth`` is added to each of the four counts (smp adds 1e-5).

    MCC is undefined when a factor of the denominator is 0: a class absent from the target or
    filling it, or a prediction saturated to one value. It then counts as MCC = 0, never as
    perfect, and ``0.1 * (FP + FN) / n`` is added so that the loss (in [1, 1.1]) still has a
    gradient wherever the prediction is not saturated: false positives on an absent class, misses
    on a full one. An all-ignored sample (``n = 0``) costs 0.

    Args:
        smooth: added to each of TP, FP, FN, TN (>= 0); default 0.
        batch: pool the counts over the batch (default ``True``, as smp's ``MCCLoss``).
        **shared: ``mode``, ``from_logits``, ``ignore_index``, ``reduction``, ``class_weights``,
            ``weight_scheme``, ``class_weight_beta``, ``include_background``.

    Raises:
        ValueError: ``smooth < 0`` or an unsupported keyword; at call time, bad input.

    Example::

        loss = MCCLoss(mode="binary")
        value = loss(logits, target)
    """

    uses = frozenset({"class_stats"})

    def __init__(self, *, smooth: float = 0.0, batch: bool = True, **shared: object) -> None:
        super().__init__(**shared)
        check_range("smooth", smooth, 0.0, math.inf)
        self.smooth = float(smooth)
        self.batch = bool(batch)

    def compute(self, inp: SegInput) -> Tensor:
        tp, sum_p, sum_t = inp.class_stats(False)
        n = inp.valid_counts()
        if self.batch:
            tp, sum_p, sum_t, n = tp.sum(0), sum_p.sum(0), sum_t.sum(0), n.sum(0)
        s = self.smooth
        # the denominator's factors are the confusion matrix's margins: from the sums directly
        # (TP+FP = sum p, TN+FP = n - sum t, ...), never by subtracting nearly equal numbers
        factors = (sum_p + 2 * s, sum_t + 2 * s, n - sum_t + 2 * s, n - sum_p + 2 * s)
        numerator = (n + 4 * s) * (tp + s) - factors[0] * factors[1]  # = TP TN - FP FN
        defined = torch.stack([f > MCC_MIN_COUNT for f in factors]).all(0)
        # sqrt of each factor, and only of defined ones: no infinite gradient, no product underflow
        root = math.prod(torch.where(defined, f, torch.ones_like(f)).sqrt() for f in factors)
        mcc = torch.where(defined, numerator / root, torch.zeros_like(root))
        error_share = safe_ratio(sum_p + sum_t - 2.0 * tp, n, 0.0)  # (FP + FN) / n
        undefined_cost = torch.where(defined, torch.zeros_like(root), MCC_UNDEFINED_ERROR_WEIGHT * error_share)
        loss = torch.where(n > 0, 1.0 - mcc + undefined_cost, torch.zeros_like(root))
        return self.reduce_classes(loss, inp)
