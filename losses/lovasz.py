"""Lovász losses (Berman et al., CVPR 2018): convex surrogates of the Jaccard loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import SegmentationLoss
from losses.inputs import SegInput
from losses.registry import register


def lovasz_grad(fg_sorted: Tensor) -> Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. errors sorted in decreasing order.

    ``fg_sorted``: ``(..., P)`` 0/1 foreground indicators in the errors' order; batched over
    leading dims (one row per image and class).
    """
    gts = fg_sorted.sum(-1, keepdim=True)
    intersection = gts - fg_sorted.cumsum(-1)
    union = gts + (1.0 - fg_sorted).cumsum(-1)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


def lovasz_extension(errors: Tensor, fg: Tensor) -> Tensor:
    """``sum_i e_(i) g_i``: errors sorted decreasingly, dotted with the Lovász gradient; ``(...)``.

    The extension is piecewise linear in the errors, so its gradient is ``g`` mapped back to the
    unsorted positions. The sort runs without autograd and only that map is kept for backward,
    instead of the sorted values, the int64 permutation and ``g`` that a differentiable sort keeps.
    """
    with torch.no_grad():
        order = errors.argsort(dim=-1, descending=True)
        weights = torch.empty_like(errors).scatter_(-1, order, lovasz_grad(fg.gather(-1, order)))
    return (errors * weights).sum(-1)


@register("lovasz")
class LovaszLoss(SegmentationLoss):
    """Lovász-softmax (multiclass) / Lovász-hinge (binary, multilabel) loss (Berman et al. 2018).

    Multiclass: for each class ``c`` the errors ``|1[y=c] - p_c|`` are sorted decreasingly and
    dotted with the gradient of the Lovász extension of the Jaccard loss; the loss averages the
    classes present in the target (``classes='present'`` of the paper). Binary/multilabel with
    logits: Lovász hinge on ``relu(1 - x (2t - 1))`` per channel, averaged over channels (smp
    flattens multilabel channels into one binary problem); with ``from_logits=False`` the
    probability errors ``|t - p|`` are used instead of the hinge. ``per_image=True`` computes each
    image separately and averages the images that have a non-ignored position (an all-ignored
    image is left out of the mean, and is 0 in ``reduction="none"``); ``False`` (default) treats
    the batch as one image. Ignored positions are sorted last with zero error, so they affect no
    term. ``class_weights``: weighted mean over the averaged classes. ``reduction="none"`` gives
    ``(N,)`` with ``per_image=True``, else a 0-dim value. All classes are sorted at once.

    Args:
        per_image: one Lovász loss per image, averaged; default ``False``.
        **shared: ``mode``, ``from_logits``, ``ignore_index``, ``reduction``, ``class_weights``,
            ``weight_scheme``, ``class_weight_beta``, ``include_background``.

    Raises:
        ValueError: an unsupported keyword; at call time, bad input.

    Example::

        loss = LovaszLoss(mode="multiclass", per_image=True)
        value = loss(logits, target)
    """

    def __init__(self, *, per_image: bool = False, **shared: object) -> None:
        super().__init__(**shared)
        self.per_image = bool(per_image)

    uses = frozenset({"probs"})

    def compute(self, inp: SegInput) -> Tensor:
        fg = inp.hard_target_one_hot() if inp.mode == "multiclass" else inp.target
        if inp.mode != "multiclass" and inp.from_logits:
            errors = F.relu(1.0 - inp.scores * (2.0 * fg - 1.0))
            # the hinge averages every channel, present or not (as Berman et al.'s binary loss)
            present_only = False
        else:
            # where() keeps a bool mask for backward, abs() would keep the float difference
            errors = torch.where(fg > 0.5, 1.0 - inp.probs, inp.probs) if inp.mode == "multiclass" \
                else (fg - inp.probs).abs()
            present_only = inp.mode == "multiclass"
        valid = inp.valid
        if valid is not None:
            mask = valid.unsqueeze(1) if inp.mode == "multiclass" else valid
            errors = errors.masked_fill(~mask, 0.0)
        if not self.per_image:
            errors = errors.transpose(0, 1).reshape(1, errors.shape[1], -1)
            fg = fg.transpose(0, 1).reshape(1, fg.shape[1], -1)
        per_class = lovasz_extension(errors, fg)  # (B, C)
        present = fg.sum(-1) > 0 if present_only else torch.ones_like(per_class, dtype=torch.bool)
        weights = present.to(per_class.dtype)
        w = self.weights_for(inp)
        if w is not None:
            weights = weights * (w[1:] if inp.mode == "binary" else w)
        if not self.include_background and inp.mode != "binary":
            per_class, weights = per_class[:, 1:], weights[:, 1:]
        per_image = (per_class * weights).sum(-1) / weights.sum(-1).clamp_min(1e-12)
        if self.reduction == "none":
            return per_image if self.per_image else per_image.squeeze(0)
        if self.reduction == "sum":
            return per_image.sum()
        if self.per_image and valid is not None:
            scored = valid.flatten(1).any(1).to(per_image.dtype)
            return (per_image * scored).sum() / scored.sum().clamp_min(1.0)
        return per_image.mean()
