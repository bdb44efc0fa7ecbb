"""Asymmetric unified focal loss (Yeung et al., CMIG 2022)."""
from __future__ import annotations

import torch
from torch import Tensor

from common.checks import check_range
from losses.base import SegmentationLoss
from losses.inputs import SegInput
from losses.options import COMMON
from losses.region import safe_ratio
from losses.registry import register


@register("unified_focal")
class AsymmetricUnifiedFocalLoss(SegmentationLoss):
    """``L = weight * L_mFT + (1 - weight) * L_mF`` (Yeung et al. 2022, asymmetric variant).

    Class 0 is the background (suppressed), the other classes are rare (enhanced); in
    binary/multilabel mode each channel is a background/foreground pair.

    - asymmetric focal: per pixel with true class ``y``, ``(1-delta) (1-p_0)^gamma (-log p_0)`` if
      ``y`` is background, else ``delta (-log p_y)``; mean over non-ignored pixels.
    - asymmetric focal Tversky: per sample and class ``TI_c = (TP + smooth) / (TP + delta FN +
      (1-delta) FP + smooth)``; background ``1 - TI_0``, rare classes ``(1 - TI_c)^(1-gamma)``; mean
      over samples and classes.

    The reference code clips probabilities to [1e-7, 1 - 1e-7] before the log; we use the exact
    log-softmax / log-sigmoid instead. ``reduction`` is ``mean`` only (the two terms are means
    over different sets); ``last_terms`` holds both terms' values after each forward.

    Args:
        weight: weight of the focal Tversky term, in [0, 1]; default 0.5 (the paper's).
        delta: weight of the rare classes (FN in the Tversky term), in [0, 1]; default 0.6.
        gamma: background suppression / rare-class focal exponent, in [0, 1); default 0.5.
            ``gamma >= 1`` is rejected: the rare-class term ``(1 - TI)^(1 - gamma)`` would be
            constant.
        smooth: added to the Tversky numerator and denominator; default 1e-6.
        **shared: ``mode``, ``from_logits``, ``ignore_index``, ``reduction`` (``mean`` only).

    Raises:
        ValueError: an option out of range, ``reduction`` other than ``mean`` or an unsupported
            keyword; at call time, bad input.

    Example::

        loss = AsymmetricUnifiedFocalLoss(mode="binary")
        value = loss(logits, target)
    """

    uses = frozenset({"class_stats", "log_prob_of_target"})
    shared_keywords = COMMON

    def __init__(self, *, weight: float = 0.5, delta: float = 0.6, gamma: float = 0.5,
                 smooth: float = 1e-6, **shared: object) -> None:
        super().__init__(**shared)
        if self.reduction != "mean":
            raise ValueError(f"reduction: unified_focal supports only 'mean', got {self.reduction!r}")
        check_range("weight", weight, 0.0, 1.0)
        check_range("delta", delta, 0.0, 1.0)
        check_range("gamma", gamma, 0.0, 1.0, high_open=True)
        check_range("smooth", smooth, 0.0, float("inf"))
        self.weight, self.delta, self.gamma, self.smooth = float(weight), float(delta), float(gamma), float(smooth)
        self.last_terms: dict[str, Tensor] = {}

    def compute(self, inp: SegInput) -> Tensor:
        focal = self._asymmetric_focal(inp)
        tversky = self._asymmetric_focal_tversky(inp)
        self.last_terms = {"focal_tversky": tversky.detach(), "focal": focal.detach()}
        return self.weight * tversky + (1.0 - self.weight) * focal

    def _asymmetric_focal(self, inp: SegInput) -> Tensor:
        d, g = self.delta, self.gamma
        if inp.mode == "multiclass":
            log_pt = inp.log_prob_of_target
            background = inp.target == 0
            suppress = (-torch.expm1(log_pt)).clamp_min(1e-12).pow(g)
            loss = torch.where(background, (1.0 - d) * suppress, torch.full_like(log_pt, d)) * -log_pt
        else:
            t = inp.target
            background_term = (1.0 - d) * inp.probs.clamp_min(1e-12).pow(g) * -inp.log_one_minus_probs
            loss = t * d * -inp.log_probs + (1.0 - t) * background_term
        return self.reduce_pixels(loss, inp, inp.valid_float)

    def _asymmetric_focal_tversky(self, inp: SegInput) -> Tensor:
        tp, sum_p, sum_t = inp.class_stats(False)
        if inp.mode == "multiclass":
            fp, fn = sum_p - tp, sum_t - tp
            ti = safe_ratio(tp + self.smooth, tp + self.delta * fn + (1.0 - self.delta) * fp + self.smooth)
            rare = (1.0 - ti[:, 1:]).clamp_min(1e-12).pow(1.0 - self.gamma)
            return torch.cat([1.0 - ti[:, :1], rare], dim=1).mean()
        n = inp.valid_counts()
        tn = n - sum_p - sum_t + tp
        fp, fn = sum_p - tp, sum_t - tp
        # background's FP are the foreground's FN and vice versa
        ti_fg = safe_ratio(tp + self.smooth, tp + self.delta * fn + (1.0 - self.delta) * fp + self.smooth)
        ti_bg = safe_ratio(tn + self.smooth, tn + self.delta * fp + (1.0 - self.delta) * fn + self.smooth)
        rare = (1.0 - ti_fg).clamp_min(1e-12).pow(1.0 - self.gamma)
        return torch.stack([1.0 - ti_bg, rare], dim=-1).mean()
