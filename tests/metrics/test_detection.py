"""DetectionMetrics' keys: ``ap50/<k>`` checked against COCO's own per-class AP with IoU 0.5 only."""
from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.detection import MeanAveragePrecision

from metrics.detection import DetectionMetrics


def _random_split(generator: torch.Generator, images: int, classes: int) -> tuple[list, list]:
    preds, targets = [], []
    for _ in range(images):
        n = int(torch.randint(0, 6, (1,), generator=generator))
        xy = torch.rand(n, 2, generator=generator) * 80
        wh = 4 + torch.rand(n, 2, generator=generator) * 20
        boxes = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(1, classes + 1, (n,), generator=generator)
        targets.append({"boxes": boxes, "labels": labels})
        # detections: jittered copies of some ground truth (some wrong class) plus random false positives
        keep = torch.rand(n, generator=generator) < 0.7
        jitter = boxes[keep] + torch.randn(int(keep.sum()), 4, generator=generator) * 3
        flip = torch.rand(int(keep.sum()), generator=generator) < 0.2
        det_labels = torch.where(flip, torch.randint(1, classes + 1, flip.shape, generator=generator), labels[keep])
        m = int(torch.randint(0, 3, (1,), generator=generator))
        fp_xy = torch.rand(m, 2, generator=generator) * 80
        fp = torch.cat([fp_xy, fp_xy + 10], 1)
        preds.append({"boxes": torch.cat([jitter, fp]), "scores": torch.rand(len(jitter) + m, generator=generator),
                      "labels": torch.cat([det_labels, torch.randint(1, classes + 1, (m,), generator=generator)])})
    return preds, targets


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
@pytest.mark.parametrize("seed", range(6))
def test_ap50_per_class_equals_coco_at_iou_half(backend: str, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    classes = 4
    preds, targets = _random_split(generator, images=12, classes=classes)
    metrics = DetectionMetrics(classes, backend)
    metrics.update(preds, targets)
    values = metrics.compute()
    reference = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, backend=backend,
                                     iou_thresholds=[0.5])
    reference.update(preds, targets)
    result = reference.compute()
    expected = {int(c) - 1: float(v) for c, v in zip(result["classes"].reshape(-1), result["map_per_class"].reshape(-1))}
    for k in range(classes):
        got = float(values[f"ap50/{k}"])
        want = expected.get(k, -1.0)
        if want < 0:
            assert math.isnan(got), (k, got)
        else:
            assert got == pytest.approx(want, abs=1e-6), (k, got, want)
    # map_50 is the mean of the defined per-class AP50 terms
    defined = [float(values[f"ap50/{k}"]) for k in range(classes) if not math.isnan(float(values[f"ap50/{k}"]))]
    assert float(values["map_50"]) == pytest.approx(sum(defined) / len(defined), abs=1e-6)


def test_ap50_of_a_class_without_ground_truth_is_nan_and_others_exact() -> None:
    metrics = DetectionMetrics(3, "faster_coco_eval")
    preds = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]]),
              "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([1, 2, 2])}]
    targets = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 31, 30], [70, 70, 80, 80]]),
                "labels": torch.tensor([1, 2, 2])}]
    metrics.update(preds, targets)
    values = metrics.compute()
    assert float(values["ap50/0"]) == pytest.approx(1.0)
    # class 2: one of two boxes found by the top detection -> precision 1 up to recall 0.5: 51 of 101 points
    assert float(values["ap50/1"]) == pytest.approx(51 / 101)
    assert math.isnan(float(values["ap50/2"]))
