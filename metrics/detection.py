"""COCO box metrics for detection, under the contract's keys (docs/contracts.md, "metrics.json").

``map`` (AP averaged over IoU 0.50:0.05:0.95), ``map_50``, ``map_75``, ``map_small`` /
``map_medium`` / ``map_large`` (COCO area buckets: < 32², 32²–96², > 96² px² box area),
``mar_100`` (recall at 100 detections per image), ``ap/<k>`` per class (IoU 0.50:0.95) and ``ap50/<k>``
per class at IoU 0.5 (COCO's precision table read at the first threshold: all areas, 100 detections,
the same 101-point interpolation as ``map_50``, of which it is the per-class term). ``k`` is the 0-based
index into the datamodule's ``class_names``, i.e. label ``k + 1`` (labels start at 1, see
docs/architecture.md), so reports name a class as ``class_names[k]`` for every task.

A value without ground truth (no object in an area bucket, a class absent from the split) is NaN
(``null`` in metrics.json) instead of COCO's -1, as for segmentation, so means over runs skip it.

Per image (the per-case file, docs/contracts.md "Per-case files"), :func:`image_scores` matches as
COCO does at IoU 0.5 and pools all classes into one precision/recall curve: ``ap_50``, ``recall_50``,
``fp_50``, ``n_gt``, ``n_pred``.
"""
from __future__ import annotations

import importlib.util
import logging

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import box_iou
from torchmetrics.detection import MeanAveragePrecision

# faster_coco_eval logs the whole COCO summary table at INFO on every compute(); the numbers are
# logged as metrics already.
logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)

BACKENDS = ("auto", "faster_coco_eval", "pycocotools")
SUMMARY_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")


def resolve_backend(backend: str) -> str:
    """``auto`` picks faster_coco_eval (same numbers, about 4x faster here) when it is installed."""
    if backend not in BACKENDS:
        raise ValueError(f"detection metrics: backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    return "faster_coco_eval" if importlib.util.find_spec("faster_coco_eval") is not None else "pycocotools"


class DetectionMetrics(nn.Module):
    """Accumulates predictions and targets of one split; ``compute()`` returns the contract's keys.

    ``update(preds, targets)`` takes torchvision's detection formats: ``preds`` a list of dicts
    with ``boxes`` (K, 4) xyxy absolute, ``scores`` (K,), ``labels`` (K,) in ``[1, num_classes]``;
    ``targets`` a list of dicts with ``boxes``, ``labels`` and optionally ``iscrowd`` (crowd regions:
    COCO matches detections on them without counting true or false positives).
    """

    def __init__(self, num_classes: int, backend: str = "auto") -> None:
        super().__init__()
        if not num_classes >= 1:
            raise ValueError(f"detection metrics: num_classes must be >= 1 (foreground classes), got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.backend = resolve_backend(backend)
        self.map = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, backend=self.backend,
                                        extended_summary=True)

    def update(self, preds: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]) -> list[dict[str, float]]:
        """Adds the batch to the split's totals; returns its per-image :func:`image_scores`."""
        self.map.update(
            [{key: p[key].detach() for key in ("boxes", "scores", "labels")} for p in preds],
            [{key: t[key] for key in ("boxes", "labels", "iscrowd") if key in t} for t in targets],
        )
        return [image_scores(p, t) for p, t in zip(preds, targets)]

    def compute(self) -> dict[str, Tensor]:
        result = self.map.compute()
        values = {key: _missing_as_nan(result[key]) for key in SUMMARY_KEYS}
        classes = result["classes"].reshape(-1).long()
        for name, scores in (("ap", result["map_per_class"].reshape(-1)), ("ap50", _ap50_per_class(result))):
            per_class = torch.full((self.num_classes,), float("nan"))
            known = (classes >= 1) & (classes <= self.num_classes) & (torch.arange(len(classes)) < len(scores))
            per_class[classes[known] - 1] = scores.float()[known]
            values.update({f"{name}/{k}": _missing_as_nan(per_class[k]) for k in range(self.num_classes)})
        return values

    def reset(self) -> None:
        self.map.reset()


def _ap50_per_class(result: dict[str, Tensor]) -> Tensor:
    """AP at IoU 0.5 per class of ``result["classes"]`` from the extended summary's precision table
    ``(IoU thresholds, 101 recall points, classes, area ranges, max detections)``: COCO's mean over the
    recall points of the first threshold (0.5), area ``all``, the last max-detections setting (100);
    -1 (no ground truth) where every entry is -1, as COCO does."""
    precision = result.get("precision")
    if not isinstance(precision, Tensor) or precision.ndim != 5:
        return torch.empty(0)
    table = precision[0, :, :, 0, -1].double()  # (recall points, classes)
    defined = table > -1
    mean = torch.where(defined, table, torch.zeros_like(table)).sum(0) / defined.sum(0).clamp(min=1)
    return torch.where(defined.any(0), mean, torch.full_like(mean, -1.0)).float()


