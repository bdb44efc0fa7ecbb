"""The hand-written autograd nodes of the segmentation losses.

Each replaces a composition of torch ops where a hand-written backward saves less memory or makes
fewer passes over the ``(N, C, P)`` scores (``benchmarks/loss_speed.py`` measures them against the
peer libraries):

- :func:`target_log_softmax`: ``log p_y`` per position (focal, top-k CE, unreduced CE); saves only
  its inputs.
- :func:`target_nll_sum`: cross-entropy reduced in one node (``ce``, ``weighted_ce``).
- :func:`softmax_class_stats`: softmax reduced to per-class ``(tp, sum_p, sum_t)`` and optionally
  ``log p_y`` (the Dice family and its composites).
- :func:`logit_bce_sum`: summed binary cross-entropy of logits (``bce``, sigmoid ``ce``).

and one reduction they share with ``SegInput``: :func:`class_sums`, a per-class sum over a label map
that runs in parallel chunks.

**Donated buffers.** A training step calls ``backward()`` once and drops the graph; the two nodes
that save an ``(N, C, P)`` intermediate then write their gradient into it (:func:`may_donate_saved`).

**Second order.** Every node is twice differentiable (``create_graph=True``: Hessian-vector
products, gradient penalties; ``tests/losses/test_second_order.py`` runs ``gradgradcheck``). With
grad mode on in backward, i.e. under ``create_graph``, a backward computes its gradient with
out-of-place torch ops on tensors that carry history: the saved inputs, or, for the two nodes that
save an intermediate (probabilities, log-softmax), that intermediate, which the node also returns
as an extra output and saves as such, so its history leads back into the node, whose backward also
takes that output's gradient (the pattern of torch's tutorial "Double Backward with Custom
Functions"). The first-order backward (grad mode off) keeps its in-place fast path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def may_donate_saved() -> bool:
    """Inside a node's backward: may it overwrite its saved tensors with its gradient?

    Yes only when the engine will drop the graph after this pass (no ``retain_graph``) and no
    graph of the gradient is being built (no ``create_graph``: grad mode is off in backward). It
    asks the engine the private query torch's AOTAutograd asks before donating saved tensors;
    outside a backward pass, or should the query go away, the answer is no (the allocating path).
    ``tests/losses/test_second_order.py`` pins the query's meaning.
    """
    query = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    if query is None or torch.is_grad_enabled():
        return False
    try:
        return not query()
    except RuntimeError:
        return False


#: positions per row of :func:`class_sums`' chunked scatter: enough rows for every thread at 3-D sizes,
#: short enough that a float32 row sum keeps its precision
CLASS_SUM_CHUNK = 4096


def class_sums(target: Tensor, values: Tensor, num_classes: int) -> Tensor:
    """``out[n, c] = sum of values[n, i] over the positions i where target[n, i] == c``: ``(N, C)``
    from an ``(N, P)`` label map and ``(N, P)`` values (broadcastable: a 0-d ``1`` counts labels).

    The same sums as ``zeros(N, C).scatter_add_(1, target, values)``, but torch's CPU scatter walks
    each of the N rows of length P in one thread; here the positions are cut into rows of
    :data:`CLASS_SUM_CHUNK`, scattered in parallel into ``(N, rows, C)`` and summed over the rows
    (3-D, N=2, P=64^3: 0.27 ms instead of 1.3 ms on 2 threads; the shorter running sums are also
    closer to the float64 value). Differentiable in ``values`` like the scatter it replaces.
    """
    n, p = target.shape
    values = values.expand(n, p)
    rows = p // CLASS_SUM_CHUNK
    if rows < 2:
        return values.new_zeros(n, num_classes).scatter_add_(1, target, values)
    head = rows * CLASS_SUM_CHUNK
    split = (n, rows, CLASS_SUM_CHUNK)
    out = values.new_zeros(n, rows, num_classes).scatter_add_(
        2, target[:, :head].reshape(split), values[:, :head].reshape(split)).sum(1)
    if head < p:
        out = out + values.new_zeros(n, num_classes).scatter_add_(1, target[:, head:], values[:, head:])
    return out


def target_log_softmax(scores: Tensor, target: Tensor) -> Tensor:
    """``log_softmax(scores, 1)`` at the target class: ``(N, P)`` for ``(N, C, P)`` logits and an
    ``(N, P)`` target."""
    return _TargetLogSoftmax.apply(scores, target)


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
        index, grad = target.unsqueeze(1), grad.unsqueeze(1)
        # d log p_y / dx_c = 1[c = y] - softmax_c
        if torch.is_grad_enabled():  # create_graph: out of place, so the saved scores' history holds
            return (F.softmax(scores, dim=1) * -grad).scatter_add(1, index, grad), None
        grad_scores = F.softmax(scores, dim=1).mul_(-grad)
        return grad_scores.scatter_add_(1, index, grad), None


def target_nll_sum(scores: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """``sum_i w_i * -log softmax(x_i)_{y_i}`` over positions ``i`` of ``(N, C, P)`` logits and an
    ``(N, P)`` target, ``w`` an ``(N, P)`` weight map (``None``: all 1) — cross-entropy reduced
    in one autograd node. Same value as ``F.cross_entropy(..., reduction="sum")``."""
    return _TargetNLLSum.apply(scores, target, weight)[0]


class _TargetNLLSum(torch.autograd.Function):
    """Reduced cross-entropy with a backward of three passes over ``(N, C, P)``: ``exp`` of the
    saved log-softmax, the per-position scale, and a scatter of ``-scale`` at the target class.

    torch's CPU ``cross_entropy`` backward zero-fills a ``(N, C, P)`` buffer for ``nll_loss``,
    scatters into it and runs ``log_softmax``'s backward (two reads, one write), allocating two
    ``(N, C, P)`` tensors on the way. This node saves what torch's saves (the log-softmax) and,
    when the graph is dropped after this pass, writes the gradient into it (a donated buffer, as
    torch's AOTAutograd does): no new ``(N, C, P)`` allocation. With ``retain_graph=True`` it
    allocates one and leaves the saved log-softmax intact, so a second ``backward`` is exact.
    Outputs ``(total, log_p)``: ``log_p`` is returned only for ``create_graph`` (module docstring).
    """

    @staticmethod
    def forward(ctx, scores: Tensor, target: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor]:
        log_p = F.log_softmax(scores, dim=1)
        log_pt = log_p.gather(1, target.unsqueeze(1)).squeeze(1)
        ctx.save_for_backward(log_p, target, weight)
        ctx.set_materialize_grads(False)  # no zero (N, C, P) gradient for the unused log_p output
        total = log_pt.sum() if weight is None else torch.dot(log_pt.reshape(-1), weight.reshape(-1))
        return total.neg(), log_p

    @staticmethod
    def backward(ctx, grad: Tensor | None, grad_log_p: Tensor | None) -> tuple[Tensor | None, None, None]:
        log_p, target, weight = ctx.saved_tensors
        if grad is None and grad_log_p is None:  # a higher-order pass that reaches neither output
            return None, None, None
        if grad_log_p is not None or torch.is_grad_enabled():
            return _nll_sum_grad(log_p, target, weight, grad, grad_log_p), None, None
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


def _nll_sum_grad(log_p: Tensor, target: Tensor, weight: Tensor | None, grad: Tensor | None,
                  grad_log_p: Tensor | None) -> Tensor:
    """The gradient of :class:`_TargetNLLSum` in out-of-place ops (differentiable again)."""
    p = log_p.exp()
    out = torch.zeros_like(p)
    if grad is not None:
        # d/dx_c of -w log p_y = w (p_c - [c = y])
        scale = (grad if weight is None else weight * grad).expand(target.shape).unsqueeze(1)
        out = out + p * scale
        out = out.scatter_add(1, target.unsqueeze(1), -scale)
    if grad_log_p is not None:
        # log-softmax's backward: g - p sum_c g_c
        out = out + grad_log_p - p * grad_log_p.sum(1, keepdim=True)
    return out


def softmax_class_stats(scores: Tensor, target: Tensor, valid: Tensor | None, with_log_pt: bool
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(tp, sum_p, sum_t, log_pt)`` of ``softmax(scores, 1)`` (see ``SegInput.class_stats``):
    per-class ``(N, C)`` sums over the positions where ``valid`` (``(N, P)`` float or ``None``) is
    1, and with ``with_log_pt`` also ``log p_y`` per position (else an empty tensor)."""
    return _SoftmaxClassStats.apply(scores, target, valid, with_log_pt)[:4]


class _SoftmaxClassStats(torch.autograd.Function):
    """``softmax(x, 1)`` reduced to per-class ``(tp, sum_p, sum_t)`` and, with ``with_log_pt``, also
    ``log p_y`` per position (else an empty tensor); a fifth output, ``p``, exists only for
    ``create_graph`` (module docstring).

    Backward in one sweep: with ``G_ci = v_i (g_sp_c + g_tp_c [y_i = c])`` and ``g_l`` the gradient
    of ``log p_y``, ``dx_ci = p_ci (G_ci - sum_k p_ki G_ki - g_l_i) + [c = y_i] g_l_i``; the inner
    sum is a batched mat-vec plus the true class's term, so no ``(N, C, P)`` gradient of the
    probabilities is formed and only ``p`` (and ``p_y``) is saved. When the graph is dropped after
    this pass (no ``retain_graph``, no ``create_graph``) the gradient is written into the saved
    ``p`` (a donated buffer, see :func:`may_donate_saved`); otherwise ``p`` is left intact and a
    second backward is exact.
    """

    @staticmethod
    def forward(ctx, scores: Tensor, target: Tensor, valid: Tensor | None, with_log_pt: bool
                ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
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
        tp = class_sums(target, p_true if valid is None else p_true * valid, c)
        t_sum = class_sums(target, p.new_ones(()) if valid is None else valid, c)
        sum_p = p.sum(-1) if valid is None else torch.bmm(p, valid.unsqueeze(-1)).squeeze(-1)
        # p_true is kept (N*P floats, a 1/C share of p) to spare backward a gather over (N, C, P)
        ctx.save_for_backward(p, target, valid, p_true)
        ctx.with_log_pt = with_log_pt
        ctx.mark_non_differentiable(t_sum)
        ctx.set_materialize_grads(False)  # no zero (N, C, P) gradient for the unused p output
        return tp, sum_p, t_sum, log_pt, p

    @staticmethod
    def backward(ctx, g_tp: Tensor | None, g_sp: Tensor | None, _: Tensor | None,
                 g_log_pt: Tensor | None, g_p: Tensor | None) -> tuple[Tensor | None, None, None, None]:
        p, target, valid, p_true = ctx.saved_tensors
        if not ctx.with_log_pt:
            g_log_pt = None
        if g_tp is None and g_sp is None and g_log_pt is None and g_p is None:
            return None, None, None, None
        if g_p is not None or torch.is_grad_enabled():
            return _softmax_stats_grad(p, target, valid, g_tp, g_sp, g_log_pt, g_p), None, None, None
        n, c, _ = p.shape
        g_tp = p.new_zeros(n, c) if g_tp is None else g_tp
        g_sp = p.new_zeros(n, c) if g_sp is None else g_sp
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
        if g_log_pt is not None:
            inner = inner + g_log_pt
            direct = direct + g_log_pt
        if may_donate_saved():
            # p is not needed again: scale it in place, one class at a time, by
            # (g_sp_c v_i - inner_i) — one reused (N, P) temporary, no new (N, C, P) buffer (a fresh
            # temporary per class cost 4x the product: its pages fault in each time)
            grad = p
            neg_inner = inner.neg() if valid is not None else None
            scale = torch.empty_like(inner)
            for k in range(c):
                g_k = g_sp[:, k:k + 1]
                if valid is None:
                    torch.sub(g_k, inner, out=scale)
                else:
                    torch.addcmul(neg_inner, valid, g_k, out=scale)
                grad[:, k].mul_(scale)
        elif valid is None:
            # (g_sp_c - inner_i) p_ci: one broadcast temporary, one in-place product
            grad = (g_sp.unsqueeze(-1) - inner.unsqueeze(1)).mul_(p)
        else:
            grad = p.mul(g_sp.unsqueeze(-1)).mul_(valid.unsqueeze(1))
            grad.addcmul_(p, inner.unsqueeze(1), value=-1.0)
        return grad.scatter_add_(1, index, direct.unsqueeze(1)), None, None, None


def _softmax_stats_grad(p: Tensor, target: Tensor, valid: Tensor | None, g_tp: Tensor | None,
                        g_sp: Tensor | None, g_log_pt: Tensor | None, g_p: Tensor | None) -> Tensor:
    """The gradient of :class:`_SoftmaxClassStats` in out-of-place ops (differentiable again):
    softmax's backward ``p (G - sum_k p_k G_k)`` of ``G = dL/dp``, plus the ``log p_y`` term."""
    index = target.unsqueeze(1)
    # G_ci = v_i (g_sp_c + [c = y_i] g_tp_c) + g_p_ci
    g = torch.zeros_like(p)
    if g_sp is not None:
        g = g + g_sp.unsqueeze(-1)
    if g_tp is not None:
        g = g.scatter_add(1, index, g_tp.gather(1, target).unsqueeze(1))
    if valid is not None:
        g = g * valid.unsqueeze(1)
    if g_p is not None:
        g = g + g_p
    grad = p * (g - (p * g).sum(1, keepdim=True))
    if g_log_pt is not None:
        # d log p_y / dx_c = [c = y] - p_c
        g_l = g_log_pt.unsqueeze(1)
        grad = (grad - p * g_l).scatter_add(1, index, g_l)
    return grad


def logit_bce_sum(scores: Tensor, target: Tensor) -> Tensor:
    """``sum_i softplus(x_i) - x_i t_i``, the summed binary cross-entropy of logits ``x`` against
    targets ``t`` (same value as ``binary_cross_entropy_with_logits(..., reduction="sum")``)."""
    return _LogitBCESum.apply(scores, target)


def softplus_sum(x: Tensor) -> Tensor:
    """``sum_i softplus(x_i)`` as ``max(x, 0) + log1p(u)``, ``u = exp(-|x|)`` in (0, 1].

    torch's CPU ``softplus`` and ``log1p`` are scalar loops (2.5 ms for 2 x 64^3 on 2 threads,
    10x a ``log``); ``log1p(u)`` is computed here with vectorised ``log`` by Goldberg's identity
    ``log1p(u) = log(w) u / (w - 1)``, ``w = 1 + u`` (exact to a few ulp, as accurate as torch's
    ``softplus``, ``tests/losses/test_fused.py``), and ``log1p(u) = u`` where ``u`` is below the
    dtype's half-epsilon so that ``w == 1``: 1.1 ms.
    """
    u = x.abs().neg_().exp_()
    w = u + 1
    d = w - 1
    log1p_u = torch.where(d == 0, u, w.log_().mul_(u).div_(d))
    return log1p_u.sum() + x.clamp_min(0).sum()


class _LogitBCESum(torch.autograd.Function):
    """A forward of few vectorised passes (:func:`softplus_sum`, one dot product) and a
    fused-in-place backward ``(sigmoid(x) - t) g``; torch's CPU ``binary_cross_entropy_with_logits``
    composes more elementwise passes, one of them the scalar ``log1p`` (benchmarks/loss_speed.py)."""

    @staticmethod
    def forward(ctx, scores: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(scores, target)
        return softplus_sum(scores) - torch.dot(scores.reshape(-1), target.reshape(-1))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        scores, target = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: out of place, so the saved scores' history holds
            return (torch.sigmoid(scores) - target) * grad, None
        return torch.sigmoid(scores).sub_(target).mul_(grad), None
