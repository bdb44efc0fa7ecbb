"""Segmentation metrics behind the contract keys (docs/contracts.md, "metrics.json"), synced across DDP ranks.

Pixel metrics come from one torchmetrics confusion matrix: ``iou/<k> = TP/(TP+FP+FN)``,
``dice/<k> = 2TP/(2TP+FP+FN)``, ``miou`` = mean IoU over all classes, ``dice_fg`` = mean Dice over
the foreground classes (1..C-1), ``pixel_acc`` = correct / labelled pixels. A class absent from both
prediction and target over the whole evaluation set has an undefined score: it is reported as NaN
(``null`` in metrics.json) and left out of the means. Pixels equal to ``ignore_index`` count nowhere.

Object metrics (:class:`ObjectRecall`) count ground-truth connected components: a component of class
``k`` is *hit* when the prediction labels at least one of its pixels ``k``. ``object_recall`` is the
share of all foreground components hit, ``object_recall/<k>`` the share per class, and
``small_recall/<bucket>`` the share per object-area bucket (edges in pixels, e.g. ``(16, 64)`` gives
buckets ``lt16``, ``16-64``, ``ge64``). Pixel metrics hide missed tiny objects; these do not.
For 3-D label maps the same holds in voxels (26-connected components).

With ``surface_tolerance_mm`` set, 3-D label maps also get ``hd95``/``hd95/<k>`` (mm) and
``nsd``/``nsd/<k>`` from :class:`~models.surface_metrics.SurfaceMetrics`, using each volume's spacing.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix

from models.surface_metrics import SurfaceMetrics


def bucket_names(edges: Sequence[int]) -> list[str]:
    """Names of the area buckets cut at ``edges``: (16, 64) → ['lt16', '16-64', 'ge64']."""
    edges = list(edges)
    if any(b <= a for a, b in zip(edges, edges[1:])) or any(e <= 0 for e in edges):
        raise ValueError(f"small_object_buckets must be increasing positive pixel areas, got {edges}")
    names = [f"lt{edges[0]}"] if edges else []
    names += [f"{a}-{b}" for a, b in zip(edges, edges[1:])]
    names += [f"ge{edges[-1]}"] if edges else ["all"]
    return names


class ObjectRecall(Metric):
    """Share of ground-truth connected components (per foreground class) that the prediction overlaps."""

    full_state_update = False

    def __init__(self, num_classes: int, bucket_edges: Sequence[int] = (16, 64), ignore_index: int | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.bucket_edges = list(bucket_edges)
        self.bucket_labels = bucket_names(self.bucket_edges)
        self.ignore_index = ignore_index
        shape = (num_classes, len(self.bucket_labels))
        self.add_state("hits", default=torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("totals", default=torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """``preds`` and ``target``: integer label maps of shape (N, *S) with 1–3 spatial dims."""
        if preds.shape != target.shape:
            raise ValueError(f"ObjectRecall: preds shape {tuple(preds.shape)} != target shape {tuple(target.shape)}")
        preds_np = preds.detach().cpu().numpy()
        target_np = target.detach().cpu().numpy()
        structure = ndimage.generate_binary_structure(target_np.ndim - 1, target_np.ndim - 1)
        hits = np.zeros(self.hits.shape, dtype=np.int64)
        totals = np.zeros(self.totals.shape, dtype=np.int64)
        for pred_img, target_img in zip(preds_np, target_np):
            for k in np.unique(target_img):
                if k == 0 or k == self.ignore_index or not 0 < k < self.num_classes:
                    continue
                components, count = ndimage.label(target_img == k, structure=structure)
                areas = np.bincount(components.ravel(), minlength=count + 1)[1:]
                hit_ids = np.unique(components[(pred_img == k) & (components > 0)])
                hit = np.zeros(count, dtype=bool)
                hit[hit_ids - 1] = True
                buckets = np.searchsorted(self.bucket_edges, areas, side="right")
                totals[k] += np.bincount(buckets, minlength=len(self.bucket_labels))
                hits[k] += np.bincount(buckets[hit], minlength=len(self.bucket_labels))
        self.hits += torch.from_numpy(hits).to(self.hits.device)
        self.totals += torch.from_numpy(totals).to(self.totals.device)

    def compute(self) -> dict[str, Tensor]:
        hits, totals = self.hits.double(), self.totals.double()
        out = {"object_recall": hits.sum() / totals.sum()}
        for k in range(1, self.num_classes):
            out[f"object_recall/{k}"] = hits[k].sum() / totals[k].sum()
        per_bucket = hits.sum(0) / totals.sum(0)
        for name, value in zip(self.bucket_labels, per_bucket):
            out[f"small_recall/{name}"] = value
        return out


class SegmentationMetrics(torch.nn.Module):
    """All segmentation metrics of one split; ``compute()`` returns the contract keys without prefix."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, small_object_buckets: Sequence[int] = (16, 64),
                 surface_tolerance_mm: float | None = None):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"SegmentationMetrics: num_classes must be >= 2 (binary counts 2), got {num_classes}")
        self.num_classes = num_classes
        self.confusion = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index, validate_args=False)
        self.objects = ObjectRecall(num_classes, small_object_buckets, ignore_index)
        self.surface = None if surface_tolerance_mm is None else \
            SurfaceMetrics(num_classes, surface_tolerance_mm, ignore_index)

    def update(self, preds: Tensor, target: Tensor, spacing: Tensor | None = None) -> None:
        """``spacing`` ``(N, 3)`` mm: used by the surface metrics of 3-D maps (``None``: 1 mm)."""
        self.confusion.update(preds, target)
        self.objects.update(preds, target)
        if self.surface is not None and target.ndim == 4:
            self.surface.update(preds, target, spacing)

    def compute(self) -> dict[str, Tensor]:
        cm = self.confusion.compute().double()
        tp = cm.diag()
        fp = cm.sum(0) - tp
        fn = cm.sum(1) - tp
        iou = tp / (tp + fp + fn)
        dice = 2 * tp / (2 * tp + fp + fn)
        out = {
            "miou": iou.nanmean(),
            "dice_fg": dice[1:].nanmean(),
            "pixel_acc": tp.sum() / cm.sum(),
        }
        out.update({f"iou/{k}": iou[k] for k in range(self.num_classes)})
        out.update({f"dice/{k}": dice[k] for k in range(self.num_classes)})
        out.update(self.objects.compute())
        if self.surface is not None and self.surface.update_count:
            out.update(self.surface.compute())
        return out

    def reset(self) -> None:
        self.confusion.reset()
        self.objects.reset()
        if self.surface is not None:
            self.surface.reset()
