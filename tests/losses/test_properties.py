"""Properties of every segmentation loss × mode: hostile inputs stay finite, perfect prediction is the
minimum, float32 under autocast, float64 gradcheck, class-permutation invariance, known identities."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from losses import available, build_loss
from tests.losses.loss_inputs import IGNORE, make_inputs, one_hot

NAMES = available("segmentation")
SIGMOID_ONLY = {"bce"}
SCENARIOS = ["random", "empty", "full", "single_pixel", "all_ignored", "huge_logits"]


def modes_of(name: str) -> list[str]:
    return ["binary", "multilabel"] if name in SIGMOID_ONLY else ["binary", "multiclass", "multilabel"]


CASES = [(name, mode) for name in NAMES for mode in modes_of(name)]


def build(name: str, mode: str, **kwargs):
    loss = build_loss(name, mode=mode, ignore_index=IGNORE, **kwargs)
    if loss.requires_class_counts:
        loss.set_class_counts(torch.tensor([50.0, 30.0, 20.0] if mode != "binary" else [80.0, 20.0]))
    return loss


def scenario_inputs(mode: str, scenario: str, spatial: tuple[int, ...], seed: int):
    logits, target = make_inputs(mode, n=2, c=3, spatial=spatial, seed=seed)
    logits = logits.detach()
    if scenario == "empty":
        target = torch.zeros_like(target)
    elif scenario == "full":
        target = torch.full_like(target, 1 if mode != "multiclass" else 2)
    elif scenario == "single_pixel":
        target = torch.zeros_like(target)
        target.view(target.shape[0], -1)[:, 0] = 1
    elif scenario == "all_ignored":
        target = torch.full_like(target, IGNORE)
    elif scenario == "huge_logits":
        logits = torch.where(logits > 0, 1e4, -1e4)
    return logits.requires_grad_(), target


@settings(max_examples=150, deadline=None)
@given(case=st.sampled_from(CASES), scenario=st.sampled_from(SCENARIOS),
       dims=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_hostile_inputs_give_finite_loss_and_gradients(case, scenario, dims, seed):
    name, mode = case
    spatial = {1: (7,), 2: (5, 4), 3: (3, 4, 3)}[dims]
    logits, target = scenario_inputs(mode, scenario, spatial, seed)
    value = build(name, mode)(logits, target)
    value.backward()
    assert value.dim() == 0 and torch.isfinite(value), (name, mode, scenario, value)
    assert torch.isfinite(logits.grad).all(), (name, mode, scenario)
    if scenario == "all_ignored" and name != "lovasz" or scenario == "all_ignored" and mode == "multiclass":
        assert torch.count_nonzero(logits.grad) == 0, (name, mode)


@pytest.mark.parametrize("name,mode", CASES)
def test_perfect_prediction_is_the_minimum(name, mode):
    _, target = make_inputs(mode, n=2, c=3, spatial=(6, 6), seed=3)
    perfect = one_hot(target, 3) if mode == "multiclass" else target.float()
    loss = build(name, mode, from_logits=False)
    best = loss(perfect, target)
    assert best.item() == pytest.approx(0.0, abs=1e-5)
    noisy = (0.8 * perfect + 0.2 * torch.rand_like(perfect))
    if mode == "multiclass":
        noisy = noisy / noisy.sum(1, keepdim=True)
    assert loss(noisy, target).item() > best.item() + 1e-4


@pytest.mark.parametrize("name,mode", [(n, "binary" if n in SIGMOID_ONLY else "multiclass") for n in NAMES])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_float32_under_autocast(name, mode, dtype):
    logits, target = make_inputs(mode, c=3, spatial=(6, 6), dtype=dtype)
    loss = build(name, mode)
    with torch.autocast("cpu", dtype=dtype):
        value = loss(logits, target)
    assert value.dtype == torch.float32
    reference = loss(logits.detach().float(), target)
    torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,mode", CASES)
def test_gradcheck_float64(name, mode):
    logits, target = make_inputs(mode, n=2, c=3, spatial=(4, 3), ignore_frac=0.2, seed=7, dtype=torch.float64)
    loss = build(name, mode)
    x = logits.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda z: loss(z, target), (x,), eps=1e-6, atol=1e-5, rtol=1e-4)


PERMUTATION_INVARIANT = ["ce", "focal", "dice", "jaccard", "tversky", "focal_tversky", "generalized_dice",
                         "mcc", "lovasz", "topk_ce", "composite", "dice_ce", "dice_focal"]


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(PERMUTATION_INVARIANT), seed=st.integers(0, 2**16))
def test_class_permutation_invariance(name, seed):
    logits, target = make_inputs("multiclass", c=4, spatial=(5, 5), ignore_frac=0.1, seed=seed)
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(seed))
    relabelled = torch.where(target == IGNORE, target, torch.argsort(perm)[target.clamp_max(3)])
    loss = build_loss(name, mode="multiclass", ignore_index=IGNORE)
    torch.testing.assert_close(loss(logits[:, perm], relabelled), loss(logits, target), rtol=1e-5, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(mode=st.sampled_from(["binary", "multiclass", "multilabel"]), seed=st.integers(0, 2**16),
       batch=st.booleans(), squared=st.booleans())
def test_tversky_half_half_is_dice(mode, seed, batch, squared):
    logits, target = make_inputs(mode, c=3, spatial=(4, 6), ignore_frac=0.2, seed=seed)
    kw = dict(mode=mode, ignore_index=IGNORE, batch=batch, squared=squared, reduction="none")
    torch.testing.assert_close(build_loss("tversky", alpha=0.5, beta=0.5, **kw)(logits, target),
                               build_loss("dice", **kw)(logits, target), rtol=1e-5, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), dims=st.integers(1, 3))
def test_focal_gamma_zero_is_ce(seed, dims):
    spatial = {1: (9,), 2: (4, 5), 3: (3, 3, 3)}[dims]
    logits, target = make_inputs("multiclass", c=3, spatial=spatial, ignore_frac=0.2, seed=seed)
    kw = dict(mode="multiclass", ignore_index=IGNORE)
    torch.testing.assert_close(build_loss("focal", gamma=0.0, **kw)(logits, target),
                               build_loss("ce", **kw)(logits, target), rtol=1e-5, atol=1e-6)