def _missing_as_nan(value: Tensor) -> Tensor:
    value = value.float().reshape(())
    return torch.where(value < 0, torch.full_like(value, float("nan")), value)


IOU_50 = 0.5
MAX_DETECTIONS = 100  # COCO's maxDets for AP and recall
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO's 101-point interpolation


def image_scores(pred: dict[str, Tensor], target: dict[str, Tensor]) -> dict[str, float]:
    """One image's detection scores at IoU 0.5, all classes pooled.

    Matching as COCO's evaluation: the ``MAX_DETECTIONS`` highest-scoring detections, in descending
    score, each take the still unmatched ground-truth box of their label with the highest IoU ≥ 0.5;
    a detection that only overlaps a crowd box (``iscrowd``; overlap = intersection / detection area)
    is ignored, neither true nor false positive. Returns ``n_gt`` (non-crowd boxes), ``n_pred`` (all
    detections), ``ap_50`` (area under the pooled precision/recall curve, COCO 101-point
    interpolation), ``recall_50`` (share of ground-truth boxes matched), ``fp_50`` (detections with
    score ≥ 0.5 matching nothing). ``ap_50`` and ``recall_50`` are NaN (undefined) when ``n_gt`` = 0.
    """
    scores = pred["scores"].detach().float().cpu()
    order = torch.argsort(scores, descending=True, stable=True)[:MAX_DETECTIONS]
    det_boxes = pred["boxes"].detach().float().cpu()[order]
    det_labels, det_scores = pred["labels"].detach().cpu()[order], scores[order]
    gt_boxes, gt_labels = target["boxes"].float().cpu(), target["labels"].cpu()
    crowd = target["iscrowd"].cpu().bool().numpy() if "iscrowd" in target else np.zeros(len(gt_labels), dtype=bool)
    iou = box_iou(det_boxes, gt_boxes).numpy()
    if crowd.any():
        iou[:, crowd] = _intersection_over_detection(det_boxes, gt_boxes[torch.from_numpy(crowd)])
    same_label = (det_labels[:, None] == gt_labels[None, :]).numpy()
    taken = np.zeros(len(gt_labels), dtype=bool)
    outcome = np.zeros(len(order), dtype=np.int8)  # 1 true positive, 0 false positive, -1 ignored (crowd)
    for d in range(len(order)):
        candidates = same_label[d] & (iou[d] >= IOU_50) & ~taken  # a crowd region is never taken
        if not candidates.any():
            continue
        real = candidates & ~crowd
        pool = real if real.any() else candidates
        g = int(np.argmax(np.where(pool, iou[d], -1.0)))
        if crowd[g]:
            outcome[d] = -1
        else:
            taken[g] = True
            outcome[d] = 1
    n_gt = int((~crowd).sum())
    counted = outcome >= 0
    tp = np.cumsum(outcome[counted] == 1)
    fp = np.cumsum(outcome[counted] == 0)
    fp_50 = int(((outcome == 0) & (det_scores.numpy() >= 0.5)).sum())
    if n_gt == 0:
        return {"n_gt": 0, "n_pred": len(scores), "ap_50": float("nan"), "recall_50": float("nan"), "fp_50": fp_50}
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1)
    # COCO: precision made non-increasing from the right, read at the first point reaching each recall
    # level; a level never reached scores 0 (the appended entry).
    envelope = np.append(np.maximum.accumulate(precision[::-1])[::-1], 0.0)
    ap = envelope[np.searchsorted(recall, RECALL_POINTS, side="left")].mean()
    return {"n_gt": n_gt, "n_pred": len(scores), "ap_50": float(ap),
            "recall_50": float(taken.sum() / n_gt), "fp_50": fp_50}


def _intersection_over_detection(det: Tensor, crowd: Tensor) -> np.ndarray:
    """COCO's overlap with a crowd region: intersection / detection area, ``(D, G)``."""
    low = torch.max(det[:, None, :2], crowd[None, :, :2])
    high = torch.min(det[:, None, 2:], crowd[None, :, 2:])
    inter = (high - low).clamp(min=0).prod(-1)
    area = (det[:, 2:] - det[:, :2]).clamp(min=0).prod(-1)
    return (inter / area.clamp(min=1e-12)[:, None]).numpy()
