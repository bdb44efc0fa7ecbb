"""Metric names: direction, boundedness and size buckets, checked against the names the metric modules
actually generate, so the readers (reporting) and the generators cannot drift apart."""
from __future__ import annotations

import math
import random

import pytest
import torch

from metrics.names import (PER_CASE_ALWAYS_DEFINED, bucket_names, bucket_order, higher_is_better, is_bounded,
                           metric_stem)
from metrics.segmentation import SegmentationMetrics


@pytest.mark.parametrize(("metric", "stem", "higher"), [
    ("test/miou", "miou", True),
    ("val/dice/2", "dice", True),
    ("small_recall/lt16", "small_recall", True),
    ("test/map_small", "map_small", True),
    ("test/hd95", "hd95", False),
    ("hd95/1", "hd95", False),
    ("val/hd95/2", "hd95", False),
    ("assd", "assd", False),
    ("train/loss", "loss", False),
    ("val/loss/dice", "loss", False),
    ("test/nsd/1", "nsd", True),
])
def test_direction_and_bounds_follow_the_stem(metric, stem, higher):
    assert metric_stem(metric) == stem
    assert higher_is_better(metric) is higher
    assert is_bounded(metric) is higher  # every score is in [0, 1]; distances and losses are not


def test_bucket_names_and_bad_edges():
    assert bucket_names([16, 64]) == ["lt16", "16-64", "ge64"]
    assert bucket_names([8]) == ["lt8", "ge8"]
    assert bucket_names([]) == ["all"]
    for bad in ([64, 16], [0, 4], [16, 16]):
        with pytest.raises(ValueError, match=r"small_object_buckets must be increasing positive .*got \["):
            bucket_names(bad)


def test_bucket_order_sorts_generated_names_smallest_first_and_unknown_last():
    names = bucket_names([4, 16, 64, 256])
    assert names == ["lt4", "4-16", "16-64", "64-256", "ge256"]
    shuffled = [f"test/small_recall/{n}" for n in names] + ["test/small_recall/zz"]
    random.Random(0).shuffle(shuffled)
    assert [m.rsplit("/", 1)[1] for m in sorted(shuffled, key=bucket_order)] == [*names, "zz"]
    assert bucket_order("small_recall/16-64") == (16.0, 1, "16-64")
    assert bucket_order("zz")[0] == math.inf


def test_the_keys_segmentation_metrics_generate_are_known_here():
    metric = SegmentationMetrics(3, small_object_buckets=(8, 32), surface_tolerance_mm=1.0)
    target = torch.zeros(1, 12, 12, 12, dtype=torch.long)
    target[0, 2:4, 2:4, 2:4] = 1      # 8 voxels: bucket 8-32
    target[0, 6:11, 6:11, 6:11] = 2   # 125 voxels: bucket ge32
    metric.update(target.clone(), target)
    out = metric.compute()
    buckets = [k for k in out if k.startswith("small_recall/")]
    assert sorted(buckets, key=bucket_order) == [f"small_recall/{n}" for n in bucket_names((8, 32))]
    lower = sorted(k for k in out if not higher_is_better(k))
    assert lower == ["hd95", "hd95/1", "hd95/2"]
    assert all(0.0 <= float(out[k]) <= 1.0 for k in out if is_bounded(k) and not math.isnan(float(out[k])))


def test_per_case_columns_the_policy_always_defines_are_never_nan():
    metric = SegmentationMetrics(3, surface_tolerance_mm=1.0)
    target = torch.zeros(2, 8, 8, 8, dtype=torch.long)
    preds = target.clone()
    target[0, 1:3, 1:3, 1:3] = 1     # case 0: class 1 missed entirely, class 2 absent from both
    preds[1, 4:6, 4:6, 4:6] = 2      # case 1: class 2 a false alarm, class 1 absent from both
    (row0, row1) = metric.update(preds, target).rows()
    for row in (row0, row1):
        always = {k: v for k, v in row.items() if metric_stem(k) in PER_CASE_ALWAYS_DEFINED}
        assert len(always) == 3 + 3 + 2 + 2  # dice/k, iou/k, nsd/1..2, dice_fg, miou
        assert not any(math.isnan(v) for v in always.values())
    # Outside the list a column may be undefined: HD95 needs the class in both masks.
    assert math.isnan(row0["hd95/1"]) and math.isnan(row1["hd95/2"]) and math.isnan(row0["object_recall/2"])
