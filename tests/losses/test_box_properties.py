"""Property tests for the box-regression losses (hypothesis)."""
from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from losses import build_loss

BOX_LOSSES = ["ciou", "diou", "eiou", "giou", "iou", "l1", "l2", "nwd", "siou", "smooth_l1"]
# Values the IoU family takes for identical boxes: 1 - |B| / (|B| + eps) and friends, and NWD's
# 1 - exp(-sqrt(eps) / C); tiny but not exactly 0.
IDENTICAL_TOL = 1e-4

coordinate = st.floats(min_value=-50.0, max_value=150.0, allow_nan=False, width=32)
size = st.floats(min_value=0.0, max_value=60.0, allow_nan=False, width=32)
positive_size = st.floats(min_value=1.0, max_value=60.0, allow_nan=False, width=32)


@st.composite
def boxes(draw: st.DrawFn, n: int, sizes: st.SearchStrategy = size) -> torch.Tensor:
    rows = []
    for _ in range(n):
        x, y, w, h = draw(coordinate), draw(coordinate), draw(sizes), draw(sizes)
        rows.append([x, y, x + w, y + h])
    return torch.tensor(rows, dtype=torch.float64)


@settings(max_examples=40, deadline=None)
@given(pred=boxes(6), target=boxes(6), name=st.sampled_from(BOX_LOSSES))
def test_nonnegative_finite_and_symmetric(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    loss = build_loss(name, reduction="none")
    forward, backward = loss(pred, target), loss(target, pred)
    assert torch.isfinite(forward).all()
    assert (forward >= -1e-12).all()
    torch.testing.assert_close(forward, backward, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(target=boxes(6, positive_size), name=st.sampled_from(BOX_LOSSES))
def test_zero_for_identical_boxes(target: torch.Tensor, name: str) -> None:
    values = build_loss(name, reduction="none")(target.clone(), target)
    assert values.abs().max().item() < IDENTICAL_TOL


@settings(max_examples=30, deadline=None)
@given(target=boxes(4, positive_size), shift=st.floats(min_value=0.5, max_value=40.0), name=st.sampled_from(BOX_LOSSES))
def test_moving_away_never_lowers_the_loss(target: torch.Tensor, shift: float, name: str) -> None:
    """Shifting a copy of the target further along x costs at least as much (and more than none)."""
    loss = build_loss(name, reduction="none")
    near = target + torch.tensor([shift, 0.0, shift, 0.0], dtype=torch.float64)
    far = target + torch.tensor([2 * shift, 0.0, 2 * shift, 0.0], dtype=torch.float64)
    at_near, at_far = loss(near, target), loss(far, target)
    assert (at_near > IDENTICAL_TOL).all()
    assert (at_far >= at_near - 1e-9).all()
