"""Per-case metrics against hand-computed numbers: Dice/IoU/pixel counts and every branch of the
empty-reference policy, object recall, 3-D HD95/NSD against MONAI, per-image detection AP/recall/FP,
and the ordering/gathering of the rows of one pass."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance, compute_surface_dice
from torchmetrics.detection import MeanAveragePrecision

from metrics.cases import CaseRows
from metrics.detection import image_scores
from metrics.segmentation import SegmentationMetrics, case_confusion


def _rows(preds, target, num_classes=3, ignore_index=None, spacing=None, **kwargs):
    metric = SegmentationMetrics(num_classes, ignore_index, **kwargs)
    return metric, metric.update(preds, target, spacing).rows()


def _two_cases() -> tuple[torch.Tensor, torch.Tensor]:
    # Case 0: class 1 in the top-left 2x2 (one pixel missed), class 2 absent from both → the "nothing here" case.
    # Case 1: class 1 in the reference only (missed), class 2 in the prediction only (a false alarm).
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    preds = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, :2, :2] = 1
    preds[0, :2, :2] = 1
    preds[0, 0, 0] = 0
    target[1, 3, 3] = 1
    preds[1, 0, :3] = 2
    return preds, target


def test_dice_iou_and_pixel_counts_by_hand_with_every_empty_branch():
    _, (first, second) = _rows(*_two_cases())
    # case 0: class 0 tp=12 ref=12 pred=13; class 1 tp=3 ref=4 pred=3; class 2 empty in both.
    assert first["dice/0"] == pytest.approx(24 / 25) and first["iou/0"] == pytest.approx(12 / 13)
    assert first["dice/1"] == pytest.approx(6 / 7) and first["iou/1"] == pytest.approx(3 / 4)
    assert first["dice/2"] == 1.0 and first["iou/2"] == 1.0  # reference and prediction empty
    assert [first[f"ref_pixels/{k}"] for k in range(3)] == [12, 4, 0]
    assert [first[f"pred_pixels/{k}"] for k in range(3)] == [13, 3, 0]
    assert first["dice_fg"] == pytest.approx((6 / 7 + 1.0) / 2)
    assert first["miou"] == pytest.approx((12 / 13 + 3 / 4 + 1.0) / 3)
    assert first["fg_share"] == pytest.approx(4 / 16)
    # case 1: class 1 reference non-empty, prediction empty; class 2 reference empty, prediction non-empty.
    assert second["dice/1"] == 0.0 and second["iou/1"] == 0.0
    assert second["dice/2"] == 0.0 and second["iou/2"] == 0.0
    assert second["dice/0"] == pytest.approx(2 * 12 / (15 + 13)) and second["iou/0"] == pytest.approx(12 / 16)
    assert second["dice_fg"] == 0.0 and second["fg_share"] == pytest.approx(1 / 16)
    assert all(not math.isnan(row[f"{m}/{k}"]) for row in (first, second) for m in ("dice", "iou") for k in range(3))


def test_ignored_pixels_count_nowhere_and_a_fully_ignored_case_has_no_fg_share():
    preds, target = _two_cases()
    target[0, 2:, :] = 255          # half of case 0 ignored; the prediction there is class 2
    preds[0, 2:, :] = 2
    target[1] = 255
    _, (first, second) = _rows(preds, target, ignore_index=255)
    assert [first[f"ref_pixels/{k}"] for k in range(3)] == [4, 4, 0]
    assert [first[f"pred_pixels/{k}"] for k in range(3)] == [5, 3, 0]
    assert first["dice/2"] == 1.0 and first["fg_share"] == pytest.approx(0.5)
    assert [second[f"ref_pixels/{k}"] for k in range(3)] == [0, 0, 0] and math.isnan(second["fg_share"])
    assert second["dice/1"] == 1.0 and math.isnan(second["object_recall"])


def test_per_case_pixel_counts_add_up_to_the_split_confusion():
    gen = torch.Generator().manual_seed(3)
    target = torch.randint(0, 4, (5, 12, 12), generator=gen)
    preds = torch.where(torch.rand(5, 12, 12, generator=gen) < 0.6, target, torch.randint(0, 4, (5, 12, 12), generator=gen))
    metric, rows = _rows(preds, target, num_classes=4)
    split = metric.compute()
    for k in range(4):
        ref = sum(r[f"ref_pixels/{k}"] for r in rows)
        pred = sum(r[f"pred_pixels/{k}"] for r in rows)
        tp = sum(r[f"iou/{k}"] * (r[f"ref_pixels/{k}"] + r[f"pred_pixels/{k}"]) / (1 + r[f"iou/{k}"]) for r in rows)
        assert ref == int((target == k).sum()) and pred == int((preds == k).sum())
        assert 2 * tp / (ref + pred) == pytest.approx(split[f"dice/{k}"].item(), abs=1e-12)


def test_object_recall_per_case_and_pooled():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[0, 0, 0] = 1             # three class-1 objects, one class-2 object in case 0
    target[0, 4:6, 4:6] = 1
    target[0, 7, 7] = 1
    target[0, 0, 5:8] = 2
    preds = torch.zeros_like(target)
    preds[0, 5, 5] = 1              # one pixel hits the 2x2 object
    preds[0, 0, 7] = 2
    preds[1, 3, 3] = 1              # case 1: no reference objects at all
    _, (first, second) = _rows(preds, target)
    assert first["object_recall/1"] == pytest.approx(1 / 3) and first["object_recall/2"] == 1.0
    assert first["object_recall"] == pytest.approx(2 / 4)
    assert math.isnan(second["object_recall/1"]) and math.isnan(second["object_recall"])


def _cube(shape=(16, 16, 12), at=(4, 4, 3), size=5) -> torch.Tensor:
    out = torch.zeros(shape, dtype=torch.long)
    out[at[0]:at[0] + size, at[1]:at[1] + size, at[2]:at[2] + size] = 1
    return out


def test_3d_hd95_and_nsd_per_case_equal_monai_and_follow_the_policy():
    spacing = torch.tensor([[1.0, 1.0, 2.0]] * 3)
    target = torch.stack([_cube(), _cube(), torch.zeros(16, 16, 12, dtype=torch.long)])
    preds = torch.stack([_cube(at=(6, 4, 2)), torch.zeros(16, 16, 12, dtype=torch.long),
                         torch.zeros(16, 16, 12, dtype=torch.long)])
    target[0, 12:14, 12:14, 8:10] = 2  # class 2 missed in case 0
    _, rows = _rows(preds, target, surface_tolerance_mm=1.5, spacing=spacing)
    p1, t1 = (preds[:1] == 1).float()[:, None], (target[:1] == 1).float()[:, None]
    hd = compute_hausdorff_distance(p1, t1, include_background=True, percentile=95, spacing=[1.0, 1.0, 2.0])
    nsd = compute_surface_dice(p1, t1, [1.5], include_background=True, spacing=[1.0, 1.0, 2.0])
    assert rows[0]["hd95/1"] == pytest.approx(hd.item()) and rows[0]["nsd/1"] == pytest.approx(nsd.item())
    assert 0 < rows[0]["nsd/1"] < 1 and rows[0]["hd95/1"] > 0
    assert math.isnan(rows[0]["hd95/2"]) and rows[0]["nsd/2"] == 0.0      # reference only
    assert math.isnan(rows[1]["hd95/1"]) and rows[1]["nsd/1"] == 0.0      # prediction empty
    assert math.isnan(rows[2]["hd95/1"]) and rows[2]["nsd/1"] == 1.0      # both empty
    assert "hd95/0" not in rows[0] and "nsd/0" not in rows[0]


def _det(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.int64)}


def _gt(boxes, labels, crowd=None):
    out = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64)}
    if crowd is not None:
        out["iscrowd"] = torch.tensor(crowd, dtype=torch.int64)
    return out


def test_image_ap_recall_fp_by_hand():
    gt = _gt([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1])
    pred = _det([[0, 0, 10, 10], [50, 50, 60, 60], [21, 20, 31, 30]], [0.9, 0.8, 0.7], [1, 1, 1])
    out = image_scores(pred, gt)
    # tp/fp in score order: TP, FP, TP → recall .5, .5, 1; interpolated precision 1 up to recall .5, then 2/3.
    assert out["ap_50"] == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)
    assert out["recall_50"] == 1.0 and out["fp_50"] == 1 and out["n_gt"] == 2 and out["n_pred"] == 3


def test_image_ap_equals_torchmetrics_map50_for_one_image_and_class():
    gen = torch.Generator().manual_seed(0)
    corners = torch.rand(6, 2, generator=gen) * 80
    gt_boxes = torch.cat([corners, corners + 10 + torch.rand(6, 2, generator=gen) * 10], 1)
    pred_boxes = torch.cat([gt_boxes[:5] + torch.randn(5, 4, generator=gen) * 2.5, torch.tensor([[0.0, 0, 5, 5]] * 3)])
    scores = torch.rand(8, generator=gen)
    pred = {"boxes": pred_boxes, "scores": scores, "labels": torch.ones(8, dtype=torch.int64)}
    gt = {"boxes": gt_boxes, "labels": torch.ones(6, dtype=torch.int64)}
    reference = MeanAveragePrecision(box_format="xyxy", iou_type="bbox")
    reference.update([pred], [gt])
    assert image_scores(pred, gt)["ap_50"] == pytest.approx(reference.compute()["map_50"].item(), abs=1e-6)


def test_image_scores_labels_must_match_and_empty_ground_truth_is_undefined():
    gt = _gt([[0, 0, 10, 10]], [2])
    out = image_scores(_det([[0, 0, 10, 10]], [0.9], [1]), gt)
    assert out["ap_50"] == 0.0 and out["recall_50"] == 0.0 and out["fp_50"] == 1
    empty = image_scores(_det([[0, 0, 10, 10], [5, 5, 9, 9]], [0.9, 0.3], [1, 1]), _gt([], []))
    assert math.isnan(empty["ap_50"]) and math.isnan(empty["recall_50"])
    assert empty["fp_50"] == 1 and empty["n_gt"] == 0 and empty["n_pred"] == 2  # the 0.3 detection is below 0.5


def test_detection_on_a_crowd_region_is_neither_true_nor_false_positive():
    gt = _gt([[0, 0, 10, 10], [40, 40, 80, 80]], [1, 1], crowd=[0, 1])
    pred = _det([[0, 0, 10, 10], [45, 45, 55, 55]], [0.9, 0.95], [1, 1])  # the second lies inside the crowd box
    out = image_scores(pred, gt)
    assert out["n_gt"] == 1 and out["fp_50"] == 0 and out["ap_50"] == 1.0 and out["recall_50"] == 1.0


def test_case_rows_gathered_from_two_ranks_are_in_loader_order_without_padding():
    # 5 cases over 2 ranks: rank 0 gets positions 0, 2, 4; rank 1 gets 1, 3 and a padding repeat of 0.
    ranks = [CaseRows("test"), CaseRows("test")]
    ranks[0].add(["a", "c"], [{"x": 0.0}, {"x": 2.0}])
    ranks[0].add(["e"], [{"x": 4.0}])
    ranks[1].add(["b", "d", "a"], [{"x": 1.0}, {"x": 3.0}, {"x": 0.0}])
    parts = [r._local for r in ranks]
    for rows in ranks:
        rows.finish(dataset_size=5, gather=lambda local: parts)
    assert ranks[0].rows == ranks[1].rows
    assert [(r["case"], r["index"], r["x"]) for r in ranks[0].rows] == \
        [("a", 0, 0.0), ("b", 1, 1.0), ("c", 2, 2.0), ("d", 3, 3.0), ("e", 4, 4.0)]


def test_case_rows_without_ids_are_named_by_split_and_position_and_duplicates_stay_apart():
    rows = CaseRows("val")
    rows.add(None, [{"x": 1.0}, {"x": 2.0}])
    assert [r["case"] for r in rows.finish(gather=lambda local: [local])] == ["val_0", "val_1"]
    rows.reset()
    rows.add(["img", "img", "other"], [{}, {}, {}])
    assert [r["case"] for r in rows.finish(gather=lambda local: [local])] == ["img#0", "img#1", "other"]
    with pytest.raises(ValueError, match="2 case ids for 1 cases"):
        rows.add(["a", "b"], [{}])


def test_per_case_scores_are_vectorised_fast_enough():
    # 16 cases of 256x256 with 6 classes: the per-case part must cost little next to the split metrics.
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 6, (16, 256, 256), generator=gen)
    preds = torch.randint(0, 6, (16, 256, 256), generator=gen)
    started = time.perf_counter()
    ref, pred, tp = case_confusion(preds, target, 6, None)
    elapsed = time.perf_counter() - started
    assert ref.shape == (16, 6) and np.array_equal(ref.sum(1), np.full(16, 256 * 256))
    assert elapsed < 3.0  # a Python loop per pixel takes well over 10 s here
