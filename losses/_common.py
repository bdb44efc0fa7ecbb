"""Shared tensor plumbing for the segmentation losses: argument checks, mode handling, ignore masks,
one-hot-free per-class sums and the reductions.

Every segmentation loss turns its ``(prediction, target)`` pair into one :class:`SegInput` and computes
from it; a composite builds one :class:`SegInput` and hands it to all of its terms, so softmax /
log-softmax are computed once per forward (they are cached on the object).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.class_weights import SCHEMES, weights_from_counts

MODES = ("binary", "multiclass", "multilabel")
REDUCTIONS = ("mean", "sum", "none")

ClassWeights = Union[None, str, Sequence[float], Tensor]


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> None:
    """Raise ``ValueError`` unless ``low <= value <= high`` (with open ends where asked)."""
    bad_low = value <= low if low_open else value < low
    bad_high = value >= high if high_open else value > high
    if bad_low or bad_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")


class SegInput:
    """A validated, flattened ``(prediction, target)`` pair in float32 (float64 stays float64).

    Attributes (``P`` = number of spatial positions, ``C`` = channels of the prediction):

    - ``scores``: ``(N, C, P)`` float32 logits (or probabilities when ``from_logits=False``);
      binary mode always has ``C == 1``.
    - ``target``: multiclass ``(N, P)`` int64 class indices with ignored positions set to 0;
      binary/multilabel ``(N, C, P)`` float32 in [0, 1] with ignored positions set to 0.
    - ``valid``: ``None`` when nothing is ignored, else a bool mask shaped like ``target``.
    - ``probs`` / ``log_probs`` (cached): softmax / log-softmax over channels in multiclass mode,
      sigmoid / log-sigmoid elementwise otherwise; ``log_one_minus_probs`` for the sigmoid modes.
    """

    def __init__(self, prediction: Tensor, target: Tensor, mode: str, from_logits: bool,
                 ignore_index: int | None) -> None:
        if not torch.is_tensor(prediction) or not prediction.is_floating_point():
            raise ValueError(f"prediction must be a floating-point tensor, got "
                             f"{getattr(prediction, 'dtype', type(prediction))}")
        if not torch.is_tensor(target):
            raise ValueError(f"target must be a tensor, got {type(target).__name__}")
        self.mode = mode
        self.from_logits = from_logits
        if prediction.dtype in (torch.float16, torch.bfloat16):
            prediction = prediction.float()  # float64 stays float64 (gradcheck)
        if mode == "binary":
            prediction, target = _binary_shapes(prediction, target)
        elif prediction.dim() < 3:
            raise ValueError(f"prediction: {mode} mode expects (N, C, *S) with 1-3 spatial dims, "
                             f"got shape {tuple(prediction.shape)}")
        if prediction.dim() > 5:
            raise ValueError(f"prediction: at most 3 spatial dims are supported, got shape "
                             f"{tuple(prediction.shape)}")
        self.spatial_shape = tuple(prediction.shape[2:])
        n, c = prediction.shape[:2]
        self.scores = prediction.reshape(n, c, -1)
        if mode == "multiclass":
            self.target, self.valid = _multiclass_target(target, prediction.shape, ignore_index)
        else:
            self.target, self.valid = _sigmoid_target(target, prediction.shape, ignore_index, mode)
            self.target = self.target.to(prediction.dtype)

    @property
    def num_channels(self) -> int:
        return self.scores.shape[1]

    @cached_property
    def log_prob_of_target(self) -> Tensor:
        """Multiclass ``log p_y`` per position, ``(N, P)``.

        From logits and without a cached log-softmax, a hand-written autograd function saves no
        ``(N, C, P)`` tensor (torch's cross-entropy keeps the whole log-softmax for backward).
        """
        index = self.target.unsqueeze(1)
        if not self.from_logits:
            return self.scores.gather(1, index).squeeze(1).clamp_min(1e-12).log()
        if "log_probs" in self.__dict__:
            return self.log_probs.gather(1, index).squeeze(1)
        return _TargetLogSoftmax.apply(self.scores, self.target)

    @cached_property
    def log_probs(self) -> Tensor:
        if not self.from_logits:
            return self.probs.clamp_min(1e-12).log()
        if self.mode == "multiclass":
            return F.log_softmax(self.scores, dim=1)
        return F.logsigmoid(self.scores)

    @cached_property
    def probs(self) -> Tensor:
        if not self.from_logits:
            return self.scores
        if self.mode == "multiclass":
            if "log_probs" in self.__dict__:
                # a term already needed log-softmax: exp of it costs less than a second softmax
                return self.log_probs.exp()
            return F.softmax(self.scores, dim=1)
        return torch.sigmoid(self.scores)

    @cached_property
    def log_one_minus_probs(self) -> Tensor:
        """log(1 - p) for the sigmoid modes, computed stably from logits."""
        if not self.from_logits:
            return (1.0 - self.scores).clamp_min(1e-12).log()
        return F.logsigmoid(-self.scores)

    @cached_property
    def valid_float(self) -> Tensor | None:
        return None if self.valid is None else self.valid.to(self.scores.dtype)

    def class_stats(self, squared: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample, per-class soft sums ``(tp, sum_pred, sum_target)``, each ``(N, C)``.

        ``tp = sum_i p_ci t_ci``, ``sum_pred = sum_i p_ci`` (``p_ci**2`` when squared),
        ``sum_target = sum_i t_ci`` (``t_ci**2`` when squared), over non-ignored positions.
        Multiclass mode never builds a one-hot target: ``tp`` gathers the probability of the true
        class and scatter-adds it into its class, ``sum_target`` is a per-sample bincount; from
        logits, softmax and sums are one autograd node with a hand-written backward. Cached, so
        the region terms of a composite share one computation.
        """
        key = f"_class_stats_{squared}"
        if key not in self.__dict__:
            if self.mode == "multiclass" and self.from_logits and not squared and "probs" not in self.__dict__:
                stats = _SoftmaxClassStats.apply(self.scores, self.target, self.valid_float)
            elif self.mode == "multiclass":
                stats = self._multiclass_stats(self.probs, squared)
            else:
                stats = self._sigmoid_stats(squared)
            self.__dict__[key] = stats
        return self.__dict__[key]

    def _sigmoid_stats(self, squared: bool) -> tuple[Tensor, Tensor, Tensor]:
        p, t = self.probs, self.target  # ignored positions already hold 0 in target
        pp = p * p if squared else p
        p_sum = pp.sum(-1) if self.valid is None else torch.einsum("ncp,ncp->nc", pp, self.valid_float)
        tp = torch.einsum("ncp,ncp->nc", p, t)
        t_sum = (t * t).sum(-1) if squared else t.sum(-1)
        return tp, p_sum, t_sum

    def _multiclass_stats(self, p: Tensor, squared: bool) -> tuple[Tensor, Tensor, Tensor]:
        n, c, _ = p.shape
        index = self.target.unsqueeze(1)  # (N, 1, P)
        p_true = p.gather(1, index).squeeze(1)  # (N, P)
        ones = torch.ones_like(p_true) if self.valid is None else self.valid_float
        if self.valid is not None:
            p_true = p_true * ones
        tp = p.new_zeros(n, c).scatter_add_(1, self.target, p_true)
        t_sum = p.new_zeros(n, c).scatter_add_(1, self.target, ones)
        pp = p * p if squared else p
        if self.valid is None:
            p_sum = pp.sum(-1)
        else:
            # batched mat-vec: sums the masked probabilities without a (N, C, P) temporary
            p_sum = torch.bmm(pp, ones.unsqueeze(-1)).squeeze(-1)
        return tp, p_sum, t_sum

    def valid_counts(self) -> Tensor:
        """Number of non-ignored positions per sample and channel, ``(N, C)``."""
        n, c, p = self.scores.shape
        if self.valid is None:
            return self.scores.new_full((n, c), float(p))
        counts = self.valid_float.sum(-1)
        return counts.unsqueeze(1).expand(n, c) if self.mode == "multiclass" else counts

    def hard_target_one_hot(self) -> Tensor:
        """``(N, C, P)`` float target; only for losses that need the dense map (e.g. clDice)."""
        if self.mode != "multiclass":
            return self.target
        one_hot = torch.zeros_like(self.scores).scatter_(1, self.target.unsqueeze(1), 1.0)
        return one_hot if self.valid is None else one_hot * self.valid_float.unsqueeze(1)


class _TargetLogSoftmax(torch.autograd.Function):
    """``log_softmax(x, 1)`` gathered at the target class, saving nothing but its inputs: the
    backward recomputes the softmax (one fast kernel) instead of keeping an ``(N, C, P)`` tensor."""

    @staticmethod
    def forward(ctx, scores: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(scores, target)
        return F.log_softmax(scores, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        scores, target = ctx.saved_tensors
        # d log p_y / dx_c = 1[c = y] - softmax_c
        grad = grad.unsqueeze(1)
        grad_scores = F.softmax(scores, dim=1).mul_(-grad)
        return grad_scores.scatter_add_(1, target.unsqueeze(1), grad), None


class _SoftmaxClassStats(torch.autograd.Function):
    """``softmax(x, 1)`` reduced to per-class ``(tp, sum_p, sum_t)`` (see ``SegInput.class_stats``).

    Backward in one sweep: with ``G_ci = v_i (g_sp_c + g_tp_c [y_i = c])`` the softmax backward is
    ``p_ci (G_ci - sum_k p_ki G_ki)``; the inner sum is a batched mat-vec plus the true class's
    term, so no ``(N, C, P)`` gradient of the probabilities is formed.
    """

    @staticmethod
    def forward(ctx, scores: Tensor, target: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        p = F.softmax(scores, dim=1)
        n, c, _ = p.shape
        p_true = p.gather(1, target.unsqueeze(1)).squeeze(1)
        ones = torch.ones_like(p_true) if valid is None else valid
        tp = p.new_zeros(n, c).scatter_add_(1, target, p_true if valid is None else p_true * valid)
        t_sum = p.new_zeros(n, c).scatter_add_(1, target, ones)
        sum_p = p.sum(-1) if valid is None else torch.bmm(p, valid.unsqueeze(-1)).squeeze(-1)
        ctx.save_for_backward(p, target, valid)
        ctx.mark_non_differentiable(t_sum)
        return tp, sum_p, t_sum

    @staticmethod
    def backward(ctx, g_tp: Tensor, g_sp: Tensor, _: Tensor) -> tuple[Tensor, None, None]:
        p, target, valid = ctx.saved_tensors
        index = target.unsqueeze(1)
        p_true_g = p.gather(1, index).squeeze(1) * g_tp.gather(1, target)  # p_yi * g_tp_yi, (N, P)
        inner = torch.bmm(g_sp.unsqueeze(1), p).squeeze(1) + p_true_g
        grad = (g_sp.unsqueeze(-1) - inner.unsqueeze(1)).mul_(p)
        grad.scatter_add_(1, index, p_true_g.unsqueeze(1))
        if valid is not None:
            grad.mul_(valid.unsqueeze(1))
        return grad, None, None


def _binary_shapes(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Bring binary inputs to ``(N, 1, *S)`` each."""
    if prediction.dim() < 2:
        raise ValueError(f"prediction: binary mode expects (N, 1, *S) or (N, *S), got shape "
                         f"{tuple(prediction.shape)}")
    if prediction.dim() >= 3 and prediction.shape[1] == 1 and target.shape == prediction.shape:
        return prediction, target
    if prediction.dim() >= 3 and prediction.shape[1] == 1 and target.shape == prediction.shape[:1] + prediction.shape[2:]:
        return prediction, target.unsqueeze(1)
    if target.shape == prediction.shape:
        return prediction.unsqueeze(1), target.unsqueeze(1)
    raise ValueError(f"target: binary mode expects the spatial shape of prediction "
                     f"{tuple(prediction.shape)} (with or without the channel dim), got "
                     f"{tuple(target.shape)}")


def _multiclass_target(target: Tensor, shape: torch.Size, ignore_index: int | None
                       ) -> tuple[Tensor, Tensor | None]:
    n, c = shape[:2]
    expected = (n, *shape[2:])
    if tuple(target.shape) != expected:
        hint = " (multilabel targets have a channel dim; use mode='multilabel')" \
            if tuple(target.shape) == tuple(shape) else ""
        raise ValueError(f"target: multiclass mode expects shape {expected} for prediction "
                         f"{tuple(shape)}, got {tuple(target.shape)}{hint}")
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(f"target: multiclass mode expects integer class indices, got {target.dtype}")
    target = target.reshape(n, -1).long()
    valid = None
    if ignore_index is not None:
        ignored = target == ignore_index
        if bool(ignored.any()):
            valid = ~ignored
            target = target.masked_fill(ignored, 0)
    if target.numel():
        low, high = (int(v) for v in torch.aminmax(target))
        if low < 0 or high >= c:
            raise ValueError(f"target: class indices must lie in [0, {c}) or equal ignore_index="
                             f"{ignore_index}, got values in [{low}, {high}]")
    return target, valid


def _sigmoid_target(target: Tensor, shape: torch.Size, ignore_index: int | None, mode: str
                    ) -> tuple[Tensor, Tensor | None]:
    if tuple(target.shape) != tuple(shape):
        raise ValueError(f"target: {mode} mode expects the prediction's shape {tuple(shape)}, "
                         f"got {tuple(target.shape)}")
    target = target.reshape(shape[0], shape[1], -1).float()
    valid = None
    if ignore_index is not None:
        ignored = target == ignore_index
        if bool(ignored.any()):
            valid = ~ignored
            target = target.masked_fill(ignored, 0.0)
    if target.numel():
        low, high = (float(v) for v in torch.aminmax(target))
        if low < 0.0 or high > 1.0:
            raise ValueError(f"target: {mode} mode expects values in [0, 1] (or ignore_index="
                             f"{ignore_index}), got values in [{low}, {high}]")
    return target, valid


class SegmentationLoss(nn.Module):
    """Base of every segmentation loss: the common keywords of CONTRACTS section 3.

    ``class_weights`` has one meaning in every loss: the loss is a *weighted mean* over classes
    (region losses: ``sum_c w_c L_c / sum_c w_c``) or over pixels weighted by their true class
    (pixel losses: ``sum_i w_{y_i} l_i / sum_i w_{y_i}``, as ``torch.nn.functional.cross_entropy``).
    Multiclass/multilabel weights have length C; binary weights have length 2 (background,
    foreground). ``"auto"`` derives them from the training split's class pixel counts with
    ``weight_scheme`` (see :mod:`losses.class_weights`) once :meth:`set_class_counts` is called.
    All computation runs in float32, also under bf16/fp16 autocast.
    """

    def __init__(self, mode: str = "multiclass", from_logits: bool = True,
                 ignore_index: int | None = None, class_weights: ClassWeights = None,
                 include_background: bool = True, reduction: str = "mean",
                 weight_scheme: str = "inverse", beta: float = 0.9999) -> None:
        super().__init__()
        check_choice("mode", mode, MODES)
        check_choice("reduction", reduction, REDUCTIONS)
        check_choice("weight_scheme", weight_scheme, SCHEMES)
        check_range("beta", beta, 0.0, 1.0, low_open=True, high_open=True)
        if ignore_index is not None and not isinstance(ignore_index, int):
            raise ValueError(f"ignore_index must be an int or None, got {ignore_index!r}")
        self.mode = mode
        self.from_logits = bool(from_logits)
        self.ignore_index = ignore_index
        self.include_background = bool(include_background)
        self.reduction = reduction
        self.weight_scheme = weight_scheme
        self.beta = beta
        self._auto_weights = isinstance(class_weights, str)
        if self._auto_weights and class_weights != "auto":
            raise ValueError(f"class_weights must be None, 'auto' or a list of per-class weights, "
                             f"got {class_weights!r}")
        self.register_buffer("class_weights", None if class_weights is None or self._auto_weights
                             else _as_weights(class_weights), persistent=True)

    @property
    def requires_class_counts(self) -> bool:
        return self._auto_weights and self.class_weights is None

    def set_class_counts(self, counts: Tensor) -> None:
        """Resolve ``class_weights="auto"`` from per-class training pixel counts ``(C,)``."""
        if self._auto_weights:
            self.class_weights = weights_from_counts(counts, self.weight_scheme, self.beta)

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        with torch.autocast(device_type=prediction.device.type, enabled=False):
            return self.compute(self.prepare(prediction, target))

    def prepare(self, prediction: Tensor, target: Tensor) -> SegInput:
        return SegInput(prediction, target, self.mode, self.from_logits, self.ignore_index)

    def compute(self, inp: SegInput) -> Tensor:
        raise NotImplementedError

    def weights_for(self, inp: SegInput) -> Tensor | None:
        """The class weights checked against the input's classes (``None`` if unweighted)."""
        if self.requires_class_counts:
            raise ValueError("class_weights='auto' needs set_class_counts(counts) before the "
                             "first forward call")
        w = self.class_weights
        if w is None:
            return None
        expected = 2 if inp.mode == "binary" else inp.num_channels
        if w.numel() != expected:
            raise ValueError(f"class_weights: expected {expected} weights for {inp.mode} mode with "
                             f"{inp.num_channels} channel(s), got {w.numel()}")
        return w.to(inp.scores.device, inp.scores.dtype)

    def reduce_classes(self, per_class: Tensor, inp: SegInput) -> Tensor:
        """Reduce a per-class loss ``(N, C)`` or ``(C,)`` with weights, background and reduction."""
        w = self.weights_for(inp)
        if w is not None and inp.mode == "binary":
            w = w[1:]
        if not self.include_background and inp.mode != "binary":
            per_class = per_class[..., 1:]
            w = None if w is None else w[1:]
        if w is not None:
            per_class = per_class * w
        if self.reduction == "none":
            return per_class
        if self.reduction == "sum":
            return per_class.sum()
        if per_class.numel() == 0:
            return per_class.sum()
        if w is None:
            return per_class.mean()
        denom = w.sum() * (per_class.numel() // max(w.numel(), 1))
        return per_class.sum() / denom.clamp_min(1e-12)

    def reduce_pixels(self, loss_map: Tensor, inp: SegInput, pixel_weights: Tensor | None) -> Tensor:
        """Reduce a per-position loss shaped like ``inp.target``: weighted mean over valid positions.

        ``pixel_weights`` (same shape or ``None``) already carries class weights and the ignore
        mask; ``none`` returns the map in the prediction's layout with ignored positions at 0.
        """
        if pixel_weights is not None:
            loss_map = loss_map * pixel_weights
        if self.reduction == "none":
            return self._unflatten(loss_map, inp)
        total = loss_map.sum()
        if self.reduction == "sum":
            return total
        count = pixel_weights.sum() if pixel_weights is not None else loss_map.new_tensor(loss_map.numel())
        # an all-ignored batch has total == 0, so the clamp yields 0 (with a gradient), never NaN
        return total / count.clamp_min(1e-12)

    def _unflatten(self, loss_map: Tensor, inp: SegInput) -> Tensor:
        n = loss_map.shape[0]
        if inp.mode == "multiclass":
            return loss_map.reshape(n, *inp.spatial_shape)
        return loss_map.reshape(n, loss_map.shape[1], *inp.spatial_shape)

    def pixel_weights(self, inp: SegInput, target_float: Tensor | None = None) -> Tensor | None:
        """Per-position weights ``w_{y_i}`` times the valid mask (``None`` when all are 1).

        Multiclass: ``(N, P)`` indexed by the true class (background pixels dropped when
        ``include_background=False``). Sigmoid modes: ``(N, C, P)``; binary weights blend
        background/foreground by the (soft) target, multilabel weights scale each channel.
        """
        w = self.weights_for(inp)
        valid = inp.valid_float
        if inp.mode == "multiclass":
            if not self.include_background:
                keep = (inp.target != 0).to(inp.scores.dtype)
                valid = keep if valid is None else valid * keep
            # index_select is a plain gather; advanced indexing w[target] is several times slower on CPU
            pw = None if w is None else w.index_select(0, inp.target.flatten()).view_as(inp.target)
        else:
            t = inp.target if target_float is None else target_float
            if w is None:
                pw = None
            elif inp.mode == "binary":
                pw = w[0] + (w[1] - w[0]) * t
            else:
                pw = w.view(1, -1, 1).expand_as(t)
            if not self.include_background and inp.mode == "multilabel":
                keep = torch.ones_like(inp.scores[:1, :, :1])
                keep[:, 0] = 0.0
                valid = keep.expand_as(inp.scores) if valid is None else valid * keep
        if pw is None:
            return valid
        return pw if valid is None else pw * valid


def _as_weights(value: Sequence[float] | Tensor) -> Tensor:
    weights = torch.as_tensor([float(v) for v in value], dtype=torch.float32) \
        if not torch.is_tensor(value) else value.detach().float().flatten()
    if weights.numel() == 0 or not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ValueError(f"class_weights must be a non-empty list of finite, non-negative numbers, "
                         f"got {weights.tolist()}")
    return weights


def safe_ratio(numerator: Tensor, denominator: Tensor, empty_value: float = 1.0) -> Tensor:
    """``numerator / denominator`` with ``empty_value`` where the denominator is 0 (no NaN, no
    NaN gradient: the masked division never sees a zero)."""
    empty = denominator <= 0
    ratio = numerator / torch.where(empty, torch.ones_like(denominator), denominator)
    return torch.where(empty, torch.full_like(ratio, empty_value), ratio)
