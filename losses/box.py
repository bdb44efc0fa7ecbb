"""Box-regression losses for detection (the contract is in docs/losses.md and docs/detection.md).

Every loss is called as ``loss(pred_boxes, target_boxes)`` with two ``(N, 4)`` tensors and
returns one value per box pair, reduced by ``reduction``:

- ``"none"``: a ``(N,)`` tensor (``(0,)`` for empty input),
- ``"sum"``: the sum over pairs,
- ``"mean"``: the mean over pairs; empty input gives ``0`` that still carries a gradient
  (``0 * sum``), so a batch without foreground anchors trains without NaN.

``box_space`` tells the detector what to feed:

- ``"deltas"`` (``smooth_l1``, ``l1``, ``l2``): any ``(N, 4)`` coordinates; the detector passes
  its encoded regression output and the encoded target. The per-pair value is the **sum over the
  four coordinates** (as torchvision's detection heads do before normalising by the number of
  foreground anchors), so ``reduction="sum"`` equals ``F.l1_loss(..., reduction="sum")`` and
  ``"mean"`` is four times ``F.l1_loss(..., reduction="mean")``.
- ``"boxes"`` (IoU family, ``nwd``): absolute ``x1, y1, x2, y2`` in pixels with ``x2 >= x1``,
  ``y2 >= y1``; the detector decodes its prediction first. Zero-width or zero-height boxes and
  points are allowed: every value and gradient stays finite, and gradients stay below 1e3 per
  pixel for degenerate boxes on a pixel scale (``giou`` and ``ciou`` floor a sub-pixel area or
  diagonal at 1 px in the few places where ``eps`` alone would give ``1/eps``; the distance
  terms are scale-free, so two points ``r`` px apart still see gradients of about ``1/r``).

Every loss here is symmetric in its two arguments and computes in float32 whatever the input
dtype (integers, fp16, bf16; float64 stays float64), also under autocast; the result is float32.
Each constructor takes its own keywords plus ``reduction`` (and ``eps`` where something is
divided); an unknown keyword raises ``ValueError`` listing the accepted ones.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.options import own_keywords, resolve_shared
from losses.registry import register

REDUCTIONS = ("mean", "sum", "none")
BOX_DEFAULTS: dict[str, object] = {"reduction": "mean", "eps": 1e-7}


class BoxLoss(nn.Module):
    """Shared argument checks, float32 computation and reduction; subclasses implement ``per_pair``.

    Own keywords are keyword-only in a subclass's ``__init__``; ``shared_keywords`` lists which of
    ``reduction`` and ``eps`` it takes (defaults in :data:`BOX_DEFAULTS`).
    """

    box_space = "boxes"
    shared_keywords: tuple[str, ...] = ("reduction", "eps")

    def __init__(self, **shared: object) -> None:
        super().__init__()
        options = resolve_shared(type(self), BoxLoss, shared, self.shared_keywords, BOX_DEFAULTS)
        name = type(self).__name__
        if options["reduction"] not in REDUCTIONS:
            raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {options['reduction']!r}")
        if not options["eps"] > 0:
            raise ValueError(f"{name}: eps must be > 0, got {options['eps']!r}")
        self.reduction: str = options["reduction"]
        self.eps = float(options["eps"])

    @classmethod
    def keyword_defaults(cls) -> dict[str, object]:
        """Every keyword this loss accepts, with its default (what its YAML file must show)."""
        return {**{k: BOX_DEFAULTS[k] for k in cls.shared_keywords}, **own_keywords(cls, BoxLoss)}

    def forward(self, pred_boxes: Tensor, target_boxes: Tensor) -> Tensor:
        _check_pairs(pred_boxes, target_boxes)
        # float32 whatever the input (fp16 overflows on the areas of 300 px boxes, bf16 keeps
        # 8 bits of mantissa), also under autocast; float64 stays float64
        with torch.autocast(device_type=pred_boxes.device.type, enabled=False):
            loss = self.per_pair(_upcast(pred_boxes), _upcast(target_boxes))
        if self.reduction == "sum":
            return loss.sum()
        if self.reduction == "mean":
            return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
        return loss

    def per_pair(self, pred: Tensor, target: Tensor) -> Tensor:
        """Unreduced ``(N,)`` loss of float ``(N, 4)`` inputs."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, eps={self.eps}"


# --- L1 family: encoded deltas -----------------------------------------------------------------


