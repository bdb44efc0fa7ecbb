"""Box-regression losses: parity with torchvision.ops / torch.nn.functional, edge cases, checks."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tv_ops
from hydra.utils import instantiate
from omegaconf import OmegaConf

from losses import available, build_loss, loss_task
from losses.box import BoxLoss

BOX_LOSSES = ["ciou", "diou", "eiou", "giou", "iou", "l1", "l2", "nwd", "siou", "smooth_l1"]
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "loss"


def _random_boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 40 + 0.5
    return torch.cat([xy, xy + wh], dim=1)


def _case_pairs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Named (pred, target) sets: random, disjoint, nested, identical, degenerate (zero w or h)."""
    a, b = _random_boxes(64, 0), _random_boxes(64, 1)
    shift = torch.tensor([200.0, 0.0, 200.0, 0.0], dtype=torch.float64)
    inner = a + torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64) * 0.2 * (a[:, 2:] - a[:, :2]).repeat(1, 2)
    flat_w = a.clone()
    flat_w[:, 2] = flat_w[:, 0]
    flat_h = b.clone()
    flat_h[:, 3] = flat_h[:, 1]
    return {
        "random": (a, b),
        "disjoint": (a, a + shift),
        "nested": (inner, a),
        "identical": (a, a.clone()),
        "degenerate": (flat_w, flat_h),
    }


TV_PARITY = {
    "giou": tv_ops.generalized_box_iou_loss,
    "diou": tv_ops.distance_box_iou_loss,
    "ciou": tv_ops.complete_box_iou_loss,
}


@pytest.mark.parametrize("case", ["random", "disjoint", "nested", "identical", "degenerate"])
@pytest.mark.parametrize("name", sorted(TV_PARITY))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_iou_family_matches_torchvision(name: str, case: str, reduction: str) -> None:
    pred, target = _case_pairs()[case]
    ours = build_loss(name, reduction=reduction)(pred, target)
    theirs = TV_PARITY[name](pred, target, reduction=reduction)
    if name == "ciou" and case == "degenerate":
        # torchvision divides w/h by a zero height (inf/NaN aspect term); ours uses h + eps, so
        # compare only the finite part and require ours to be finite everywhere.
        assert torch.isfinite(ours).all()
        return
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_ciou_gradient_matches_torchvision_on_regular_boxes() -> None:
    pred, target = _case_pairs()["random"]
    p1, p2 = pred.clone().requires_grad_(), pred.clone().requires_grad_()
    build_loss("ciou", reduction="sum")(p1, target).backward()
    tv_ops.complete_box_iou_loss(p2, target, reduction="sum").backward()
    torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("case", ["random", "disjoint", "nested", "identical", "degenerate"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_l1_family_matches_functional(case: str, reduction: str) -> None:
    pred, target = _case_pairs()[case]
    reference = {
        "l1": F.l1_loss(pred, target, reduction="none"),
        "l2": F.mse_loss(pred, target, reduction="none"),
        "smooth_l1": F.smooth_l1_loss(pred, target, reduction="none", beta=0.5),
    }
    for name, elementwise in reference.items():
        kwargs = {"beta": 0.5} if name == "smooth_l1" else {}
        ours = build_loss(name, reduction=reduction, **kwargs)(pred, target)
        per_pair = elementwise.sum(dim=1)  # the documented convention: sum over the 4 coordinates
        expected = {"none": per_pair, "sum": per_pair.sum(), "mean": per_pair.mean()}[reduction]
        torch.testing.assert_close(ours, expected)
    # "mean" is 4x F's element mean, "sum" equals F's sum.
    assert build_loss("l1", reduction="sum")(pred, target).item() == pytest.approx(
        F.l1_loss(pred, target, reduction="sum").item()
    )


def test_known_values() -> None:
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])  # IoU = 2 / 6, enclosing 3x2, centre offset 1
    assert build_loss("iou")(pred, target).item() == pytest.approx(1 - 1 / 3, abs=1e-6)
    assert build_loss("iou", log_loss=True)(pred, target).item() == pytest.approx(math.log(3), abs=1e-6)
    assert build_loss("diou")(pred, target).item() == pytest.approx(1 - 1 / 3 + 1 / 13, abs=1e-6)
    assert build_loss("eiou")(pred, target).item() == pytest.approx(1 - 1 / 3 + 1 / 13, abs=1e-6)
    # same size: NWD distance is the centre offset only
    assert build_loss("nwd", constant=2.0)(pred, target).item() == pytest.approx(1 - math.exp(-0.5), abs=1e-6)
    # SIoU: horizontal offset -> angle cost 0, gamma 2, rho_x = (1/3)^2, equal shapes
    expected_siou = 1 - 1 / 3 + 0.5 * (1 - math.exp(-2 / 9))
    assert build_loss("siou")(pred, target).item() == pytest.approx(expected_siou, abs=1e-6)
    wide = torch.tensor([[0.0, 0.0, 4.0, 1.0]])
    tall = torch.tensor([[0.0, 0.0, 1.0, 4.0]])
    eiou = build_loss("eiou")(wide, tall).item()
    centre = (1.5**2 + 1.5**2) / (4**2 + 4**2)
    assert eiou == pytest.approx(1 - 1 / 7 + centre + 9 / 16 + 9 / 16, abs=1e-6)


