"""Per-volume preprocessing of NIfTI cases: intensity normalisation and optional resampling.

Intensity (per channel, over all voxels of the volume):

- ``zscore`` (default) — ``(x - mean) / std``; real scanners store intensities whose ranges differ
  by orders of magnitude between cases (MRI has no absolute unit), so every volume is standardised
  on its own;
- ``ct`` — clip to ``ct_window = [low, high]`` (Hounsfield units, e.g. [-160, 240] for abdomen) and
  map the window linearly onto [-1, 1], the same for every volume (HU are absolute);
- ``none`` — cast to float32 only.

Resampling (``target_spacing`` mm, or ``None`` to keep the file's grid): images trilinearly
(scipy ``zoom`` order 1), labels by nearest neighbour; the new spacing is ``old · old_shape / new_shape``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

NORMALIZATIONS = ("zscore", "ct", "none")


def normalize_intensity(image: np.ndarray, method: str = "zscore", ct_window: Sequence[float] | None = None) -> np.ndarray:
    """``image`` ``(C, X, Y, Z)`` any numeric dtype → float32 (see the module docstring)."""
    data = image.astype(np.float32)
    if method == "none":
        return data
    if method == "ct":
        if ct_window is None or len(ct_window) != 2 or ct_window[1] <= ct_window[0]:
            raise ValueError(f"normalize='ct' needs ct_window [low, high] with low < high (HU), got {ct_window}")
        low, high = float(ct_window[0]), float(ct_window[1])
        return (2.0 * (np.clip(data, low, high) - low) / (high - low) - 1.0).astype(np.float32)
    if method != "zscore":
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {method!r}")
    flat = data.reshape(data.shape[0], -1).astype(np.float64)
    mean = flat.mean(1)[:, None, None, None]
    std = flat.std(1)[:, None, None, None]
    return ((data - mean) / np.where(std > 1e-8, std, 1.0)).astype(np.float32)


def resampled_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> tuple[int, ...]:
    """Voxels per axis after resampling ``shape`` at ``spacing`` to ``target`` spacing (at least 1)."""
    return tuple(max(1, int(round(s * sp / t))) for s, sp, t in zip(shape, spacing, target))


def resample(image: np.ndarray, labels: np.ndarray, spacing: Sequence[float],
             target: Sequence[float]) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """``image`` ``(C, X, Y, Z)`` float, ``labels`` ``(X, Y, Z)`` → both on the ``target`` grid, and the new spacing."""
    old = labels.shape
    new = resampled_shape(old, spacing, target)
    if new == tuple(old):
        return image, labels, tuple(float(s) for s in spacing)
    factors = [n / o for n, o in zip(new, old)]
    image = np.stack([ndimage.zoom(channel, factors, order=1) for channel in image])
    labels = ndimage.zoom(labels, factors, order=0)
    new_spacing = tuple(float(sp * o / n) for sp, o, n in zip(spacing, old, new))
    return image.astype(np.float32), labels, new_spacing
