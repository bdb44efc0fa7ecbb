"""Properties of every registered segmentation loss × mode, checked deterministically for every
combination (Hypothesis only fuzzes values): non-negative and finite in hostile scenarios, the target is
the minimum, ignored positions are inert, half-precision inputs match a float64 reference, float64
gradcheck, class-permutation invariance, and identities against independent references."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from losses import available, build_loss
from tests.losses.loss_inputs import IGNORE, make_inputs, one_hot
from tests.losses.references import dense, tversky

NAMES = available("segmentation")
SIGMOID_ONLY = {"bce"}
SCENARIOS = ["random", "empty", "full", "single_pixel", "huge_logits", "all_ignored"]
SPATIAL = {1: (7,), 2: (5, 4), 3: (3, 4, 3)}


def modes_of(name: str) -> list[str]:
    return ["binary", "multilabel"] if name in SIGMOID_ONLY else ["binary", "multiclass", "multilabel"]


CASES = [(name, mode) for name in NAMES for mode in modes_of(name)]


def build(name: str, mode: str, **kwargs):
    loss = build_loss(name, mode=mode, ignore_index=IGNORE, **kwargs)
    if loss.requires_class_counts:
        loss.set_class_counts(torch.tensor([50.0, 30.0, 20.0] if mode != "binary" else [80.0, 20.0]))
    return loss


def scenario_target(mode: str, scenario: str, target: torch.Tensor) -> torch.Tensor:
    if scenario == "empty":
        return torch.zeros_like(target)
    if scenario == "full":
        return torch.full_like(target, 1 if mode != "multiclass" else 2)
    if scenario == "single_pixel":
        target = torch.zeros_like(target)
        target.view(target.shape[0], -1)[:, 0] = 1
        return target
    if scenario == "all_ignored":
        return torch.full_like(target, IGNORE)
    return target


def ignored_mask(mode: str, target: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    ignored = target == IGNORE
    return ignored.unsqueeze(1).expand_as(like) if mode == "multiclass" else ignored.expand_as(like)


def value_and_grad(loss, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    value = loss(x, target)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name,mode", CASES)
def test_nonnegative_and_finite_in_every_scenario(name, mode, scenario):
    loss = build(name, mode)
    for dims, spatial in SPATIAL.items():
        logits, target = make_inputs(mode, c=3, spatial=spatial, seed=dims)
        target = scenario_target(mode, scenario, target)
        if scenario == "huge_logits":
            logits = torch.where(logits > 0, 1e4, -1e4)
        value, grad = value_and_grad(loss, logits, target)
        assert value.dim() == 0 and torch.isfinite(value), (dims, value)
        assert value.item() >= 0.0, (dims, value)
        assert torch.isfinite(grad).all(), dims
        if scenario == "all_ignored":
            assert torch.count_nonzero(grad) == 0, dims


def perturbations(perfect: torch.Tensor, mode: str, seed: int) -> list[torch.Tensor]:
    """Probability maps near and far from ``perfect``: noise, a shrunk map, one flipped position."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(perfect.shape, generator=g)
    flipped = perfect.clone()
    if mode == "multiclass":
        flipped.view(flipped.shape[0], flipped.shape[1], -1)[:, :, 0] = flipped.view(
            flipped.shape[0], flipped.shape[1], -1)[:, :, 0].roll(1, dims=1)
    else:
        flat = flipped.view(-1)
        flat[0] = 1.0 - flat[0]
    maps = [0.8 * perfect + 0.2 * noise, 0.5 * perfect + 0.25, noise, flipped]
    if mode == "multiclass":
        maps = [m / m.sum(1, keepdim=True) for m in maps]
    return maps