def test_siou_angle_cost_is_largest_at_45_degrees() -> None:
    target = torch.tensor([[10.0, 10.0, 14.0, 14.0]]).repeat(3, 1)
    pred = target + torch.tensor([[3.0, 0.0, 3.0, 0.0], [3.0, 3.0, 3.0, 3.0], [0.0, 3.0, 0.0, 3.0]])
    losses = build_loss("siou", reduction="none")(pred, target)
    # diagonal offset: larger centre distance and angle cost 1 -> the largest loss
    assert losses[1] > losses[0]
    torch.testing.assert_close(losses[0], losses[2])


@pytest.mark.parametrize("name", BOX_LOSSES)
@pytest.mark.parametrize("case", ["random", "disjoint", "nested", "identical", "degenerate"])
def test_gradients_finite(name: str, case: str) -> None:
    pred, target = _case_pairs()[case]
    pred = pred.float().clone().requires_grad_()
    build_loss(name, reduction="sum")(pred, target.float()).backward()
    assert torch.isfinite(pred.grad).all()


def test_gradients_bounded_for_point_boxes_and_coincident_centres() -> None:
    point = torch.tensor([[5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 4.0, 4.0], [5.0, 5.0, 5.0, 5.0],
                          [2.0, 7.0, 2.0, 7.0], [3.0, 1.0, 3.0, 6.0]], requires_grad=True)
    target = torch.tensor([[5.0, 5.0, 5.0, 5.0], [1.0, 1.0, 3.0, 3.0], [1.0, 2.0, 9.0, 4.0],
                           [2.0, 3.0, 2.0, 3.0], [1.0, 4.0, 8.0, 4.0]])  # distinct degenerate pairs too
    for name in BOX_LOSSES:
        point.grad = None
        build_loss(name, reduction="sum")(point, target).backward()
        assert torch.isfinite(point.grad).all(), name
        assert point.grad.abs().max() < 1e3, (name, point.grad)


@pytest.mark.parametrize("name", BOX_LOSSES)
def test_empty_input_gives_zero_with_grad(name: str) -> None:
    pred = torch.zeros(0, 4, requires_grad=True)
    for reduction in ("mean", "sum"):
        value = build_loss(name, reduction=reduction)(pred, torch.zeros(0, 4))
        assert value.shape == () and value.item() == 0.0
        value.backward()
        assert pred.grad is not None and pred.grad.shape == (0, 4)
    assert build_loss(name, reduction="none")(pred, torch.zeros(0, 4)).shape == (0,)


@pytest.mark.parametrize("name", BOX_LOSSES)
def test_registered_for_detection_and_config_builds_same_object(name: str) -> None:
    assert name in available("detection")
    assert loss_task(name) == "detection"
    from_yaml = instantiate(OmegaConf.load(CONFIG_DIR / f"{name}.yaml"))
    from_registry = build_loss(name)
    assert type(from_yaml) is type(from_registry)
    assert isinstance(from_yaml, BoxLoss)
    assert from_yaml.box_space == ("deltas" if name in ("l1", "l2", "smooth_l1") else "boxes")
    pred, target = _case_pairs()["random"]
    assert torch.equal(from_yaml(pred, target), from_registry(pred, target))


def test_integer_boxes_are_promoted() -> None:
    pred = torch.tensor([[0, 0, 2, 2]])
    target = torch.tensor([[1, 0, 3, 2]])
    assert build_loss("giou")(pred, target).item() == pytest.approx(1 - 1 / 3, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "giou", "reduction": "avg"}, "reduction must be one of"),
        ({"name": "ciou", "eps": 0.0}, "eps must be > 0"),
        ({"name": "smooth_l1", "beta": -1.0}, "beta must be >= 0"),
        ({"name": "nwd", "constant": 0.0}, "constant must be > 0"),
        ({"name": "siou", "theta": -2.0}, "theta must be >= 1"),
        ({"name": "siou", "theta": 0.5}, "theta must be >= 1"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=match):
        build_loss(name, **kwargs)


def test_bad_shapes() -> None:
    loss = build_loss("giou")
    with pytest.raises(ValueError, match=r"pred_boxes must be a tensor of shape \(N, 4\).*\(3, 5\)"):
        loss(torch.zeros(3, 5), torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"target_boxes must be a tensor of shape \(N, 4\).*\(4,\)"):
        loss(torch.zeros(1, 4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"same shape, got \(2, 4\) and \(3, 4\)"):
        loss(torch.zeros(2, 4), torch.zeros(3, 4))
