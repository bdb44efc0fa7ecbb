"""Box statistics of a detection training split, as data for fitting anchors (models/anchors.py).

The datamodule reports its training boxes in the pixels the network sees (after the resolution
policy's cap, :mod:`datamodules.resolution`); the runtime builder hands them to the anchor fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BoxStatistics:
    """Training boxes ``boxes`` (N, 4) xyxy float64 in network pixels, the number of training images
    and how many of them the resolution policy downscales (``downscaled``, with ``max_size`` the cap).
    ``crop_boxes``: how many boxes one training input holds on average over the training images,
    ``mean_i n_i · min(1, crop² / (h_i · w_i))`` for random ``crop`` × ``crop`` windows of capped
    ``h_i`` × ``w_i`` images with ``n_i`` boxes; ``None`` when training reads whole images (then
    ``len(boxes) / images``). The detection budget (``runtime.detection_wiring``) counts box visits with it."""

    boxes: np.ndarray
    images: int
    downscaled: int
    max_size: int
    crop_boxes: float | None = None

    @property
    def boxes_per_input(self) -> float:
        """Boxes in one training input on average (:attr:`crop_boxes`, or whole images' mean)."""
        if self.crop_boxes is not None:
            return float(self.crop_boxes)
        return len(self.boxes) / self.images if self.images else 0.0

    @property
    def sizes(self) -> np.ndarray:
        """(N, 2) widths and heights."""
        return self.boxes[:, 2:] - self.boxes[:, :2]

    def summary(self) -> dict[str, float | int]:
        """Counts and size quantiles (``scale`` = √(w·h) px) for printing and the run record."""
        wh = self.sizes
        scale = np.sqrt(wh.prod(axis=1))
        quantiles = np.quantile(scale, [0.05, 0.5, 0.95]) if len(scale) else [float("nan")] * 3
        return {
            "boxes": int(len(wh)),
            "images": int(self.images),
            "downscaled_images": int(self.downscaled),
            "max_size": int(self.max_size),
            "scale_p05": round(float(quantiles[0]), 2),
            "scale_median": round(float(quantiles[1]), 2),
            "scale_p95": round(float(quantiles[2]), 2),
            "small_share": round(float(np.mean(wh.prod(axis=1) < 32**2)) if len(wh) else float("nan"), 4),
            "boxes_per_input": round(self.boxes_per_input, 3),
        }