@pytest.mark.parametrize("scenario", ["random", "empty", "full", "single_pixel"])
@pytest.mark.parametrize("name,mode", CASES)
def test_the_target_is_the_minimum(name, mode, scenario):
    """loss(p = t) <= loss(p) for perturbed p; and 0 at p = t whenever the target is well defined."""
    loss = build(name, mode, from_logits=False)
    for dims, spatial in SPATIAL.items():
        _, target = make_inputs(mode, c=3, spatial=spatial, seed=10 + dims)
        target = scenario_target(mode, scenario, target)
        perfect = one_hot(target, 3) if mode == "multiclass" else target.float()
        best = loss(perfect, target).item()
        for i, p in enumerate(perturbations(perfect, mode, seed=dims)):
            assert best <= loss(p, target).item() + 1e-6, (dims, i, best, loss(p, target).item())
        if scenario == "random":
            assert best == pytest.approx(0.0, abs=1e-5), dims


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("name,mode", CASES)
def test_ignored_positions_have_zero_gradient_and_cannot_change_the_loss(name, mode, from_logits):
    loss = build(name, mode, from_logits=from_logits)
    for dims, spatial in SPATIAL.items():
        logits, target = make_inputs(mode, c=3, spatial=spatial, ignore_frac=0.35, seed=20 + dims)
        x = logits if from_logits else (logits.softmax(1) if mode == "multiclass" else logits.sigmoid())
        value, grad = value_and_grad(loss, x, target)
        mask = ignored_mask(mode, target, x)
        assert mask.any() and (~mask).any()
        assert torch.count_nonzero(grad[mask]) == 0, dims
        assert torch.count_nonzero(grad[~mask]) > 0, dims
        g = torch.Generator().manual_seed(dims)
        others = [torch.rand(x.shape, generator=g), torch.full_like(x, float("nan"))]
        if from_logits:
            others += [torch.randn(x.shape, generator=g) * 1e3, torch.full_like(x, float("-inf")),
                       torch.full_like(x, float("inf"))]
        for other in others:
            changed, changed_grad = value_and_grad(loss, torch.where(mask, other, x.detach()), target)
            assert torch.equal(changed, value), (dims, other.flatten()[0])
            assert torch.equal(changed_grad, grad), dims


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name,mode", CASES)
def test_half_precision_inputs_match_a_float64_reference(name, mode, dtype):
    logits, target = make_inputs(mode, c=3, spatial=(6, 6), ignore_frac=0.1, dtype=dtype)
    loss = build(name, mode)
    with torch.autocast("cpu", dtype=dtype):
        value = loss(logits, target)
    assert value.dtype == torch.float32
    # the same (rounded) inputs in float64: only the computation's precision may differ
    reference = loss(logits.detach().double(), target)
    assert reference.dtype == torch.float64
    torch.testing.assert_close(value.double(), reference, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name,mode", CASES)
def test_gradcheck_float64(name, mode):
    logits, target = make_inputs(mode, n=2, c=3, spatial=(4, 3), ignore_frac=0.2, seed=7, dtype=torch.float64)
    loss = build(name, mode)
    x = logits.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda z: loss(z, target), (x,), eps=1e-6, atol=1e-5, rtol=1e-4)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([0.01, 1.0, 8.0, 60.0]))
def test_fuzzed_values_stay_finite_and_nonnegative(seed, scale):
    for name, mode in CASES:
        logits, target = make_inputs(mode, c=3, spatial=(5, 4), ignore_frac=0.2, seed=seed, scale=scale)
        value, grad = value_and_grad(build(name, mode), logits, target)
        assert torch.isfinite(value) and value.item() >= 0.0, (name, mode)
        assert torch.isfinite(grad).all(), (name, mode)


PERMUTATION_INVARIANT = ["ce", "focal", "dice", "jaccard", "tversky", "focal_tversky", "generalized_dice",
                         "mcc", "lovasz", "topk_ce", "composite", "dice_ce", "dice_focal"]


@pytest.mark.parametrize("name", PERMUTATION_INVARIANT)
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_class_permutation_invariance(name, seed):
    logits, target = make_inputs("multiclass", c=4, spatial=(5, 5), ignore_frac=0.1, seed=seed)
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(seed))
    relabelled = torch.where(target == IGNORE, target, torch.argsort(perm)[target.clamp_max(3)])
    loss = build_loss(name, mode="multiclass", ignore_index=IGNORE)
    torch.testing.assert_close(loss(logits[:, perm], relabelled), loss(logits, target), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("alpha,beta", [(0.3, 0.7), (0.5, 0.5), (1.0, 1.0), (0.9, 0.2), (0.0, 1.0)])
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("squared", [False, True])
def test_tversky_matches_an_independent_reference(mode, alpha, beta, batch, squared):
    logits, target = make_inputs(mode, c=3, spatial=(4, 6), ignore_frac=0.2, seed=3)
    kw = dict(mode=mode, ignore_index=IGNORE, batch=batch, squared=squared, reduction="none")
    ours = build_loss("tversky", alpha=alpha, beta=beta, **kw)(logits, target)
    ref = tversky(*dense(logits, target, mode), alpha, beta, squared=squared, batch=batch)
    torch.testing.assert_close(ours, ref.float(), rtol=1e-5, atol=1e-6)
    focal = build_loss("focal_tversky", alpha=alpha, beta=beta, gamma=0.6, **kw)(logits, target)
    torch.testing.assert_close(focal, ref.clamp_min(1e-12).pow(0.6).float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_focal_gamma_zero_is_torch_cross_entropy(dims):
    logits, target = make_inputs("multiclass", c=3, spatial=SPATIAL[dims], ignore_frac=0.2, seed=dims)
    value = build_loss("focal", gamma=0.0, mode="multiclass", ignore_index=IGNORE)(logits, target)
    torch.testing.assert_close(value, F.cross_entropy(logits, target, ignore_index=IGNORE), rtol=1e-5, atol=1e-6)
