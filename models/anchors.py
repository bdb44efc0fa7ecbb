"""Anchors fitted to a data set's boxes (``anchor_sizes: auto``), and how well anchors cover boxes.

The fit, per FPN level (strides ``s_0 < s_1 < …``, finest first):

1. Each training box goes to a level by its scale ``√(w·h)``: level ``l`` takes scales in
   ``[3·s_l, 3·s_{l+1})`` (the finest level everything below, the coarsest everything above). An
   anchor of 3 strides still overlaps a box of its own shape with IoU ≥ 0.5 wherever the box centre
   falls between grid points, so boxes are not pushed onto levels whose grid is too coarse for them.
2. A level's ``per_level`` sizes are the quantiles ``(j + ½) / per_level`` of its boxes' scales
   (YOLO's autoanchor uses k-means; for one-dimensional scales quantiles are what k-means converges
   to without its seeding randomness). A level with fewer than ``per_level`` boxes keeps the
   geometric default ``3·s_l · 2^(j/per_level)``.

The fit is a deterministic function of the boxes, so every run on the same training split gets the
same anchors. :func:`matched_share` is the quality report: the share of boxes for which some anchor
at its nearest grid position overlaps at IoU ≥ ``iou`` (RetinaNet's foreground threshold; torchvision's
matcher still gives every box its best anchor, but below 0.5 that anchor is a poor start).

FCOS has one point per location and takes each box on one level by its largest centre distance
``max(l, t, r, b)``; :func:`fit_fcos` derives from the same level assignment the per-level size
ranges (contiguous, in that distance) and the centre-sampling radius.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

LEVEL_SCALE = 3.0  # an anchor's smallest size in strides (see the module docstring)


def level_strides(returned_layers: Sequence[int]) -> list[int]:
    """Strides of the FPN levels of ``models.det_heads.small_object_backbone``: ResNet layer k has
    stride 2^(k+1); one max-pooled level follows the last."""
    strides = [2 ** (int(k) + 1) for k in sorted(set(returned_layers))]
    return strides + [2 * strides[-1]]


def assign_levels(scales: np.ndarray, strides: Sequence[int]) -> np.ndarray:
    """The level index of each box scale (see the module docstring, step 1)."""
    bounds = LEVEL_SCALE * np.asarray(strides[1:], dtype=np.float64)
    return np.searchsorted(bounds, scales, side="right")


@dataclass(frozen=True)
class AnchorFit:
    """Fitted sizes (px, one tuple per level), the boxes per level and the matched share."""

    sizes: list[list[float]]
    boxes_per_level: list[int]
    matched_share: float
    strides: list[int] = field(default_factory=list)

    def record(self) -> dict:
        return {"sizes": self.sizes, "strides": self.strides, "boxes_per_level": self.boxes_per_level,
                "matched_share_iou50": round(self.matched_share, 4)}


def fit_anchor_sizes(
    boxes: np.ndarray, strides: Sequence[int], per_level: int = 2, aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)
) -> AnchorFit:
    """Anchor sizes per level for ``boxes`` ((N, 4) xyxy px, network pixels); see the module docstring."""
    if per_level < 1:
        raise ValueError(f"anchors: per_level must be >= 1, got {per_level!r}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scales = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1))
    levels = assign_levels(scales, strides)
    sizes, counts = [], []
    for level, stride in enumerate(strides):
        own = scales[levels == level]
        counts.append(int(len(own)))
        if len(own) >= per_level:
            level_sizes = np.quantile(own, (np.arange(per_level) + 0.5) / per_level)
        else:
            level_sizes = LEVEL_SCALE * stride * 2.0 ** (np.arange(per_level) / per_level)
        sizes.append([round(float(s), 1) for s in level_sizes])
    share = matched_share(boxes, sizes, strides, aspect_ratios)
    return AnchorFit(sizes, counts, share, list(strides))


def anchor_shapes(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
    """(A, 2) anchor widths and heights as torchvision's ``AnchorGenerator`` makes them (h/w = ratio)."""
    out = []
    for ratio in aspect_ratios:
        for size in sizes:
            h_ratio = np.sqrt(ratio)
            out.append((size / h_ratio, size * h_ratio))
    return np.asarray(out, dtype=np.float64)


def matched_share(
    boxes: np.ndarray, sizes: Sequence[Sequence[float]], strides: Sequence[int],
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0), iou: float = 0.5,
) -> float:
    """Share of ``boxes`` whose best anchor (any level, any shape, at the grid point nearest the box
    centre: torchvision puts anchor centres at multiples of the stride) has IoU ≥ ``iou``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return float("nan")
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    best = np.zeros(len(boxes))
    for level_sizes, stride in zip(sizes, strides):
        grid = np.round(centre / stride) * stride
        for w, h in anchor_shapes(level_sizes, aspect_ratios):
            anchor = np.concatenate([grid - (w / 2, h / 2), grid + (w / 2, h / 2)], axis=1)
            best = np.maximum(best, _iou(boxes, anchor))
    return float(np.mean(best >= iou))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (N, 4) xyxy arrays."""
    inter = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None).prod(axis=1)
    union = (a[:, 2:] - a[:, :2]).prod(axis=1) + (b[:, 2:] - b[:, :2]).prod(axis=1) - inter
    return inter / np.maximum(union, 1e-9)


