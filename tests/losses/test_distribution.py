"""ce / weighted_ce / bce / focal / topk_ce: parity with torch, torchvision and MONAI, pinned numbers."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from losses import build_loss
from losses.fused import target_nll_sum
from tests.losses.loss_inputs import IGNORE, grads, make_inputs

RTOL, ATOL = 1e-5, 1e-6


def assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(ours, ref.to(ours.dtype), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("spatial", [(7,), (5, 6), (3, 4, 5)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ce_multiclass_matches_torch(spatial, weighted, reduction):
    logits, target = make_inputs("multiclass", c=4, spatial=spatial, ignore_frac=0.2)
    weights = [0.5, 1.0, 2.0, 3.0] if weighted else None
    ours = build_loss("ce", mode="multiclass", ignore_index=IGNORE, class_weights=weights, reduction=reduction)
    ref = lambda x, t: F.cross_entropy(x, t, weight=None if weights is None else torch.tensor(weights),
                                       ignore_index=IGNORE, reduction=reduction)
    v, g = grads(ours, logits, target)
    rv, rg = grads(ref, logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


def test_ce_label_smoothing_matches_torch():
    logits, target = make_inputs("multiclass", c=5, ignore_frac=0.3)
    ours = build_loss("ce", mode="multiclass", ignore_index=IGNORE, label_smoothing=0.1)
    v, g = grads(ours, logits, target)
    rv, rg = grads(lambda x, t: F.cross_entropy(x, t, ignore_index=IGNORE, label_smoothing=0.1), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


def test_ce_weighted_smoothing_weights_whole_term():
    """Our documented deviation from torch: with weights, the smoothed term is weighted by w_y."""
    logits, target = make_inputs("multiclass", c=3)
    w = torch.tensor([1.0, 2.0, 4.0])
    eps = 0.2
    value = build_loss("ce", mode="multiclass", class_weights=w.tolist(), label_smoothing=eps)(logits, target)
    log_p = F.log_softmax(logits, 1)
    per_pixel = (1 - eps) * -log_p.gather(1, target.unsqueeze(1)).squeeze(1) - eps * log_p.mean(1)
    expected = (w[target] * per_pixel).sum() / w[target].sum()
    assert_close(value, expected)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_ce_sigmoid_modes_equal_bce(mode):
    logits, target = make_inputs(mode, c=3)
    value = build_loss("ce", mode=mode)(logits, target)
    assert_close(value, F.binary_cross_entropy_with_logits(logits, target.float()))


def test_ce_binary_class_weights_weight_by_target():
    logits, target = make_inputs("binary", ignore_frac=0.25)
    value = build_loss("ce", mode="binary", ignore_index=IGNORE, class_weights=[1.0, 3.0])(logits, target)
    valid = target != IGNORE
    t = target.float().clamp_max(1)
    w = torch.where(t > 0, 3.0, 1.0) * valid
    per = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    assert_close(value, (per * w).sum() / w.sum())


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_pos_weight_matches_torch(reduction):
    logits, target = make_inputs("multilabel", c=3)
    pw = [1.0, 2.0, 5.0]
    ours = build_loss("bce", mode="multilabel", pos_weight=pw, reduction=reduction)
    ref = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw).view(3, 1, 1), reduction=reduction)
    v, g = grads(ours, logits, target)
    rv, rg = grads(ref, logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


def test_bce_binary_accepts_channel_free_shapes():
    logits = torch.randn(2, 4, 4)
    target = torch.randint(0, 2, (2, 4, 4))
    value = build_loss("bce", mode="binary")(logits, target)
    assert_close(value, F.binary_cross_entropy_with_logits(logits, target.float()))


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_sigmoid_matches_torchvision(mode, alpha, gamma):
    logits, target = make_inputs(mode, c=3, scale=4.0)
    ours = build_loss("focal", mode=mode, gamma=gamma, alpha=alpha)
    ref = lambda x, t: sigmoid_focal_loss(x, t.float(), alpha=-1 if alpha is None else alpha, gamma=gamma,
                                          reduction="mean")
    v, g = grads(ours, logits, target)
    rv, rg = grads(ref, logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


@pytest.mark.parametrize("alpha", [None, 0.25, [0.1, 0.3, 0.6]])
def test_focal_multiclass_matches_monai_softmax_focal(alpha):
    from monai.losses import FocalLoss as MonaiFocal

    logits, target = make_inputs("multiclass", c=3, spatial=(4, 5, 3))
    ours = build_loss("focal", mode="multiclass", gamma=2.0, alpha=alpha, reduction="sum")
    ref = MonaiFocal(use_softmax=True, to_onehot_y=True, gamma=2.0, alpha=alpha, reduction="none")
    v, g = grads(ours, logits, target)
    rv, rg = grads(lambda x, t: ref(x, t.unsqueeze(1)).sum(), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)
    # MONAI's mean also divides by C: ours is exactly C times larger
    mean = build_loss("focal", mode="multiclass", alpha=alpha)(logits, target)
    monai_mean = MonaiFocal(use_softmax=True, to_onehot_y=True, alpha=alpha)(logits, target.unsqueeze(1))
    assert_close(mean, 3 * monai_mean)


def test_focal_gamma_zero_equals_ce_multiclass_with_ignore_and_weights():
    logits, target = make_inputs("multiclass", c=4, ignore_frac=0.3, spatial=(3, 4, 4))
    kw = dict(mode="multiclass", ignore_index=IGNORE, class_weights=[1.0, 2.0, 0.5, 4.0])
    v, g = grads(build_loss("focal", gamma=0.0, **kw), logits, target)
    rv, rg = grads(build_loss("ce", **kw), logits, target)
    assert_close(v, rv)
    assert_close(g, rg)


def test_focal_downweights_easy_pixels():
    target = torch.tensor([[0, 1]])
    logits = torch.tensor([[[4.0, -1.0], [-4.0, 1.0]]])  # pixel 0 easy (p=0.9997), pixel 1 hard-ish
    loss = build_loss("focal", mode="multiclass", gamma=2.0, reduction="none")(logits, target)
    ce = build_loss("ce", mode="multiclass", reduction="none")(logits, target)
    ratio = loss / ce
    p_true = F.softmax(logits, 1).gather(1, target.unsqueeze(1)).squeeze(1)
    assert_close(ratio, (1 - p_true) ** 2)


def test_focal_include_background_false_drops_background_pixels():
    logits, target = make_inputs("multiclass", c=3)
    value = build_loss("focal", mode="multiclass", include_background=False)(logits, target)
    per = build_loss("focal", mode="multiclass", reduction="none")(logits, target)
    fg = target != 0
    assert_close(value, per[fg].mean())


def test_topk_k100_equals_ce_and_k_selects_hardest():
    logits, target = make_inputs("multiclass", c=3, spatial=(8, 8), ignore_frac=0.25)
    kw = dict(mode="multiclass", ignore_index=IGNORE)
    assert_close(build_loss("topk_ce", k=100.0, **kw)(logits, target), build_loss("ce", **kw)(logits, target))
    per = build_loss("ce", reduction="none", **kw)(logits, target)
    valid_values = per[target != IGNORE]
    n_keep = math.ceil(0.2 * valid_values.numel())
    expected = valid_values.topk(n_keep).values.mean()
    assert_close(build_loss("topk_ce", k=20.0, **kw)(logits, target), expected)


def test_topk_all_ignored_is_zero_with_gradient():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), IGNORE)
    value = build_loss("topk_ce", mode="multiclass", ignore_index=IGNORE)(logits, target)
    value.backward()
    assert value.item() == 0.0 and torch.count_nonzero(logits.grad) == 0


def test_weighted_ce_auto_uses_counts():
    logits, target = make_inputs("multiclass", c=3)
    loss = build_loss("weighted_ce", mode="multiclass", weight_scheme="inverse")
    assert loss.requires_class_counts
    with pytest.raises(ValueError, match="set_class_counts"):
        loss(logits, target)
    loss.set_class_counts(torch.tensor([600.0, 300.0, 100.0], dtype=torch.float64))
    assert not loss.requires_class_counts
    w = torch.tensor([1 / 6, 1 / 3, 1.0])
    w = w / w.mean()
    torch.testing.assert_close(loss.class_weights, w)
    assert_close(loss(logits, target), F.cross_entropy(logits, target, weight=w))


@pytest.mark.parametrize("c", [2, 5, 21])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("upstream", [1.0, -3.0, 0.0])
def test_reduced_ce_node_matches_torch_on_hostile_logits(c, weighted, upstream):
    """target_nll_sum (the node behind reduced multiclass ce): value and gradient equal torch's
    cross_entropy(reduction="sum") for ±1e4 logits, zero weights and a negative / zero upstream
    gradient (the backward scales by it, so its sign must survive)."""
    g = torch.Generator().manual_seed(c)
    logits = torch.randn(3, c, 40, generator=g, dtype=torch.float64) * 3
    logits[0, :, :10] = torch.where(torch.rand(c, 10, generator=g) < 0.5, -1e4, 1e4)
    target = torch.randint(0, c, (3, 40), generator=g)
    weight = torch.rand(3, 40, generator=g, dtype=torch.float64) * (torch.rand(3, 40, generator=g) < 0.7)
    x, rx = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = target_nll_sum(x, target, weight if weighted else None)
    ref = F.cross_entropy(rx, target, reduction="none")
    ref = (ref * weight).sum() if weighted else ref.sum()
    (ours * upstream).backward()
    (ref * upstream).backward()
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(x.grad, rx.grad, rtol=1e-12, atol=1e-12)
    assert torch.isfinite(x.grad).all()


def test_reduced_ce_node_backward_twice_and_to_second_order():
    """retain_graph: a second backward adds the same gradient (the saved log-softmax is left
    intact); create_graph: the Hessian-vector product equals torch's cross_entropy's (float64)."""
    logits, target = torch.randn(2, 4, 6, 6, requires_grad=True), torch.randint(0, 4, (2, 6, 6))
    loss = build_loss("ce", mode="multiclass")
    value = loss(logits, target)
    value.backward(retain_graph=True)
    first = logits.grad.clone()
    value.backward()
    torch.testing.assert_close(logits.grad, 2 * first)
    torch.testing.assert_close(first, torch.autograd.grad(F.cross_entropy(logits, target), logits)[0])
    x = logits.detach().double().requires_grad_()
    v = torch.randn_like(x)

    def hvp(fn) -> torch.Tensor:
        (grad,) = torch.autograd.grad(fn(x, target), x, create_graph=True)
        return torch.autograd.grad((grad * v).sum(), x)[0]

    ours, ref = hvp(loss), hvp(F.cross_entropy)
    assert ref.abs().max() > 1e-3  # a real curvature, not a vanishing one
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("retain", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_reduced_ce_node_donates_its_saved_buffer_only_when_the_graph_is_dropped(retain, weighted):
    """Without retain_graph the gradient is written into the saved log-softmax (no new (N, C, P)
    buffer); with it the saved tensor is left alone, and both gradients equal torch's."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 30, generator=g, dtype=torch.float64).requires_grad_()
    target = torch.randint(0, 5, (2, 30), generator=g)
    weight = torch.rand(2, 30, generator=g, dtype=torch.float64) if weighted else None
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    scores = logits * 1.0  # a non-leaf, so a hook sees the node's gradient tensor itself
    grad_ptrs: list[int] = []
    scores.register_hook(lambda grad: grad_ptrs.append(grad.data_ptr()))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = target_nll_sum(scores, target, weight)
    (log_p,) = [t for t in saved if t.shape == logits.shape]
    before = log_p.clone()
    value.backward(retain_graph=retain)
    assert (grad_ptrs == [log_p.data_ptr()]) is not retain
    if retain:
        torch.testing.assert_close(log_p, before, rtol=0, atol=0)
    ref = F.cross_entropy(logits, target, reduction="none")
    ref = (ref * weight).sum() if weighted else ref.sum()
    torch.testing.assert_close(logits.grad, torch.autograd.grad(ref, logits)[0], rtol=1e-12, atol=1e-12)
