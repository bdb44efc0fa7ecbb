"""Soft clDice (Shit et al., CVPR 2021): topology-preserving loss for thin tubular structures."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from common.checks import check_range
from losses.base import SegmentationLoss
from losses.inputs import SegInput
from losses.region import safe_ratio
from losses.registry import register

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def soft_erode(x: Tensor) -> Tensor:
    """Soft erosion: min over the cross-shaped 3-neighbourhood along each spatial axis."""
    dims = x.dim() - 2
    pool = _MAX_POOL[dims]
    eroded = None
    for axis in range(dims):
        kernel = [1] * dims
        kernel[axis] = 3
        padding = [k // 2 for k in kernel]
        along = -pool(-x, kernel, stride=1, padding=padding)
        eroded = along if eroded is None else torch.minimum(eroded, along)
    return eroded


def soft_dilate(x: Tensor) -> Tensor:
    """Soft dilation: max over the full 3^d neighbourhood."""
    dims = x.dim() - 2
    return _MAX_POOL[dims](x, 3, stride=1, padding=1)


def soft_skeleton(x: Tensor, iterations: int) -> Tensor:
    """Soft morphological skeleton of ``x`` ``(N, C, *S)`` in [0, 1] (Shit et al. 2021, Alg. 1).

    Each step erodes ``x`` and opens the eroded image; the opening starts with that same erosion
    of the new ``x``, so it is computed once and carried to the next step (the paper's code and
    MONAI's compute it twice): one erosion and one dilation per step instead of two erosions.
    """
    eroded = soft_erode(x)
    skeleton = F.relu(x - soft_dilate(eroded))
    for _ in range(iterations):
        x, eroded = eroded, soft_erode(eroded)
        delta = F.relu(x - soft_dilate(eroded))
        skeleton = skeleton + F.relu(delta - skeleton * delta)
    return skeleton


@register("cldice")
class SoftClDiceLoss(SegmentationLoss):
    """``(1 - alpha) * soft Dice + alpha * soft clDice`` per sample and class (Shit et al. 2021).

    With ``S_P``, ``S_T`` the soft skeletons of prediction ``P`` and target ``T``
    (``iterations`` erosion steps, about the largest structure radius in pixels):
    ``Tprec = (sum S_P T + smooth) / (sum S_P + smooth)``,
    ``Tsens = (sum S_T P + smooth) / (sum S_T + smooth)``,
    ``clDice = 2 Tprec Tsens / (Tprec + Tsens)``; the loss term is ``1 - clDice``.
    Ignored positions count as background in both skeletons (probability and target 0 there) and
    are left out of every sum, so their logits cannot change the loss and get zero gradient.
    Region-loss conventions otherwise (``batch``, ``reduction`` shapes, ``class_weights``).
    The multiclass target is materialised one-hot: the skeleton needs the dense class maps.

    Args:
        alpha: weight of the clDice term, in [0, 1]; default 0.5 (the paper's code).
        iterations: soft-skeleton erosion steps, int >= 0; default 3.
        smooth: added to numerators and denominators; default 1 (the paper's code).
        batch: sum the statistics over the batch before the ratios.
        **shared: ``mode``, ``from_logits``, ``ignore_index``, ``reduction``, ``class_weights``,
            ``weight_scheme``, ``class_weight_beta``, ``include_background`` (default ``False``:
            the background's skeleton is meaningless).

    Raises:
        ValueError: an option out of range or an unsupported keyword; at call time, bad input.

    Example::

        loss = SoftClDiceLoss(mode="binary", iterations=5)
        value = loss(logits, target)  # thin structures: vessels, roads, cracks
    """

    uses = frozenset({"probs"})
    shared_defaults = {"include_background": False}

    def __init__(self, *, alpha: float = 0.5, iterations: int = 3, smooth: float = 1.0,
                 batch: bool = False, **shared: object) -> None:
        super().__init__(**shared)
        check_range("alpha", alpha, 0.0, 1.0)
        check_range("smooth", smooth, 0.0, math.inf)
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
            raise ValueError(f"iterations must be a non-negative int, got {iterations!r}")
        self.alpha = float(alpha)
        self.iterations = iterations
        self.smooth = float(smooth)
        self.batch = bool(batch)

    def compute(self, inp: SegInput) -> Tensor:
        all_probs = inp.probs
        tp, sum_p, sum_t = inp.class_stats(False)
        if self.batch:
            tp, sum_p, sum_t = tp.sum(0), sum_p.sum(0), sum_t.sum(0)
        dice = 1.0 - safe_ratio(2.0 * tp + self.smooth, sum_p + sum_t + self.smooth)
        # skeletonise only the channels that are scored: the background's costs a full pass
        first = 0 if self.include_background or inp.mode == "binary" else 1
        probs = all_probs[:, first:]
        target = inp.hard_target_one_hot()[:, first:]
        if inp.valid is not None:
            # the skeleton pools over neighbours: ignored positions must hold a constant before it
            mask = inp.valid.unsqueeze(1) if inp.mode == "multiclass" else inp.valid[:, first:]
            probs = probs.masked_fill(~mask, 0.0)
        shape = probs.shape[:2] + inp.spatial_shape
        skel_p = soft_skeleton(probs.reshape(shape), self.iterations).flatten(2)
        skel_t = soft_skeleton(target.reshape(shape), self.iterations).flatten(2)
        if inp.valid is not None:
            skel_p, skel_t = skel_p.masked_fill(~mask, 0.0), skel_t.masked_fill(~mask, 0.0)
        sums = [(skel_p * target).sum(-1), skel_p.sum(-1), (skel_t * probs).sum(-1), skel_t.sum(-1)]
        if self.batch:
            sums = [s.sum(0) for s in sums]
        t_prec = safe_ratio(sums[0] + self.smooth, sums[1] + self.smooth)
        t_sens = safe_ratio(sums[2] + self.smooth, sums[3] + self.smooth)
        cl_dice = 1.0 - safe_ratio(2.0 * t_prec * t_sens, t_prec + t_sens)
        if first:
            # channel 0 is dropped by reduce_classes; any finite value keeps the layout (N, C)
            cl_dice = torch.cat([torch.zeros_like(cl_dice[..., :1]), cl_dice], dim=-1)
        per_class = (1.0 - self.alpha) * dice + self.alpha * cl_dice
        return self.reduce_classes(per_class, inp)
