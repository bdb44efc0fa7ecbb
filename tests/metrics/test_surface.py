"""HD95 / NSD in mm (MONAI), their empty-mask conventions, 3-D metrics in SegmentationMetrics."""
from __future__ import annotations

import math

import pytest
import torch

from metrics.segmentation import SegmentationMetrics
from metrics.surface import SurfaceMetrics


def _cube(shape=(20, 20, 20), at=(5, 5, 5), size=5, cls=1) -> torch.Tensor:
    out = torch.zeros((1, *shape), dtype=torch.long)
    out[0, at[0]:at[0] + size, at[1]:at[1] + size, at[2]:at[2] + size] = cls
    return out


@pytest.mark.parametrize("axis,spacing,expected", [(0, (1.0, 1.0, 1.0), 2.0), (2, (1.0, 1.0, 3.0), 6.0), (0, (0.5, 1, 1), 1.0)])
def test_hd95_of_a_shifted_cube_is_the_shift_in_mm(axis, spacing, expected):
    at = [5, 5, 5]
    at[axis] += 2
    metric = SurfaceMetrics(2, tolerance_mm=1.0)
    metric.update(_cube(at=tuple(at)), _cube(), torch.tensor([spacing]))
    assert metric.compute()["hd95/1"].item() == pytest.approx(expected)


def test_identical_masks_score_zero_distance_and_full_nsd():
    metric = SurfaceMetrics(3, tolerance_mm=1.0)
    target = _cube() + _cube(at=(12, 12, 12), size=3, cls=2)
    metric.update(target.clone(), target)
    out = metric.compute()
    assert out["hd95"].item() == 0 and out["nsd"].item() == 1.0 and out["nsd/2"].item() == 1.0


def test_nsd_counts_surface_within_the_tolerance():
    shifted = _cube(at=(7, 5, 5))  # two voxels off along x
    tight, loose = SurfaceMetrics(2, tolerance_mm=1.0), SurfaceMetrics(2, tolerance_mm=2.5)
    for metric in (tight, loose):
        metric.update(shifted, _cube())
    assert 0 < tight.compute()["nsd"].item() < 1 and loose.compute()["nsd"].item() == 1.0


def test_empty_masks_follow_the_stated_conventions():
    metric = SurfaceMetrics(3, tolerance_mm=1.0)
    empty = torch.zeros((1, 10, 10, 4), dtype=torch.long)
    target = empty.clone()
    target[0, 2:4, 2:4, 1] = 1
    metric.update(empty, target, torch.tensor([[1.0, 1.0, 3.0]]))  # class 1 missed, class 2 absent everywhere
    out = metric.compute()
    assert out["hd95/1"].item() == pytest.approx(math.sqrt(10**2 + 10**2 + 12**2))  # the volume diagonal in mm
    assert out["nsd/1"].item() == 0.0
    assert math.isnan(out["hd95/2"].item()) and math.isnan(out["nsd/2"].item())
    assert out["hd95"].item() == out["hd95/1"].item()  # undefined classes stay out of the mean


def test_ignored_voxels_count_as_background():
    metric = SurfaceMetrics(2, tolerance_mm=1.0, ignore_index=255)
    target = _cube()
    target[0, :, :, 15:] = 255
    prediction = _cube()
    prediction[0, :, :, 15:] = 1  # predicted foreground under the ignore label: no effect
    metric.update(prediction, target)
    assert metric.compute()["hd95/1"].item() == 0


def test_segmentation_metrics_add_surface_keys_for_volumes_only():
    metrics = SegmentationMetrics(3, small_object_buckets=(32, 256), surface_tolerance_mm=2.0)
    target = _cube() + _cube(at=(14, 14, 14), size=2, cls=2)
    metrics.update(target.clone(), target, torch.tensor([[1.0, 1.0, 2.0]]))
    out = metrics.compute()
    assert out["dice_fg"].item() == 1.0 and out["hd95"].item() == 0 and out["nsd/2"].item() == 1.0
    assert out["small_recall/lt32"].item() == 1.0 and out["small_recall/32-256"].item() == 1.0  # 8 and 125 voxels
    flat = SegmentationMetrics(3, surface_tolerance_mm=2.0)
    flat.update(torch.zeros((1, 8, 8), dtype=torch.long), torch.zeros((1, 8, 8), dtype=torch.long))
    assert "hd95" not in flat.compute()