@dataclass(frozen=True)
class FCOSFit:
    """FCOS's per-level point sizes (px), centre-sampling radius (in sizes) and coverage."""

    sizes: list[float]
    center_sampling_radius: float
    boxes_per_level: list[int]
    positive_share: float
    strides: list[int] = field(default_factory=list)

    def record(self) -> dict:
        return {"sizes": self.sizes, "strides": self.strides, "center_sampling_radius": self.center_sampling_radius,
                "boxes_per_level": self.boxes_per_level, "share_with_positive_point": round(self.positive_share, 4)}


FCOS_RADII_IN_STRIDES = (1.5, 2.0, 2.5, 3.0)


def fit_fcos(boxes: np.ndarray, strides: Sequence[int], min_share: float = 0.99) -> FCOSFit:
    """FCOS point sizes and centre-sampling radius for ``boxes`` ((N, 4) xyxy, network pixels).

    torchvision's FCOS gives a level with point size ``s`` the boxes whose largest centre distance
    ``max(l, t, r, b)`` lies in ``[4s, 8s)`` (the finest level from 0, the coarsest without a top):
    ``s_l = 3·s_{l+1} / 16`` (``s`` the strides) puts the level boundaries at box scales ``3·stride``
    — the same level assignment as the RetinaNet fit. The radius (in point sizes) is the smallest
    of 1.5, 2, 2.5, 3 strides that gives at least ``min_share`` of the boxes a positive point (a
    grid point within the radius of the box centre and inside the box).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sizes = [LEVEL_SCALE * stride / 8.0 for stride in strides]  # 3·s_{l+1}/16 with s_{l+1} = 2·s_l
    half = np.max(boxes[:, 2:] - boxes[:, :2], axis=1) / 2
    bounds = 8.0 * np.asarray(sizes[:-1])
    levels = np.searchsorted(bounds, half, side="right")
    counts = [int(np.sum(levels == level)) for level in range(len(strides))]
    share, radius_strides = 0.0, FCOS_RADII_IN_STRIDES[-1]
    for radius_strides in FCOS_RADII_IN_STRIDES:
        share = _positive_point_share(boxes, levels, strides, radius_strides)
        if share >= min_share:
            break
    radius = radius_strides * strides[0] / sizes[0]  # the same in every level (sizes ∝ strides)
    return FCOSFit([round(s, 2) for s in sizes], round(float(radius), 3), counts, share, list(strides))


def _positive_point_share(boxes: np.ndarray, levels: np.ndarray, strides: Sequence[int], radius_strides: float) -> float:
    if not len(boxes):
        return float("nan")
    stride = np.asarray(strides, dtype=np.float64)[levels]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    low = np.maximum(boxes[:, :2], centre - radius_strides * stride[:, None])
    high = np.minimum(boxes[:, 2:], centre + radius_strides * stride[:, None])
    # grid points k·stride strictly inside (low, high) on each axis
    count = np.clip(np.ceil(high / stride[:, None]) - np.floor(low / stride[:, None]) - 1, 0, None)
    return float(np.mean(count.prod(axis=1) >= 1))


def _fit_retinanet(boxes: np.ndarray, strides: Sequence[int], detector: Mapping[str, Any]) -> tuple[dict[str, Any], AnchorFit]:
    fit = fit_anchor_sizes(boxes, strides, per_level=int(detector.get("anchors_per_level", 2)),
                           aspect_ratios=list(detector.get("aspect_ratios", (0.5, 1.0, 2.0))))
    return {"anchor_sizes": fit.sizes}, fit


def _fit_fcos(boxes: np.ndarray, strides: Sequence[int], detector: Mapping[str, Any]) -> tuple[dict[str, Any], FCOSFit]:
    fit = fit_fcos(boxes, strides)
    return {"anchor_sizes": [[s] for s in fit.sizes], "center_sampling_radius": fit.center_sampling_radius}, fit


# How each detector architecture (models.det_heads.ARCHS) fits its anchors / points to the training boxes.
# Adding a detector adds its entry here; the run's wiring (runtime/detection_wiring.py) stays as it is.
BOX_FITTERS: dict[str, Callable[[np.ndarray, Sequence[int], Mapping[str, Any]], tuple[dict[str, Any], Any]]] = {
    "retinanet": _fit_retinanet,
    "fcos": _fit_fcos,
}


def fit_to_boxes(detector: Mapping[str, Any], boxes: np.ndarray) -> tuple[dict[str, Any], AnchorFit | FCOSFit]:
    """The ``model.detector`` values that fit its architecture's anchors (or FCOS points) to ``boxes``
    ((N, 4) xyxy, network pixels), and the fit (its ``record()`` goes into ``metrics.json``).
    ``detector`` holds ``arch``, ``returned_layers`` and the architecture's fit options."""
    arch = detector["arch"]
    if arch not in BOX_FITTERS:
        raise ValueError(f"model.detector.anchor_sizes=auto: no box fit for arch={arch!r}; known: {sorted(BOX_FITTERS)}")
    return BOX_FITTERS[arch](boxes, level_strides(detector["returned_layers"]), detector)
