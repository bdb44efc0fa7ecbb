"""The native-resolution policy (datamodules/resolution.py): cap, no upscaling, crops, multi-scale."""
from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from datamodules.resolution import CapAndScale, downscale_factor, training_resolution


def test_downscale_factor_caps_the_longer_side_and_never_upscales() -> None:
    assert downscale_factor(300, 200, 1024) == 1.0
    assert downscale_factor(2048, 1000, 1024) == 0.5
    assert downscale_factor(1024, 1024, 1024) == 1.0


def _sample(height: int, width: int) -> dict:
    boxes = tv_tensors.BoundingBoxes([[10.0, 20.0, 30.0, 40.0]], format="XYXY", canvas_size=(height, width))
    return {"image": tv_tensors.Image(torch.rand(3, height, width)), "boxes": boxes, "labels": torch.tensor([1])}


def test_cap_resizes_image_and_boxes_together() -> None:
    out = CapAndScale(100)(_sample(400, 200))
    assert out["image"].shape[-2:] == (100, 50)
    torch.testing.assert_close(out["boxes"].as_subclass(torch.Tensor), torch.tensor([[2.5, 5.0, 7.5, 10.0]]))
    small = _sample(64, 80)
    assert CapAndScale(100)(small)["image"] is small["image"]  # native: untouched


def test_multi_scale_draws_within_the_range() -> None:
    torch.manual_seed(0)
    sides = {CapAndScale(1000, (0.5, 2.0))(_sample(100, 100))["image"].shape[-1] for _ in range(30)}
    assert min(sides) >= 50 and max(sides) <= 200 and len(sides) > 10


def test_training_crop_is_padded_for_small_images() -> None:
    pipeline = v2.Compose(training_resolution(1024, 64, None))
    assert pipeline(_sample(300, 500))["image"].shape[-2:] == (64, 64)
    assert pipeline(_sample(40, 50))["image"].shape[-2:] == (64, 64)
