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
buckets ``lt16``, ``16-64``, ``ge64``, named by :func:`metrics.names.bucket_names`). Pixel metrics hide
missed tiny objects; these do not.
For 3-D label maps the same holds in voxels (26-connected components).

With ``surface_tolerance_mm`` set, 3-D label maps also get ``hd95``/``hd95/<k>`` (mm) and
``nsd``/``nsd/<k>`` from :class:`~metrics.surface.SurfaceMetrics`, using each volume's spacing.

``SegmentationMetrics.update`` also returns the batch's per-case scores (:class:`CaseScores`, the rows of
the per-case file, docs/contracts.md "Per-case files"), computed from the same connected components and
surface distances plus one per-case confusion ``bincount``; the split's numbers above do not change.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix

from metrics.names import bucket_names
from metrics.surface import SurfaceMetrics


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
        """``preds`` and ``target``: integer label maps of shape (N, *S) with 1–3 spatial dims. The
        batch's per-image ``(hits, totals)``, each ``(N, num_classes, buckets)``, stay in
        ``batch_counts`` until the next update (torchmetrics drops what ``update`` returns)."""
        if preds.shape != target.shape:
            raise ValueError(f"ObjectRecall: preds shape {tuple(preds.shape)} != target shape {tuple(target.shape)}")
        preds_np = preds.detach().cpu().numpy()
        target_np = target.detach().cpu().numpy()
        structure = ndimage.generate_binary_structure(target_np.ndim - 1, target_np.ndim - 1)
        hits = np.zeros((len(target_np), *self.hits.shape), dtype=np.int64)
        totals = np.zeros((len(target_np), *self.totals.shape), dtype=np.int64)
        for n, (pred_img, target_img) in enumerate(zip(preds_np, target_np)):
            for k in np.unique(target_img):
                if k == 0 or k == self.ignore_index or not 0 < k < self.num_classes:
                    continue
                components, count = ndimage.label(target_img == k, structure=structure)
                areas = np.bincount(components.ravel(), minlength=count + 1)[1:]
                hit_ids = np.unique(components[(pred_img == k) & (components > 0)])
                hit = np.zeros(count, dtype=bool)
                hit[hit_ids - 1] = True
                buckets = np.searchsorted(self.bucket_edges, areas, side="right")
                totals[n, k] += np.bincount(buckets, minlength=len(self.bucket_labels))
                hits[n, k] += np.bincount(buckets[hit], minlength=len(self.bucket_labels))
        self.hits += torch.from_numpy(hits.sum(0)).to(self.hits.device)
        self.totals += torch.from_numpy(totals.sum(0)).to(self.totals.device)
        self.batch_counts = hits, totals

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
        self.ignore_index = ignore_index
        self.confusion = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index, validate_args=False)
        self.objects = ObjectRecall(num_classes, small_object_buckets, ignore_index)
        self.surface = None if surface_tolerance_mm is None else \
            SurfaceMetrics(num_classes, surface_tolerance_mm, ignore_index)

    def update(self, preds: Tensor, target: Tensor, spacing: Tensor | None = None) -> CaseScores:
        """Adds the batch to the split's totals and returns its per-case scores. ``spacing`` ``(N, 3)``
        mm: used by the surface metrics of 3-D maps (``None``: 1 mm)."""
        self.confusion.update(preds, target)
        self.objects.update(preds, target)
        hits, totals = self.objects.batch_counts
        surface = None
        if self.surface is not None and target.ndim == 4:
            self.surface.update(preds, target, spacing)
            surface = self.surface.batch_cases
        ref, pred, tp = case_confusion(preds, target, self.num_classes, self.ignore_index)
        return CaseScores(ref, pred, tp, hits.sum(2), totals.sum(2), *(surface or (None, None)))

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


def case_confusion(preds: Tensor, target: Tensor, num_classes: int, ignore_index: int | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per case and class: reference pixels, predicted pixels and true positives, each ``(N, C)`` int64,
    from one ``bincount`` over the batch; pixels whose reference is ``ignore_index`` count nowhere."""
    n = preds.shape[0]
    preds, target = preds.reshape(n, -1).long(), target.reshape(n, -1).long()
    valid = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        valid &= target != ignore_index
    case = torch.arange(n, device=target.device).view(n, 1).expand_as(target)
    index = (case * num_classes + target) * num_classes + preds.clamp(0, num_classes - 1)
    cm = torch.bincount(index[valid], minlength=n * num_classes**2).view(n, num_classes, num_classes).cpu()
    return cm.sum(2).numpy(), cm.sum(1).numpy(), cm.diagonal(dim1=1, dim2=2).numpy()


class CaseScores:
    """Per-case scores of one batch, under the empty-reference policy (Metrics Reloaded, Maier-Hein et
    al. 2024; docs/contracts.md, "Per-case files"): for class ``k`` of a case, reference and prediction
    both empty → Dice = IoU = 1 (a correct "nothing here"); exactly one empty → Dice = IoU = 0. So
    Dice and IoU are always defined. Object recall is undefined (NaN) in a case without reference
    components; HD95 is undefined unless both masks hold class ``k`` (NSD: 1 both empty, 0 one empty).

    ``ref``, ``pred``, ``tp``: ``(N, C)`` pixel counts; ``hits``, ``totals``: ``(N, C)`` reference
    components hit / present; ``hd95``, ``nsd``: ``(N, C-1)`` per foreground class, or None.
    """

    def __init__(self, ref: np.ndarray, pred: np.ndarray, tp: np.ndarray, hits: np.ndarray, totals: np.ndarray,
                 hd95: np.ndarray | None = None, nsd: np.ndarray | None = None) -> None:
        self.ref, self.pred, self.tp, self.hits, self.totals = ref, pred, tp, hits, totals
        self.hd95, self.nsd = hd95, nsd

    def __len__(self) -> int:
        return len(self.ref)

    def columns(self) -> dict[str, np.ndarray]:
        """Column name → ``(N,)`` values (NaN: undefined), in the order of the per-case file."""
        ref, pred, tp = (a.astype(np.float64) for a in (self.ref, self.pred, self.tp))
        both_empty = (ref == 0) & (pred == 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            dice = np.where(both_empty, 1.0, 2 * tp / (ref + pred))
            iou = np.where(both_empty, 1.0, tp / (ref + pred - tp))
            recall = self.hits / np.where(self.totals > 0, self.totals, np.nan)
            pooled = self.hits[:, 1:].sum(1) / np.where(self.totals[:, 1:].sum(1) > 0, self.totals[:, 1:].sum(1), np.nan)
            labelled = ref.sum(1)
            fg_share = ref[:, 1:].sum(1) / np.where(labelled > 0, labelled, np.nan)
        classes = range(ref.shape[1])
        out: dict[str, np.ndarray] = {}
        for name, values in (("dice", dice), ("iou", iou), ("ref_pixels", self.ref), ("pred_pixels", self.pred)):
            out.update({f"{name}/{k}": values[:, k] for k in classes})
        out.update({f"object_recall/{k}": recall[:, k] for k in classes[1:]})
        for name, values in (("hd95", self.hd95), ("nsd", self.nsd)):
            if values is not None:
                out.update({f"{name}/{k}": values[:, k - 1] for k in classes[1:]})
        out.update({"dice_fg": dice[:, 1:].mean(1), "miou": iou.mean(1), "fg_share": fg_share, "object_recall": pooled})
        return out

    def rows(self) -> list[dict[str, float]]:
        """One ``{column: value}`` dict per case (pixel counts as ints, undefined as NaN)."""
        columns = self.columns()
        return [{name: values[n].item() for name, values in columns.items()} for n in range(len(self))]
