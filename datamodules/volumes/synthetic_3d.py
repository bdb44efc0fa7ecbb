"""``datamodule=synthetic_3d``: embedded 3-D volumes generated on the fly, deterministic per seed.

Each volume (``volume_size`` voxels, one channel, ``spacing`` mm) holds objects of the foreground
classes 1..K, one shape family per class:

- ``blob``   — a smooth, irregular ellipsoid (radius log-uniform in the class's ``radius_range``),
- ``tube``   — a thin winding tube (radius = half the tube width, a random smooth 3-D path of
  ``tube_length`` voxels), like vessels or airways: hard for region losses, easy to break,
- ``lesion`` — a small ball of a few voxels (radius ≤ 2 gives ~4–33 voxels), like metastases.

Object counts per volume are uniform in the class's ``object_counts`` range (inclusive), which with the
radii sets the class imbalance. Objects never overlap. The image is a smooth background texture,
each class at its own ``intensities`` value relative to it (negative: darker) (scaled by a per-object contrast in
``contrast_range``), a multiplicative bias field, Gaussian blur and noise, then z-scored per volume.

A volume depends only on ``(seed, split, index)``: val/test are the same for every run with the same
seed, and no volume is shared between splits.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from common.names import SPLITS
from datamodules.base import check_int, invalid
from datamodules.volumes.base import Volume, VolumeDataModule, VolumeStore

OWNER = "Synthetic3DDataModule"  # how argument errors name this data
FAMILIES = ("blob", "tube", "lesion")
_SPLIT_IDS = {split: k for k, split in enumerate(SPLITS)}
_PLACEMENT_TRIES = 30


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return noise / (noise.std() + 1e-8)


def _ball_offsets(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return grid[(grid**2).sum(1) <= radius**2 + 1e-6]


def _blob(rng: np.random.Generator, radius: float) -> np.ndarray:
    """A boolean cube holding an irregular ellipsoid of mean radius ``radius``."""
    half = int(np.ceil(radius * 1.5)) + 1
    axes = radius * rng.uniform(0.7, 1.3, size=3)
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    coords = np.stack(np.meshgrid(*[np.arange(-half, half + 1)] * 3, indexing="ij"), -1).astype(np.float32)
    local = coords @ rotation.astype(np.float32)
    distance = np.sqrt(((local / axes.astype(np.float32)) ** 2).sum(-1))
    wobble = 0.15 * _smooth_noise(rng, distance.shape, max(radius / 2, 1.0))
    return distance + wobble <= 1.0


def _tube(rng: np.random.Generator, radius: float, length: int) -> np.ndarray:
    """A boolean cube holding a winding tube of ``radius`` along a smooth random path of ``length`` steps."""
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    points = [np.zeros(3)]
    for _ in range(length):
        direction = direction + 0.35 * rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        points.append(points[-1] + direction)
    path = np.array(points)
    path -= path.min(0)
    margin = int(np.ceil(radius)) + 1
    size = np.ceil(path.max(0)).astype(int) + 2 * margin + 1
    centreline = np.ones(size, dtype=bool)
    idx = np.round(path + margin).astype(int)
    centreline[idx[:, 0], idx[:, 1], idx[:, 2]] = False
    return ndimage.distance_transform_edt(centreline) <= radius


@dataclass(frozen=True)
class VolumeGenerator:
    """The generator parameters of :class:`Synthetic3DDataModule` (module docstring), checked on
    construction (errors name the argument); one entry per foreground class in ``shape_families``,
    ``object_counts`` (``[min, max]`` objects per volume), ``radius_ranges`` (``[low, high]`` voxels) and
    ``intensities``. The defaults are ``configs/datamodule/synthetic_3d.yaml``'s."""

    volume_size: tuple[int, int, int] = (48, 48, 48)
    shape_families: tuple[str, ...] = ("blob", "tube", "lesion")
    object_counts: tuple[tuple[int, int], ...] = ((1, 2), (1, 2), (2, 5))
    radius_ranges: tuple[tuple[float, float], ...] = ((5.0, 9.0), (1.0, 1.6), (1.0, 2.0))
    intensities: tuple[float, ...] = (1.0, -1.5, 2.5)
    tube_length: int = 40
    contrast_range: tuple[float, float] = (0.7, 1.0)
    background_texture: float = 0.2
    bias_field: float = 0.2
    blur_sigma: float = 0.6
    noise_std: float = 0.15

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def __post_init__(self) -> None:
        # Config lists become tuples, so the spec is hashable and compares by value.
        for name in ("volume_size", "shape_families", "intensities", "contrast_range"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("object_counts", "radius_ranges"):
            object.__setattr__(self, name, tuple(tuple(pair) for pair in getattr(self, name)))
        k = len(self.shape_families)
        if not all(family in FAMILIES for family in self.shape_families):
            invalid(OWNER, "shape_families", list(self.shape_families), f"entries from {list(FAMILIES)}")
        for name in ("object_counts", "radius_ranges", "intensities"):
            if len(getattr(self, name)) != k:
                invalid(OWNER, name, _listed(getattr(self, name)),
                        f"one entry per foreground class ({k}, as shape_families)")
        if any(len(c) != 2 or c[0] < 0 or c[1] < c[0] for c in self.object_counts):
            invalid(OWNER, "object_counts", _listed(self.object_counts), "[min, max] entries with 0 <= min <= max")
        if any(len(r) != 2 or r[0] <= 0 or r[1] < r[0] for r in self.radius_ranges):
            invalid(OWNER, "radius_ranges", _listed(self.radius_ranges), "[low, high] entries with 0 < low <= high")
        if len(self.volume_size) != 3 or min(self.volume_size) < 8:
            invalid(OWNER, "volume_size", list(self.volume_size), "three ints >= 8")

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One volume: ``(image (1, X, Y, Z) float32 z-scored, labels (X, Y, Z) uint8)``; classes 1..K in
        the order of ``shape_families``."""
        shape = tuple(int(s) for s in self.volume_size)
        labels = np.zeros(shape, dtype=np.uint8)
        signal = np.zeros(shape, dtype=np.float32)
        for cls, (family, counts, radii, level) in enumerate(
                zip(self.shape_families, self.object_counts, self.radius_ranges, self.intensities), start=1):
            for _ in range(int(rng.integers(counts[0], counts[1] + 1))):
                radius = float(np.exp(rng.uniform(np.log(radii[0]), np.log(radii[1]))))
                if family == "blob":
                    body = _blob(rng, radius)
                elif family == "tube":
                    body = _tube(rng, radius, self.tube_length)
                else:
                    offsets = _ball_offsets(radius)
                    body = np.zeros((2 * int(np.ceil(radius)) + 1,) * 3, dtype=bool)
                    body[tuple((offsets + int(np.ceil(radius))).T)] = True
                contrast = level * rng.uniform(*self.contrast_range)
                for _ in range(_PLACEMENT_TRIES):
                    starts = [int(rng.integers(-b // 4, max(s - b + b // 4, -b // 4) + 1))
                              for s, b in zip(shape, body.shape)]
                    window = tuple(slice(max(st, 0), min(st + b, s)) for st, b, s in zip(starts, body.shape, shape))
                    part = body[tuple(slice(w.start - st, w.stop - st) for w, st in zip(window, starts))]
                    # Grown by one voxel so that objects never touch (each stays its own component).
                    grown = ndimage.binary_dilation(part) if part.size else part
                    if part.any() and not labels[window][grown].any():
                        labels[window][part] = cls
                        signal[window][part] = contrast
                        break
        image = self.background_texture * _smooth_noise(rng, shape, 4.0) + signal
        if self.bias_field > 0:
            image = image * np.exp(self.bias_field * _smooth_noise(rng, shape, max(shape) / 3))
        if self.blur_sigma > 0:
            image = ndimage.gaussian_filter(image, self.blur_sigma)
        image = image + self.noise_std * rng.standard_normal(shape).astype(np.float32)
        image = (image - image.mean()) / (image.std() + 1e-8)
        return image[None].astype(np.float32), labels


def _listed(values: Sequence[Any]) -> list[Any]:
    return [list(v) if isinstance(v, (list, tuple)) else v for v in values]


class Synthetic3DDataModule(VolumeDataModule):
    """Embedded 3-D volumes (module docstring); the training/evaluation arguments are
    :class:`~datamodules.volumes.base.VolumeDataModule`'s. ``train_size``/``val_size``/``test_size``
    are volumes per split, ``spacing`` the mm per axis; the generator keys are :class:`VolumeGenerator`'s
    fields (one :class:`VolumeGenerator`, checked there). ``num_classes`` follows ``shape_families``
    (``null``, or ``len(shape_families) + 1``)."""

    owner = OWNER

    def __init__(
        self,
        class_names: Sequence[str] = ("background", "blob", "tube", "lesion"),
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        train_size: int = 24,
        val_size: int = 6,
        test_size: int = 8,
        num_classes: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.generator = VolumeGenerator(**{key: kwargs.pop(key) for key in VolumeGenerator.keys() if key in kwargs})
        k = len(self.generator.shape_families)
        if num_classes is not None and num_classes != k + 1:
            invalid(OWNER, "num_classes", num_classes, f"null or len(shape_families) + 1 = {k + 1}")
        if len(spacing) != 3 or min(spacing) <= 0:
            invalid(OWNER, "spacing", list(spacing), "three positive mm values")
        super().__init__(num_classes=k + 1, class_names=class_names, **kwargs)
        self.sizes = {split: check_int(OWNER, f"{split}_size", size, 1)
                      for split, size in zip(SPLITS, (train_size, val_size, test_size))}
        self.spacing = tuple(float(s) for s in spacing)

    def volume(self, split: str, index: int) -> Volume:
        """The ``index``-th volume of ``split`` (deterministic in ``(seed, split, index)``)."""
        rng = np.random.default_rng([int(self.seed), _SPLIT_IDS[split], int(index)])
        image, labels = self.generator.generate(rng)
        if self.mode == "binary":
            labels = (labels > 0).astype(np.uint8)
        return Volume(f"{split}_{index:04d}", image, labels, self.spacing)

    def load_volumes(self) -> dict[str, VolumeStore]:
        stores = {}
        for split in SPLITS:
            names = [f"{split}_{k:04d}" for k in range(self.sizes[split])]
            stores[split] = VolumeStore(names, cached=[self.volume(split, k) for k in range(self.sizes[split])])
        return stores
