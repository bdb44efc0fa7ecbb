"""Class weights from pixel counts: the four schemes with numbers, zero counts, bad input."""
from __future__ import annotations

import pytest
import torch

from losses.class_weights import weights_from_counts

COUNTS = torch.tensor([700.0, 200.0, 100.0], dtype=torch.float64)


def normalised(w: list[float]) -> torch.Tensor:
    t = torch.tensor(w, dtype=torch.float64)
    return (t / t.mean()).float()


@pytest.mark.parametrize("scheme,expected", [
    ("inverse", [1 / 700, 1 / 200, 1 / 100]),
    ("inverse_sqrt", [700 ** -0.5, 200 ** -0.5, 100 ** -0.5]),
    ("median_frequency", [0.2 / 0.7, 1.0, 0.2 / 0.1]),
    ("effective_number", [(1 - 0.99) / (1 - 0.99 ** 700), (1 - 0.99) / (1 - 0.99 ** 200),
                          (1 - 0.99) / (1 - 0.99 ** 100)]),
])
def test_schemes(scheme, expected):
    w = weights_from_counts(COUNTS, scheme, class_weight_beta=0.99)
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, normalised(expected))
    assert w.mean().item() == pytest.approx(1.0)


def test_effective_number_is_exact_for_huge_counts():
    w = weights_from_counts(torch.tensor([1e9, 1e3], dtype=torch.float64), "effective_number", class_weight_beta=0.9999)
    raw = torch.tensor([1e-4 / 1.0, 1e-4 / (1 - 0.9999 ** 1e3)], dtype=torch.float64)
    torch.testing.assert_close(w, (raw / raw.mean()).float())


def test_absent_class_gets_largest_present_weight():
    w = weights_from_counts(torch.tensor([100.0, 0.0, 10.0]), "inverse")
    assert w[1] == w[2] and w[2] > w[0]
    assert torch.isfinite(w).all()


@pytest.mark.parametrize("counts,match", [
    (torch.tensor([0.0, 0.0]), "zero pixels"),
    (torch.tensor([1.0, -2.0]), "non-negative"),
    (torch.tensor([]), "non-empty"),
])
def test_bad_counts(counts, match):
    with pytest.raises(ValueError, match=match):
        weights_from_counts(counts)


def test_bad_scheme_and_class_weight_beta():
    with pytest.raises(ValueError, match="weight_scheme must be one of"):
        weights_from_counts(COUNTS, "inverse_log")
    with pytest.raises(ValueError, match="class_weight_beta"):
        weights_from_counts(COUNTS, "effective_number", class_weight_beta=1.0)
