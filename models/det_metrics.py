"""COCO box metrics for detection, under the contract's keys (docs/contracts.md, "metrics.json").

``map`` (AP averaged over IoU 0.50:0.05:0.95), ``map_50``, ``map_75``, ``map_small`` /
``map_medium`` / ``map_large`` (COCO area buckets: < 32², 32²–96², > 96² px² box area),
``mar_100`` (recall at 100 detections per image) and ``ap/<k>`` per class. ``k`` is the 0-based
index into the datamodule's ``class_names``, i.e. label ``k + 1`` (labels start at 1, see
docs/architecture.md), so reports name a class as ``class_names[k]`` for every task.

A value without ground truth (no object in an area bucket, a class absent from the split) is NaN
(``null`` in metrics.json) instead of COCO's -1, as for segmentation, so means over runs skip it.
"""
from __future__ import annotations

import importlib.util
import logging

import torch
from torch import Tensor, nn
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
        self.map = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, backend=self.backend)

    def update(self, preds: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]) -> None:
        self.map.update(
            [{key: p[key].detach() for key in ("boxes", "scores", "labels")} for p in preds],
            [{key: t[key] for key in ("boxes", "labels", "iscrowd") if key in t} for t in targets],
        )

    def compute(self) -> dict[str, Tensor]:
        result = self.map.compute()
        values = {key: _missing_as_nan(result[key]) for key in SUMMARY_KEYS}
        per_class = torch.full((self.num_classes,), float("nan"))
        classes = result["classes"].reshape(-1).long()
        known = (classes >= 1) & (classes <= self.num_classes)
        per_class[classes[known] - 1] = result["map_per_class"].reshape(-1).float()[known]
        values.update({f"ap/{k}": _missing_as_nan(per_class[k]) for k in range(self.num_classes)})
        return values

    def reset(self) -> None:
        self.map.reset()


def _missing_as_nan(value: Tensor) -> Tensor:
    value = value.float().reshape(())
    return torch.where(value < 0, torch.full_like(value, float("nan")), value)
