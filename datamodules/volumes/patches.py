"""Random 3-D training patches with nnU-Net-style foreground oversampling.

Each epoch draws ``num_patches`` windows of ``patch_size``. A share ``foreground_share`` of them is
centred on a foreground voxel, drawn per class so that a rare class is seen as often as a common one:
a class uniform over the foreground classes of the training split, a volume uniform over the volumes
holding that class, a voxel uniform over (a seeded subsample of at most ``max_locations`` of) that
volume's voxels of the class. The other windows are placed uniformly: a volume with probability
proportional to its voxel count, the window start uniform over the valid starts. A window contains its
centre voxel and stays inside the volume along every axis where the volume is at least as large as the
patch; otherwise it overhangs and :func:`crop3d` pads the outside.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from datamodules.patch_sampler import ForegroundIndex

Window = tuple[int, int, int, int]  # (volume index, start x, start y, start z)


class VolumeForegroundIndex(ForegroundIndex):
    """:class:`~datamodules.patch_sampler.ForegroundIndex` over ``(X, Y, Z)`` label maps, which also
    keeps each volume's shape (volumes differ in size, unlike a 2-D split's patches)."""

    def __init__(self, foreground_classes: Sequence[int], max_locations: int = 10_000, seed: int = 0) -> None:
        super().__init__(foreground_classes, max_locations, seed)
        self.shapes: list[tuple[int, ...]] = []

    @property
    def volumes_with_class(self) -> dict[int, list[int]]:
        return self.images_with_class

    def add(self, labels: np.ndarray) -> None:
        """Index the next volume's ``(X, Y, Z)`` label map."""
        self.shapes.append(tuple(labels.shape))
        super().add(labels)


class VolumePatchSampler(torch.utils.data.Sampler):
    """Yields ``(volume, x0, y0, z0)`` windows for one epoch of ``num_patches``; reproducible per seed,
    different every epoch. Exactly ``round(foreground_share * num_patches)`` windows are foreground-centred
    (all random when the training split has no foreground)."""

    def __init__(self, index: VolumeForegroundIndex, patch_size: Sequence[int], num_patches: int,
                 foreground_share: float = 0.33, seed: int = 0) -> None:
        super().__init__()
        if not index.shapes:
            raise ValueError("VolumePatchSampler: no volumes to sample from")
        if num_patches < 1:
            raise ValueError(f"VolumePatchSampler: num_patches must be >= 1, got {num_patches}")
        if not 0.0 <= foreground_share <= 1.0:
            raise ValueError(f"VolumePatchSampler: foreground_share must be in [0, 1], got {foreground_share}")
        self.index = index
        self.patch_size = tuple(int(p) for p in patch_size)
        self.num_patches = num_patches
        self.foreground_share = float(foreground_share)
        self.rng = np.random.default_rng(seed)
        voxels = np.array([np.prod(s) for s in index.shapes], dtype=np.float64)
        self.volume_p = voxels / voxels.sum()

    def __len__(self) -> int:
        return self.num_patches

    def __iter__(self) -> Iterator[Window]:
        n_fg = round(self.foreground_share * self.num_patches) if self.index.classes else 0
        kinds = np.zeros(self.num_patches, dtype=bool)
        kinds[:n_fg] = True
        self.rng.shuffle(kinds)
        for foreground in kinds:
            yield self._foreground_window() if foreground else self._random_window()

    def _random_window(self) -> Window:
        volume = int(self.rng.choice(len(self.volume_p), p=self.volume_p))
        shape = self.index.shapes[volume]
        starts = [int(self.rng.integers(0, max(s - p, 0) + 1)) if s >= p else -((p - s) // 2)
                  for s, p in zip(shape, self.patch_size)]
        return (volume, *starts)

    def _foreground_window(self) -> Window:
        cls = int(self.rng.choice(self.index.classes))
        volumes = self.index.volumes_with_class[cls]
        volume = int(volumes[self.rng.integers(len(volumes))])
        positions = self.index.locations[(volume, cls)]
        shape = self.index.shapes[volume]
        centre = np.unravel_index(int(positions[self.rng.integers(len(positions))]), shape)
        starts = []
        for c, s, p in zip(centre, shape, self.patch_size):
            # Random offset of the centre inside the window (not always the middle), clamped into the volume.
            start = int(c) - int(self.rng.integers(0, p))
            starts.append(min(max(start, 0), s - p) if s >= p else min(max(start, s - p), 0))
        return (volume, *starts)


def crop3d(array: np.ndarray, starts: Sequence[int], patch_size: Sequence[int], fill: float) -> np.ndarray:
    """The window of ``array`` (``(..., X, Y, Z)``) at ``starts`` of ``patch_size``; voxels outside are ``fill``."""
    spatial = array.shape[-3:]
    out = np.full(array.shape[:-3] + tuple(patch_size), fill, dtype=array.dtype)
    src, dst = [], []
    for start, size, p in zip(starts, spatial, patch_size):
        lo, hi = max(start, 0), min(start + p, size)
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    out[(..., *dst)] = array[(..., *src)]
    return out
