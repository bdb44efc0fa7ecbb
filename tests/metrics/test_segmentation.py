"""Segmentation metrics on hand-made masks with known IoU / Dice / object recall."""
import math

import pytest
import torch
from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

from metrics.segmentation import ObjectRecall, SegmentationMetrics


def _metrics(preds, target, num_classes=3, ignore_index=None, buckets=(16, 64)):
    metric = SegmentationMetrics(num_classes, ignore_index, buckets)
    metric.update(preds, target)
    return {k: float(v) for k, v in metric.compute().items()}


def test_pixel_metrics_known_values():
    # 4x4 image, 3 classes. target: class 1 in the top-left 2x2, class 2 in the bottom-right 2x2.
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2, :2] = 1
    target[0, 2:, 2:] = 2
    preds = target.clone()
    preds[0, 0, 0] = 0          # one class-1 pixel missed (FN for 1, FP for 0)
    preds[0, 0, 3] = 2          # one background pixel called class 2 (FN for 0, FP for 2)
    out = _metrics(preds, target)
    # class 0: tp=7, fp=1, fn=1 ; class 1: tp=3, fn=1 ; class 2: tp=4, fp=1
    assert out["iou/0"] == pytest.approx(7 / 9)
    assert out["iou/1"] == pytest.approx(3 / 4)
    assert out["iou/2"] == pytest.approx(4 / 5)
    assert out["dice/1"] == pytest.approx(6 / 7)
    assert out["dice/2"] == pytest.approx(8 / 9)
    assert out["miou"] == pytest.approx((7 / 9 + 3 / 4 + 4 / 5) / 3)
    assert out["dice_fg"] == pytest.approx((6 / 7 + 8 / 9) / 2)
    assert out["pixel_acc"] == pytest.approx(14 / 16)


def test_matches_torchmetrics_jaccard_and_f1_on_random_maps():
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (3, 16, 16), generator=gen)
    preds = torch.where(torch.rand(3, 16, 16, generator=gen) < 0.7, target, torch.randint(0, 4, (3, 16, 16), generator=gen))
    out = _metrics(preds, target, num_classes=4)
    iou = MulticlassJaccardIndex(4, average=None)(preds, target)
    f1 = MulticlassF1Score(4, average=None, multidim_average="global")(preds, target)
    for k in range(4):
        assert out[f"iou/{k}"] == pytest.approx(float(iou[k]), abs=1e-6)
        assert out[f"dice/{k}"] == pytest.approx(float(f1[k]), abs=1e-6)


def test_ignore_index_pixels_count_nowhere():
    target = torch.tensor([[[1, 1, 255, 255], [0, 0, 0, 0]]])
    preds = torch.tensor([[[1, 1, 0, 2], [0, 0, 0, 0]]])
    out = _metrics(preds, target, ignore_index=255)
    assert out["pixel_acc"] == 1.0
    assert out["iou/1"] == 1.0
    assert math.isnan(out["iou/2"])  # class 2 is absent from prediction and target once ignored pixels are gone
    assert out["miou"] == 1.0        # NaN classes are left out of the mean


def test_absent_class_is_nan_and_excluded_from_means():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 0, 0] = 1
    out = _metrics(target.clone(), target, num_classes=3)
    assert math.isnan(out["iou/2"]) and math.isnan(out["dice/2"])
    assert out["miou"] == 1.0 and out["dice_fg"] == 1.0


def test_object_recall_counts_components_by_size():
    target = torch.zeros(1, 32, 32, dtype=torch.long)
    target[0, 0:2, 0:2] = 1        # 4 px object of class 1 (bucket lt16)
    target[0, 10:15, 10:15] = 1    # 25 px object of class 1 (bucket 16-64)
    target[0, 20:30, 20:30] = 2    # 100 px object of class 2 (bucket ge64)
    target[0, 0:3, 28:31] = 2      # 9 px object of class 2 (bucket lt16)
    preds = torch.zeros_like(target)
    preds[0, 12, 12] = 1           # one pixel inside the 25 px object → hit
    preds[0, 25, 25] = 2           # hit on the 100 px object
    preds[0, 1, 1] = 2             # wrong class on the 4 px object → not a hit
    metric = ObjectRecall(3, (16, 64))
    metric.update(preds, target)
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["object_recall"] == pytest.approx(2 / 4)
    assert out["object_recall/1"] == pytest.approx(1 / 2)
    assert out["object_recall/2"] == pytest.approx(1 / 2)
    assert out["small_recall/lt16"] == pytest.approx(0 / 2)
    assert out["small_recall/16-64"] == pytest.approx(1 / 1)
    assert out["small_recall/ge64"] == pytest.approx(1 / 1)


def test_object_recall_diagonal_neighbours_are_one_object_and_3d_works():
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[0, 1, 1] = target[0, 2, 2] = 1    # 8-connected: one object of 2 px
    metric = ObjectRecall(2, (16,))
    metric.update(target.clone(), target)
    assert float(metric.totals.sum()) == 1
    volume = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    volume[0, 0, 0, 0] = volume[0, 3, 3, 3] = 1
    metric3d = ObjectRecall(2, (16,))
    preds = volume.clone()
    preds[0, 3, 3, 3] = 0
    metric3d.update(preds, volume)
    assert float(metric3d.compute()["object_recall"]) == pytest.approx(0.5)

