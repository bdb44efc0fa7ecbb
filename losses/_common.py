"""Shared tensor plumbing for the segmentation losses: argument checks, mode handling, ignore masks
and one-hot-free per-class sums.

Every segmentation loss turns its ``(prediction, target)`` pair into one :class:`SegInput` and computes
from it; a composite builds one :class:`SegInput` and hands it to all of its terms, so softmax /
log-softmax and the per-class sums are computed once per forward (cached on the input, in a way the
input plans at construction from what its terms announce).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from common.checks import check_choice, check_range  # noqa: F401  (re-exported for the losses)
from common.names import REDUCTIONS  # noqa: F401

MODES = ("binary", "multiclass", "multilabel")
#: the quantities a loss term may announce in its ``uses`` (the ``SegInput`` plan)
PLANNABLE = frozenset({"probs", "log_probs", "log_prob_of_target", "class_stats"})


class SegInput:
    """A validated, flattened ``(prediction, target)`` pair in float32 (float64 stays float64).

    Attributes (``P`` = number of spatial positions, ``C`` = channels of the prediction):

    - ``scores``: ``(N, C, P)`` float32 logits (or probabilities when ``from_logits=False``);
      binary mode always has ``C == 1``. Ignored positions hold 0 (``masked_fill``, never a
      product), so a NaN or infinite value there reaches no sum and gets exactly zero gradient.
    - ``target``: multiclass ``(N, P)`` int64 class indices with ignored positions set to 0;
      binary/multilabel ``(N, C, P)`` float32 in [0, 1] with ignored positions set to 0.
    - ``valid``: ``None`` when nothing is ignored, else a bool mask shaped like ``target``.
    - ``plan``: what the loss terms about to run will read (``probs``, ``log_probs``,
      ``log_prob_of_target``, ``class_stats``), fixed at construction. It decides how each
      quantity is computed — e.g. one autograd node for a multiclass composite's softmax sums and
      ``log p_y``, or ``probs = exp(log_probs)`` when both are read — so a value never depends on
      the order in which terms ask for it.
    - ``probs`` / ``log_probs`` / ``log_one_minus_probs`` / ``log_prob_of_target`` /
      ``class_stats(squared)`` / ``squared_errors()``: computed on first use, then cached in an
      explicit per-input cache; :meth:`cached` says whether one has been computed.
    """

    def __init__(self, prediction: Tensor, target: Tensor, mode: str, from_logits: bool,
                 ignore_index: int | None, plan: frozenset[str] = frozenset(),
                 check_probabilities: bool = False, check_target: bool = True) -> None:
        if not torch.is_tensor(prediction) or not prediction.is_floating_point():
            raise ValueError(f"prediction must be a floating-point tensor, got "
                             f"{getattr(prediction, 'dtype', type(prediction))}")
        if not torch.is_tensor(target):
            raise ValueError(f"target must be a tensor, got {type(target).__name__}")
        unknown = set(plan) - PLANNABLE
        if unknown:
            raise ValueError(f"plan: unknown quantities {sorted(unknown)}; expected a subset of {sorted(PLANNABLE)}")
        self.mode = mode
        self.from_logits = from_logits
        self.plan = frozenset(plan)
        self._cache: dict[str, object] = {}
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
        scores = prediction.reshape(n, c, -1)
        if mode == "multiclass":
            self.target, self.valid = _multiclass_target(target, prediction.shape, ignore_index, check_target)
        else:
            self.target, self.valid = _sigmoid_target(target, prediction.shape, ignore_index, mode, check_target)
            self.target = self.target.to(prediction.dtype)
        if self.valid is not None:
            scores = scores.masked_fill(~self._channel_mask(), 0.0)
        self.scores = scores
        if check_probabilities and not from_logits:
            _check_probabilities(scores, self.valid is not None)

    def _channel_mask(self) -> Tensor:
        """``valid`` broadcastable to ``(N, C, P)``."""
        return self.valid.unsqueeze(1) if self.mode == "multiclass" else self.valid

    @property
    def num_channels(self) -> int:
        return self.scores.shape[1]

    def planned(self, name: str) -> bool:
        """Whether the plan says a term will read ``name``."""
        return name in self.plan

    def cached(self, name: str) -> bool:
        """Whether ``name`` has been computed for this input already."""
        return name in self._cache

    def _get(self, name: str, compute: Callable[[], object]) -> object:
        if name not in self._cache:
            self._cache[name] = compute()
        return self._cache[name]

    @property
    def _dense_log_softmax(self) -> bool:
        """Multiclass from logits: the plan reads the full log-softmax, or the probabilities as well
        as ``log p_y``, so one log-softmax serves all (``probs`` = its exp)."""
        return self.mode == "multiclass" and self.from_logits and (
            "log_probs" in self.plan or {"probs", "log_prob_of_target"} <= self.plan)

    @property
    def _fused_softmax_node(self) -> bool:
        """Multiclass from logits: one softmax node gives both the class sums and ``log p_y``."""
        return self.mode == "multiclass" and self.from_logits and \
            {"class_stats", "log_prob_of_target"} <= self.plan and not {"probs", "log_probs"} & self.plan

    @property
    def log_prob_of_target(self) -> Tensor:
        """Multiclass ``log p_y`` per position, ``(N, P)``.

        From logits and without a planned log-softmax, a hand-written autograd function saves no
        ``(N, C, P)`` tensor (torch's cross-entropy keeps the whole log-softmax for backward).
        """
        def compute() -> Tensor:
            index = self.target.unsqueeze(1)
            if not self.from_logits:
                return self.scores.gather(1, index).squeeze(1).clamp_min(1e-12).log()
            if self._dense_log_softmax:
                return self.log_probs.gather(1, index).squeeze(1)
            if self._fused_softmax_node:
                return self._softmax_node()[3]
            return _TargetLogSoftmax.apply(self.scores, self.target)
        return self._get("log_prob_of_target", compute)

    def _softmax_node(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self._get("softmax_node", lambda: _SoftmaxClassStats.apply(
            self.scores, self.target, self.valid_float, self._fused_softmax_node))

    @property
    def log_probs(self) -> Tensor:
        def compute() -> Tensor:
            if not self.from_logits:
                return self.probs.clamp_min(1e-12).log()
            if self.mode == "multiclass":
                return F.log_softmax(self.scores, dim=1)
            return F.logsigmoid(self.scores)
        return self._get("log_probs", compute)

    @property
    def probs(self) -> Tensor:
        def compute() -> Tensor:
            if not self.from_logits:
                return self.scores
            if self.mode == "multiclass":
                # exp of a log-softmax the plan needs anyway costs less than a second softmax
                return self.log_probs.exp() if self._dense_log_softmax else F.softmax(self.scores, dim=1)
            return torch.sigmoid(self.scores)
        return self._get("probs", compute)

    @property
    def log_one_minus_probs(self) -> Tensor:
        """log(1 - p) for the sigmoid modes, computed stably from logits."""
        def compute() -> Tensor:
            if not self.from_logits:
                return (1.0 - self.scores).clamp_min(1e-12).log()
            return F.logsigmoid(-self.scores)
        return self._get("log_one_minus_probs", compute)

    @property
    def valid_float(self) -> Tensor | None:
        if self.valid is None:
            return None
        return self._get("valid_float", lambda: self.valid.to(self.scores.dtype))

    def class_stats(self, squared: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample, per-class soft sums ``(tp, sum_pred, sum_target)``, each ``(N, C)``.

        ``tp = sum_i p_ci t_ci``, ``sum_pred = sum_i p_ci`` (``p_ci**2`` when squared),
        ``sum_target = sum_i t_ci`` (``t_ci**2`` when squared), over non-ignored positions.
        Multiclass mode never builds a one-hot target: ``tp`` gathers the probability of the true
        class and scatter-adds it into its class, ``sum_target`` is a per-sample bincount; from
        logits, softmax and sums are one autograd node with a hand-written backward unless the
        plan reads the probabilities anyway. Cached, so the region terms of a composite share one
        computation.
        """
        def compute() -> tuple[Tensor, Tensor, Tensor]:
            if self.mode == "multiclass" and self.from_logits and not squared and \
                    not {"probs", "log_probs"} & self.plan:
                return self._softmax_node()[:3]
            if self.mode == "multiclass":
                return self._multiclass_stats(self.probs, squared)
            return self._sigmoid_stats(squared)
        return self._get(f"class_stats_{squared}", compute)

    def squared_errors(self) -> tuple[Tensor, Tensor]:
        """Per-sample, per-class ``(sum_i relu(p - t)^2, sum_i relu(t - p)^2)``, each ``(N, C)``.

        The squared counterparts of FP and FN: both >= 0, both 0 exactly at ``p = t`` (also for
        soft targets), and they sum to ``sum (p - t)^2 = sum p^2 + sum t^2 - 2 TP``, so squared
        Tversky with ``alpha = beta = 1/2`` is squared Dice.
        """
        def compute() -> tuple[Tensor, Tensor]:
            if self.mode == "multiclass":
                # one-hot t: FP2_c = sum_{y != c} p_c^2 = sum p_c^2 - Q_c, FN2_c = n_c - 2 TP_c + Q_c,
                # Q_c = sum_{y = c} p_c^2
                p = self.probs
                tp, p2_sum, n_c = self.class_stats(True)
                p_true = p.gather(1, self.target.unsqueeze(1)).squeeze(1)
                q_true = p_true * p_true
                if self.valid is not None:
                    q_true = q_true * self.valid_float
                q = p.new_zeros(tp.shape).scatter_add_(1, self.target, q_true)
                return (p2_sum - q).clamp_min(0.0), (n_c - 2.0 * tp + q).clamp_min(0.0)
            d = self.probs - self.target
            over, under = F.relu(d).square(), F.relu(-d).square()
            if self.valid is not None:
                over, under = over * self.valid_float, under * self.valid_float
            return over.sum(-1), under.sum(-1)
        return self._get("squared_errors", compute)

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


def may_donate_saved() -> bool:
    """Inside a node's backward: may it overwrite its saved tensors with its gradient?

    Yes only when the engine will drop the graph after this pass (no ``retain_graph``) and no
    graph of the gradient is being built (no ``create_graph``: grad mode is off in backward). It
    asks the engine the private query torch's AOTAutograd asks before donating saved tensors;
    outside a backward pass, or should the query go away, the answer is no (the allocating path).
    """
    query = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    if query is None or torch.is_grad_enabled():
        return False
    try:
        return not query()
    except RuntimeError:
        return False


def target_nll_sum(scores: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """``sum_i w_i * -log softmax(x_i)_{y_i}`` over positions ``i`` of ``(N, C, P)`` logits and an
    ``(N, P)`` target, ``w`` an ``(N, P)`` weight map (``None``: all 1) — cross-entropy reduced
    in one autograd node. Same value as ``F.cross_entropy(..., reduction="sum")``."""
    return _TargetNLLSum.apply(scores, target, weight)


class _TargetNLLSum(torch.autograd.Function):
    """Reduced cross-entropy with a backward of three passes over ``(N, C, P)``: ``exp`` of the
    saved log-softmax, the per-position scale, and a scatter of ``-scale`` at the target class.

    torch's CPU ``cross_entropy`` backward zero-fills a ``(N, C, P)`` buffer for ``nll_loss``,
    scatters into it and runs ``log_softmax``'s backward (two reads, one write), allocating two
    ``(N, C, P)`` tensors on the way. This node saves what torch's saves (the log-softmax) and,
    when the graph is dropped after this pass, writes the gradient into it (a donated buffer, as torch's
    AOTAutograd does): no new ``(N, C, P)`` allocation. With ``retain_graph=True`` it allocates one
    and leaves the saved log-softmax intact, so a second ``backward`` is exact; the gradient has no
    graph of its own (a second-order derivative raises, as for the other hand-written nodes here).
    """

    @staticmethod
    def forward(ctx, scores: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        log_p = F.log_softmax(scores, dim=1)
        log_pt = log_p.gather(1, target.unsqueeze(1)).squeeze(1)
        ctx.save_for_backward(log_p, target, weight)
        total = log_pt.sum() if weight is None else torch.dot(log_pt.reshape(-1), weight.reshape(-1))
        return total.neg()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        log_p, target, weight = ctx.saved_tensors
        # d/dx_c of -w log p_y = w (p_c - [c = y])
        out = log_p.exp_() if may_donate_saved() else torch.exp(log_p)
        if weight is None:
            out.mul_(grad)
            at_target = grad.neg().expand(target.shape)
        else:
            scale = weight * grad
            out.mul_(scale.unsqueeze(1))
            at_target = scale.neg_()
        return out.scatter_add_(1, target.unsqueeze(1), at_target.unsqueeze(1)), None, None


class _SoftmaxClassStats(torch.autograd.Function):
    """``softmax(x, 1)`` reduced to per-class ``(tp, sum_p, sum_t)`` (see ``SegInput.class_stats``)
    and, with ``with_log_pt``, also ``log p_y`` per position (else an empty tensor).

    Backward in one sweep: with ``G_ci = v_i (g_sp_c + g_tp_c [y_i = c])`` and ``g_l`` the gradient
    of ``log p_y``, ``dx_ci = p_ci (G_ci - sum_k p_ki G_ki - g_l_i) + [c = y_i] g_l_i``; the inner
    sum is a batched mat-vec plus the true class's term, so no ``(N, C, P)`` gradient of the
    probabilities is formed and only ``p`` (and ``p_y``) is saved. When the graph is dropped after
    this pass (no ``retain_graph``, no ``create_graph``) the gradient is written into the saved ``p`` (a donated buffer, see
    :func:`may_donate_saved`); otherwise ``p`` is left intact and a second backward is exact.
    """

    @staticmethod
    def forward(ctx, scores: Tensor, target: Tensor, valid: Tensor | None, with_log_pt: bool
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        index = target.unsqueeze(1)
        if with_log_pt:
            log_p = F.log_softmax(scores, dim=1)
            log_pt = log_p.gather(1, index).squeeze(1)
            p = log_p.exp_()
        else:
            p = F.softmax(scores, dim=1)
            log_pt = p.new_zeros(0)
        n, c, _ = p.shape
        p_true = p.gather(1, index).squeeze(1)
        ones = torch.ones_like(p_true) if valid is None else valid
        tp = p.new_zeros(n, c).scatter_add_(1, target, p_true if valid is None else p_true * valid)
        t_sum = p.new_zeros(n, c).scatter_add_(1, target, ones)
        sum_p = p.sum(-1) if valid is None else torch.bmm(p, valid.unsqueeze(-1)).squeeze(-1)
        # p_true is kept (N*P floats, a 1/C share of p) to spare backward a gather over (N, C, P)
        ctx.save_for_backward(p, target, valid, p_true)
        ctx.with_log_pt = with_log_pt
        ctx.mark_non_differentiable(t_sum)
        return tp, sum_p, t_sum, log_pt

    @staticmethod
    def backward(ctx, g_tp: Tensor, g_sp: Tensor, _: Tensor, g_log_pt: Tensor
                 ) -> tuple[Tensor, None, None, None]:
        p, target, valid, p_true = ctx.saved_tensors
        index = target.unsqueeze(1)
        g_true = g_tp.gather(1, target)  # g_tp at each position's class, (N, P)
        # the region terms' gradients are zero on ignored positions: scale by v_i before adding g_l
        direct = p_true * g_true  # p_y g_tp_y, (N, P)
        if valid is not None:
            direct = direct * valid
        inner = torch.bmm(g_sp.unsqueeze(1), p).squeeze(1)
        if valid is not None:
            inner = inner * valid
        inner = inner + direct
        if ctx.with_log_pt:
            inner = inner + g_log_pt
            direct = direct + g_log_pt
        if may_donate_saved():
            # p is not needed again: scale it in place, one class at a time, by
            # (g_sp_c v_i - inner_i) — an (N, P) temporary per class, no new (N, C, P) buffer
            grad = p
            neg_inner = inner.neg() if valid is not None else None
            for c in range(p.shape[1]):
                g_c = g_sp[:, c:c + 1]
                grad[:, c].mul_(g_c - inner if valid is None else torch.addcmul(neg_inner, valid, g_c))
        elif valid is None:
            # (g_sp_c - inner_i) p_ci: one broadcast temporary, one in-place product
            grad = (g_sp.unsqueeze(-1) - inner.unsqueeze(1)).mul_(p)
        else:
            grad = p.mul(g_sp.unsqueeze(-1)).mul_(valid.unsqueeze(1))
            grad.addcmul_(p, inner.unsqueeze(1), value=-1.0)
        return grad.scatter_add_(1, index, direct.unsqueeze(1)), None, None, None


def logit_bce_sum(scores: Tensor, target: Tensor) -> Tensor:
    """``sum_i softplus(x_i) - x_i t_i``, the summed binary cross-entropy of logits ``x`` against
    targets ``t`` (same value as ``binary_cross_entropy_with_logits(..., reduction="sum")``)."""
    return _LogitBCESum.apply(scores, target)


class _LogitBCESum(torch.autograd.Function):
    """Three passes forward (softplus, its sum, one dot product) and a fused-in-place backward
    ``(sigmoid(x) - t) g``; torch's CPU ``binary_cross_entropy_with_logits`` composes about twice as
    many elementwise passes (17-27 % slower fwd+bwd, benchmarks/loss_speed.py)."""

    @staticmethod
    def forward(ctx, scores: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(scores, target)
        return F.softplus(scores).sum() - torch.dot(scores.reshape(-1), target.reshape(-1))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        scores, target = ctx.saved_tensors
        return torch.sigmoid(scores).sub_(target).mul_(grad), None


def _binary_shapes(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Bring binary inputs to ``(N, 1, *S)`` each.

    Accepted predictions: ``(N, 1, *S)`` with 1-3 spatial dims, or channel-free ``(N, L)`` and
    ``(N, H, W)``. A 4-D or 5-D prediction must have one channel: ``(N, C>1, H, W)`` is several
    channels, not a volume (a channel-free volume would be indistinguishable from it).
    """
    shape = tuple(prediction.shape)
    if prediction.dim() < 2:
        raise ValueError(f"prediction: binary mode expects (N, 1, *S) or (N, *S), got shape {shape}")
    if prediction.dim() >= 3 and shape[1] == 1:
        if target.shape == prediction.shape:
            return prediction, target
        if tuple(target.shape) == shape[:1] + shape[2:]:
            return prediction, target.unsqueeze(1)
    elif prediction.dim() > 3:
        raise ValueError(f"prediction: binary mode expects one channel, (N, 1, *S), got shape {shape} "
                         f"with {shape[1]} channels; use mode='multilabel' for several independent "
                         f"channels or mode='multiclass' for one class per position (a 3-D volume "
                         f"needs its channel dim: (N, 1, D, H, W))")
    elif target.shape == prediction.shape:
        return prediction.unsqueeze(1), target.unsqueeze(1)
    elif tuple(target.shape) == shape[:1] + (1,) + shape[1:]:
        return prediction.unsqueeze(1), target
    raise ValueError(f"target: binary mode expects the spatial shape of prediction {shape} (with or "
                     f"without the channel dim), got {tuple(target.shape)}")


def _check_probabilities(scores: Tensor, masked: bool) -> None:
    """``from_logits=False``: the prediction must hold probabilities (one host sync)."""
    if not scores.numel():
        return
    low, high = (float(v) for v in torch.aminmax(scores.detach()))
    if not (0.0 <= low and high <= 1.0):
        where = " at non-ignored positions" if masked else ""
        raise ValueError(f"prediction: from_logits=False expects probabilities in [0, 1], got values "
                         f"in [{low}, {high}]{where}; pass logits with from_logits=True")


def _multiclass_target(target: Tensor, shape: torch.Size, ignore_index: int | None, check: bool
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
    target, valid, checked = _split_ignored(target, ignore_index, check, 0, c - 1)
    if check and not checked:
        _check_range_of(target, 0, c - 1, ignore_index)
    return target, valid


def _sigmoid_target(target: Tensor, shape: torch.Size, ignore_index: int | None, mode: str, check: bool
                    ) -> tuple[Tensor, Tensor | None]:
    if tuple(target.shape) != tuple(shape):
        raise ValueError(f"target: {mode} mode expects the prediction's shape {tuple(shape)}, "
                         f"got {tuple(target.shape)}")
    target = target.reshape(shape[0], shape[1], -1).float()
    target, valid, checked = _split_ignored(target, ignore_index, check, 0.0, 1.0, mode)
    if check and not checked:
        _check_range_of(target, 0.0, 1.0, ignore_index, mode)
    return target, valid


def _split_ignored(target: Tensor, ignore_index: int | None, check: bool, low_ok: float, high_ok: float,
                   mode: str = "multiclass") -> tuple[Tensor, Tensor | None, bool]:
    """``(target with ignored positions at 0, valid mask or None, whether the range was checked)``.

    With ``check``, one ``aminmax`` pass both checks the value range and, when ``ignore_index``
    lies outside the values seen, proves that nothing is ignored: no ``== ignore_index`` pass and
    one host sync instead of two.
    """
    if check and not target.numel():
        return target, None, True
    if check:
        low, high = (v.item() for v in torch.aminmax(target))
        if ignore_index is None or not low <= ignore_index <= high:
            _raise_out_of_range(low, high, low_ok, high_ok, ignore_index, mode)
            return target, None, True
    if ignore_index is None:
        return target, None, False
    ignored = target == ignore_index
    if not bool(ignored.any()):
        return target, None, False
    return target.masked_fill(ignored, 0), ~ignored, False


def _check_range_of(target: Tensor, low_ok: float, high_ok: float, ignore_index: int | None,
                    mode: str = "multiclass") -> None:
    low, high = (v.item() for v in torch.aminmax(target))
    _raise_out_of_range(low, high, low_ok, high_ok, ignore_index, mode)


def _raise_out_of_range(low: float, high: float, low_ok: float, high_ok: float, ignore_index: int | None,
                        mode: str) -> None:
    if low_ok <= low and high <= high_ok:  # NaN fails too
        return
    if mode == "multiclass":
        raise ValueError(f"target: class indices must lie in [0, {int(high_ok) + 1}) or equal ignore_index="
                         f"{ignore_index}, got values in [{int(low)}, {int(high)}]")
    raise ValueError(f"target: {mode} mode expects values in [0, 1] (or ignore_index="
                     f"{ignore_index}), got values in [{float(low)}, {float(high)}]")


def safe_ratio(numerator: Tensor, denominator: Tensor, empty_value: float = 1.0) -> Tensor:
    """``numerator / denominator`` with ``empty_value`` where the denominator is 0 (no NaN, no
    NaN gradient: the masked division never sees a zero)."""
    empty = denominator <= 0
    ratio = numerator / torch.where(empty, torch.ones_like(denominator), denominator)
    return torch.where(empty, torch.full_like(ratio, empty_value), ratio)
