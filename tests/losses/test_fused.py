"""The shared reductions of losses/fused.py against float64 references."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from losses.fused import CLASS_SUM_CHUNK, class_sums, softplus_sum


@pytest.mark.parametrize("n, p, c", [(2, 64**3, 4), (3, 5 * CLASS_SUM_CHUNK + 17, 3), (1, 100, 5),
                                     (2, 2 * CLASS_SUM_CHUNK, 2), (4, CLASS_SUM_CHUNK + 1, 7)])
def test_class_sums_equal_a_float64_scatter(n, p, c):
    g = torch.Generator().manual_seed(p)
    target = torch.randint(0, c, (n, p), generator=g)
    values = torch.rand(n, p, generator=g)
    exact = torch.zeros(n, c, dtype=torch.float64).scatter_add_(1, target, values.double())
    one_row = torch.zeros(n, c).scatter_add_(1, target, values)  # torch's serial row sum
    chunked = class_sums(target, values, c)
    assert chunked.dtype == values.dtype and chunked.shape == (n, c)
    error = (chunked.double() - exact).abs().max().item()
    assert error <= (one_row.double() - exact).abs().max().item() + 1e-6
    assert error <= 1e-6 * exact.abs().max().item() + 1e-6
    counts = class_sums(target, values.new_ones(()), c)
    assert torch.equal(counts, torch.zeros(n, c).scatter_add_(1, target, torch.ones(n, p)))
    assert counts.sum().item() == n * p


def test_class_sums_gradient_is_the_class_weight_at_each_position():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (2, 3 * CLASS_SUM_CHUNK + 5), generator=g)
    values = torch.rand(target.shape, generator=g, requires_grad=True)
    weight = torch.randn(2, 3, generator=g)
    (class_sums(target, values, 3) * weight).sum().backward()
    assert torch.equal(values.grad, weight.gather(1, target))


def test_class_sums_leaves_empty_classes_at_zero():
    target = torch.zeros(2, 3 * CLASS_SUM_CHUNK, dtype=torch.long)
    sums = class_sums(target, torch.ones(target.shape), 4)
    assert sums[:, 0].tolist() == [3 * CLASS_SUM_CHUNK] * 2 and sums[:, 1:].abs().sum().item() == 0


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 2e-6), (torch.float64, 1e-13)])
def test_softplus_sum_is_as_accurate_as_torch_softplus(dtype, rtol):
    x = torch.linspace(-120, 120, 48_001, dtype=dtype)
    xd = x.double()
    exact = xd.clamp_min(0) + torch.log1p(torch.exp(-xd.abs()))  # F.softplus returns x above x = 20
    ours = torch.stack([softplus_sum(v) for v in x.view(-1, 1)]).double()  # one element at a time
    relative = ((ours - exact).abs() / exact.clamp_min(torch.finfo(dtype).tiny)).max().item()
    torch_relative = ((F.softplus(x).double() - exact).abs() / exact.clamp_min(torch.finfo(dtype).tiny)).max()
    # below x = -87 (float32) e^x is subnormal: both lose digits there, ours no more than torch's
    normal = exact > torch.finfo(dtype).tiny / torch.finfo(dtype).eps
    normal_error = ((ours - exact).abs() / exact)[normal].max().item()
    assert normal_error < rtol * 4, normal_error
    assert relative <= max(torch_relative.item(), normal_error) * 1.01


def test_softplus_sum_on_hostile_and_half_inputs():
    x = torch.tensor([-1e4, -200.0, -30.0, -1e-6, 0.0, 1e-6, 30.0, 200.0, 1e4])
    assert softplus_sum(x).item() == pytest.approx(F.softplus(x.double()).sum().item(), rel=1e-6)
    assert softplus_sum(torch.tensor([-1e4])).item() == 0.0  # e^{-1e4} underflows: log1p(0) = 0
    half = torch.linspace(-12, 12, 101).half()
    assert softplus_sum(half).float().item() == pytest.approx(F.softplus(half.double()).sum().item(), rel=2e-3)