@register("smooth_l1", task="detection")
class SmoothL1BoxLoss(BoxLoss):
    """Smooth-L1 (Huber / beta) loss, summed over the 4 coordinates of each pair.

    ``sum_i 0.5 * d_i**2 / beta if |d_i| < beta else |d_i| - 0.5 * beta`` with ``d = pred - target``
    (Girshick 2015, Fast R-CNN). ``beta = 0`` is plain L1. No ``eps``: nothing is divided.

    Args:
        beta: >= 0, where the quadratic part ends; default 1/9 (Detectron's, for encoded deltas).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Raises:
        ValueError: an option out of range or an unsupported keyword; at call time, inputs that
            are not two ``(N, 4)`` tensors of one shape.

    Example::

        loss = SmoothL1BoxLoss(beta=1 / 9)
        value = loss(pred_deltas, target_deltas)  # (N, 4) each
    """

    box_space = "deltas"

    shared_keywords = ("reduction",)

    def __init__(self, *, beta: float = 1.0 / 9.0, **shared: object) -> None:
        super().__init__(**shared)
        if not beta >= 0:
            raise ValueError(f"SmoothL1BoxLoss: beta must be >= 0, got {beta!r}")
        self.beta = float(beta)

    def per_pair(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(pred, target, reduction="none", beta=self.beta).sum(dim=-1)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, reduction={self.reduction!r}"


@register("l1", task="detection")
class L1BoxLoss(BoxLoss):
    """L1 loss ``sum_i |pred_i - target_i|`` over the 4 coordinates of each pair.

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Raises:
        ValueError: an option out of range or an unsupported keyword; at call time, inputs that
            are not two ``(N, 4)`` tensors of one shape.

    Example::

        loss = L1BoxLoss()
        value = loss(pred_deltas, target_deltas)  # (N, 4) each
    """

    box_space = "deltas"
    shared_keywords = ("reduction",)

    def per_pair(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs().sum(dim=-1)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


@register("l2", task="detection")
class L2BoxLoss(BoxLoss):
    """Squared error ``sum_i (pred_i - target_i)**2`` over the 4 coordinates of each pair.

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Raises:
        ValueError: an option out of range or an unsupported keyword; at call time, inputs that
            are not two ``(N, 4)`` tensors of one shape.

    Example::

        loss = L2BoxLoss(reduction="sum")
        value = loss(pred_deltas, target_deltas)  # (N, 4) each
    """

    box_space = "deltas"
    shared_keywords = ("reduction",)

    def per_pair(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).square().sum(dim=-1)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


# --- IoU family and NWD: decoded boxes ---------------------------------------------------------


@register("iou", task="detection")
class IoULoss(BoxLoss):
    """IoU loss: ``1 - IoU`` (linear), or ``-log(max(IoU, eps))`` with ``log_loss=True`` (UnitBox,
    Yu et al. 2016). ``IoU = inter / (union + eps)``; disjoint boxes cost 1 (linear) or
    ``-log(eps)`` (log) and get no gradient from the overlap term, unlike giou/diou/ciou.

    Args:
        log_loss: ``-log(IoU)`` instead of ``1 - IoU``; default ``False``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        eps: > 0, keeps divisions finite; default 1e-7.

    Raises:
        ValueError: an option out of range or an unsupported keyword; at call time, inputs that
            are not two ``(N, 4)`` tensors of one shape.

    Example::

        loss = IoULoss(log_loss=True)
        value = loss(pred_boxes, target_boxes)  # (N, 4) absolute x1, y1, x2, y2
    """

    def __init__(self, *, log_loss: bool = False, **shared: object) -> None:
        super().__init__(**shared)
        self.log_loss = bool(log_loss)

    def per_pair(self, pred: Tensor, target: Tensor) -> Tensor:
        iou = _iou(*_columns(pred, target), self.eps)
        return -torch.log(iou.clamp(min=self.eps)) if self.log_loss else 1.0 - iou

    def extra_repr(self) -> str:
        return f"log_loss={self.log_loss}, {super().extra_repr()}"


@register("giou", task="detection")
class GIoULoss(BoxLoss):
    """Generalized IoU loss (Rezatofighi et al. 2019): ``1 - IoU + (|C| - |U|) / (|C| + eps)``,
    ``C`` the smallest enclosing box, ``U`` the union. Same values and gradients as
    ``torchvision.ops.generalized_box_iou_loss`` when ``|C| >= 1`` px². Below that (both boxes
    degenerate on one line, or inside a sub-pixel area) ``|C|`` counts as 1 px² in the denominator:
    the penalty rises linearly from 0 to its value at 1 px² instead of jumping within ``eps``,
    which gave such pairs gradients of ``1/eps``.

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        eps: > 0, keeps divisions finite; default 1e-7.

    Raises:
        ValueError: an option out of range or an unsupported keyword; at call time, inputs that
            are not two ``(N, 4)`` tensors of one shape.

    Example::

        loss = GIoULoss()
        value = loss(pred_boxes, target_boxes)  # (N, 4) absolute x1, y1, x2, y2
    """

    def per_pair(self, pred: Tensor, target: Tensor) -> Tensor:
        p, t = _columns(pred, target)
        inter, union = _inter_union(p, t)
        cw, ch = _enclosing_wh(p, t)
        area_c = cw * ch
        return 1.0 - inter / (union + self.eps) + (area_c - union) / (area_c.clamp_min(1.0) + self.eps)


@register("diou", task="detection")
class DIoULoss(BoxLoss):
    """Distance IoU loss (Zheng et al. 2020): ``1 - IoU + rho**2 / (c**2 + eps)``, ``rho`` the
    distance between the box centres, ``c`` the diagonal of the smallest enclosing box. Same values
    as ``torchvision.ops.distance_box_iou_loss``.

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        eps: > 0, keeps divisions finite; default 1e-7.

    Raises:
        ValueError: an option out of range or an unsupported keyword; at call time, inputs that
            are not two ``(N, 4)`` tensors of one shape.

    Example::

        loss = DIoULoss()
        value = loss(pred_boxes, target_boxes)  # (N, 4) absolute x1, y1, x2, y2
    """

    def per_pair(self, pred: Tensor, target: Tensor) -> Tensor:
        return _diou_and_iou(*_columns(pred, target), self.eps)[0]


@register("ciou", task="detection")
class CIoULoss(BoxLoss):
    """Complete IoU loss (Zheng et al. 2020): DIoU loss ``+ alpha * v`` with the aspect term
    ``v = 4 / pi**2 * (atan(w_t / h_t) - atan(w_p / h_p))**2`` and the trade-off
    ``alpha = v / (1 - IoU + v + eps)``, held constant in the backward pass (as in the paper and
    torchvision). Heights are ``h + eps`` so zero-height boxes stay finite; otherwise the values
    equal ``torchvision.ops.complete_box_iou_loss``. The aspect of a point is undefined and
    ``d atan(w/h)`` grows as ``1/sqrt(w^2 + h^2)``: for boxes with a diagonal below 1 px the
    gradient of the angle is that of a 1 px diagonal (the CIoU authors drop the ``1/(w^2 + h^2)``
    factor altogether for the same reason), so degenerate boxes get a bounded gradient (< 2 per
    pixel from this term). Gradients of boxes above 1 px equal torchvision's. A ``create_graph``
    backward differentiates that gradient as it is, with ``alpha``'s dependence on the boxes.

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        eps: > 0, keeps divisions finite; default 1e-7.

    Raises:
        ValueError: an option out of range or an unsupported keyword; at call time, inputs that
            are not two ``(N, 4)`` tensors of one shape.

    Example::

        loss = CIoULoss()
        value = loss(pred_boxes, target_boxes)  # (N, 4) absolute x1, y1, x2, y2
    """

    def per_pair(self, pred: Tensor, target: Tensor) -> Tensor:
        p, t = _columns(pred, target)
        diou, iou = _diou_and_iou(p, t, self.eps)
        (wp, hp), (wt, ht) = _wh(p), _wh(t)
        angle_t = _AspectAngle.apply(wt, ht + self.eps)
        angle_p = _AspectAngle.apply(wp, hp + self.eps)
        v = (4.0 / math.pi**2) * (angle_t - angle_p).square()
        alpha = v / (1.0 - iou + v + self.eps)
        return diou + _ConstantFactor.apply(alpha, v)


@register("eiou", task="detection")
class EIoULoss(BoxLoss):
    """Efficient IoU loss (Zhang et al. 2021, "Focal and Efficient IOU Loss"): DIoU loss plus
    separate width and height penalties ``(w_p - w_t)**2 / (C_w**2 + eps) + (h_p - h_t)**2 /
    (C_h**2 + eps)``, with ``C_w, C_h`` the width and height of the smallest enclosing box.

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        eps: > 0, keeps divisions finite; default 1e-7.

    Raises:
        ValueError: an option out of range or an unsupported keyword; at call time, inputs that
            are not two ``(N, 4)`` tensors of one shape.

    Example::

        loss = EIoULoss()
        value = loss(pred_boxes, target_boxes)  # (N, 4) absolute x1, y1, x2, y2
    """

    def per_pair(self, pred: Tensor, target: Tensor) -> Tensor:
        p, t = _columns(pred, target)
        diou, _ = _diou_and_iou(p, t, self.eps)
        (wp, hp), (wt, ht) = _wh(p), _wh(t)
        cw, ch = _enclosing_wh(p, t)
        return diou + (wp - wt).square() / (cw.square() + self.eps) + (hp - ht).square() / (ch.square() + self.eps)


@register("siou", task="detection")
class SIoULoss(BoxLoss):
    """SCYLLA IoU loss (Gevorgyan 2022): ``1 - IoU + (Delta + Omega) / 2``.

    With centre offsets ``dx, dy``, ``sigma = sqrt(dx**2 + dy**2 + eps)`` and ``x`` the sine of the
    smaller angle between the centre line and an axis, ``x = min(|dx|, |dy|) / sigma``:

    - angle cost ``Lambda = 1 - 2 sin**2(arcsin(x) - pi/4) = 2 x sqrt(1 - x**2)``
      (the closed form avoids arcsin's infinite slope),
    - distance cost ``Delta = sum_{t=x,y} 1 - exp(-(2 - Lambda) * rho_t)``,
      ``rho_x = (dx / (C_w + eps))**2``, ``rho_y = (dy / (C_h + eps))**2`` (enclosing box size),
    - shape cost ``Omega = sum_{t=w,h} (1 - exp(-omega_t))**theta``,
      ``omega_w = |w_p - w_t| / (max(w_p, w_t) + eps)``, likewise for ``h``.

    Args:
        theta: >= 1, exponent of the shape cost; default 4 (the paper uses 2-6).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        eps: > 0, keeps divisions finite; default 1e-7.

    Raises:
        ValueError: ``theta < 1``, another option out of range or an unsupported keyword; at call
            time, inputs that are not two ``(N, 4)`` tensors of one shape.

    Example::

        loss = SIoULoss(theta=4.0)
        value = loss(pred_boxes, target_boxes)  # (N, 4) absolute x1, y1, x2, y2
    """

    def __init__(self, *, theta: float = 4.0, **shared: object) -> None:
        super().__init__(**shared)
        if not theta >= 1:
            raise ValueError(f"SIoULoss: theta must be >= 1 (the paper uses 2-6; below 1 the shape "
                             f"cost has an infinite slope at equal sizes), got {theta!r}")
        self.theta = float(theta)

    def per_pair(self, pred: Tensor, target: Tensor) -> Tensor:
        eps = self.eps
        p, t = _columns(pred, target)
        iou = _iou(p, t, eps)
        dx, dy = _center_offsets(p, t)
        cw, ch = _enclosing_wh(p, t)
        (wp, hp), (wt, ht) = _wh(p), _wh(t)

        sin_small = torch.minimum(dx.abs(), dy.abs()) / torch.sqrt(dx.square() + dy.square() + eps)
        angle = 2.0 * sin_small * torch.sqrt(1.0 - sin_small.square())
        gamma = 2.0 - angle
        distance = 2.0 - torch.exp(-gamma * (dx / (cw + eps)).square()) - torch.exp(-gamma * (dy / (ch + eps)).square())
        omega_w = (wp - wt).abs() / (torch.maximum(wp, wt) + eps)
        omega_h = (hp - ht).abs() / (torch.maximum(hp, ht) + eps)
        shape = (1.0 - torch.exp(-omega_w)).pow(self.theta) + (1.0 - torch.exp(-omega_h)).pow(self.theta)
        return 1.0 - iou + 0.5 * (distance + shape)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, {super().extra_repr()}"


@register("nwd", task="detection")
class NWDLoss(BoxLoss):
    """Normalized Gaussian Wasserstein Distance loss for tiny objects (Wang et al. 2021).

    Each box is the Gaussian ``N((cx, cy), diag(w**2 / 4, h**2 / 4))``; the squared 2-Wasserstein
    distance between two of them is ``W2 = dcx**2 + dcy**2 + (dw**2 + dh**2) / 4``, and
    ``loss = 1 - exp(-sqrt(W2 + eps) / constant)``. Unlike IoU it varies smoothly for disjoint and
    few-pixel boxes. ``constant`` (``C`` in the paper, in pixels) sets the distance scale; the paper
    uses the dataset's average absolute object size (12.8 on AI-TOD).

    Args:
        constant: > 0, the distance scale ``C`` in pixels; default 12.8.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        eps: > 0, keeps divisions finite; default 1e-7.

    Raises:
        ValueError: an option out of range or an unsupported keyword; at call time, inputs that
            are not two ``(N, 4)`` tensors of one shape.

    Example::

        loss = NWDLoss(constant=8.0)  # about the data's mean object size sqrt(w h)
        value = loss(pred_boxes, target_boxes)
    """

    def __init__(self, *, constant: float = 12.8, **shared: object) -> None:
        super().__init__(**shared)
        if not constant > 0:
            raise ValueError(f"NWDLoss: constant must be > 0 (pixels), got {constant!r}")
        self.constant = float(constant)

    def per_pair(self, pred: Tensor, target: Tensor) -> Tensor:
        p, t = _columns(pred, target)
        dx, dy = _center_offsets(p, t)
        (wp, hp), (wt, ht) = _wh(p), _wh(t)
        w2 = dx.square() + dy.square() + 0.25 * ((wp - wt).square() + (hp - ht).square())
        return 1.0 - torch.exp(-torch.sqrt(w2 + self.eps) / self.constant)

    def extra_repr(self) -> str:
        return f"constant={self.constant}, {super().extra_repr()}"


# --- shared geometry ---------------------------------------------------------------------------


class _ConstantFactor(torch.autograd.Function):
    """``alpha * v`` whose gradient holds ``alpha`` constant, ``alpha dv`` (CIoU's trade-off).

    ``torch.no_grad`` around ``alpha`` would give the same gradient, but a ``create_graph``
    backward would then miss that ``alpha`` moves with the boxes: here ``alpha`` keeps its history,
    so the second derivative is the exact Jacobian of the gradient CIoU trains with.
    """

    @staticmethod
    def forward(ctx, alpha: Tensor, v: Tensor) -> Tensor:
        ctx.save_for_backward(alpha)
        return alpha * v

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:
        (alpha,) = ctx.saved_tensors
        return None, grad * alpha


class _AspectAngle(torch.autograd.Function):
    """``atan(w / h)`` whose gradient ``(h, -w) / (w^2 + h^2)`` uses ``max(w^2 + h^2, 1)``: exact for
    boxes above a 1 px diagonal, bounded by 1 per pixel below it (see :class:`CIoULoss`)."""

    @staticmethod
    def forward(ctx, w: Tensor, h: Tensor) -> Tensor:
        ctx.save_for_backward(w, h)
        return torch.atan(w / h)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        w, h = ctx.saved_tensors
        scale = grad / (w * w + h * h).clamp_min(1.0)
        return scale * h, -scale * w



def _check_pairs(pred: Tensor, target: Tensor) -> None:
    for name, boxes in (("pred_boxes", pred), ("target_boxes", target)):
        if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4:
            seen = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
            raise ValueError(f"{name} must be a tensor of shape (N, 4) (x1, y1, x2, y2), got {seen}")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred_boxes and target_boxes must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def _upcast(boxes: Tensor) -> Tensor:
    return boxes if boxes.dtype in (torch.float32, torch.float64) else boxes.float()


Columns = tuple[Tensor, Tensor, Tensor, Tensor]


def _columns(pred: Tensor, target: Tensor) -> tuple[Columns, Columns]:
    # One unbind per input: its backward is a single stack, whereas every column slice would
    # allocate and scatter into a full (N, 4) gradient of its own.
    return pred.unbind(-1), target.unbind(-1)


def _wh(box: Columns) -> tuple[Tensor, Tensor]:
    return box[2] - box[0], box[3] - box[1]


def _inter_union(p: Columns, t: Columns) -> tuple[Tensor, Tensor]:
    inter_w = (torch.minimum(p[2], t[2]) - torch.maximum(p[0], t[0])).clamp(min=0)
    inter_h = (torch.minimum(p[3], t[3]) - torch.maximum(p[1], t[1])).clamp(min=0)
    inter = inter_w * inter_h
    union = (p[2] - p[0]) * (p[3] - p[1]) + (t[2] - t[0]) * (t[3] - t[1]) - inter
    return inter, union


def _iou(p: Columns, t: Columns, eps: float) -> Tensor:
    inter, union = _inter_union(p, t)
    return inter / (union + eps)


def _enclosing_wh(p: Columns, t: Columns) -> tuple[Tensor, Tensor]:
    return torch.maximum(p[2], t[2]) - torch.minimum(p[0], t[0]), torch.maximum(p[3], t[3]) - torch.minimum(p[1], t[1])


def _center_offsets(p: Columns, t: Columns) -> tuple[Tensor, Tensor]:
    return 0.5 * (p[0] + p[2] - t[0] - t[2]), 0.5 * (p[1] + p[3] - t[1] - t[3])


def _diou_and_iou(p: Columns, t: Columns, eps: float) -> tuple[Tensor, Tensor]:
    iou = _iou(p, t, eps)
    cw, ch = _enclosing_wh(p, t)
    dx, dy = _center_offsets(p, t)
    return 1.0 - iou + (dx.square() + dy.square()) / (cw.square() + ch.square() + eps), iou
