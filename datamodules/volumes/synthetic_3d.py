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

from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from common.names import SPLITS
from datamodules.volumes.base import Volume, VolumeDataModule, VolumeStore

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


def generate_volume(
    rng: np.random.Generator,
    volume_size: Sequence[int],
    shape_families: Sequence[str],
    object_counts: Sequence[Sequence[int]],
    radius_ranges: Sequence[Sequence[float]],
    intensities: Sequence[float],
    tube_length: int = 40,
    contrast_range: Sequence[float] = (0.7, 1.0),
    background_texture: float = 0.2,
    bias_field: float = 0.2,
    blur_sigma: float = 0.6,
    noise_std: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """One volume: ``(image (1, X, Y, Z) float32 z-scored, labels (X, Y, Z) uint8)``; classes 1..K in
    the order of ``shape_families`` (see the module docstring)."""
    shape = tuple(int(s) for s in volume_size)
    labels = np.zeros(shape, dtype=np.uint8)
    signal = np.zeros(shape, dtype=np.float32)
    for cls, (family, counts, radii, level) in enumerate(
            zip(shape_families, object_counts, radius_ranges, intensities), start=1):
        for _ in range(int(rng.integers(counts[0], counts[1] + 1))):
            radius = float(np.exp(rng.uniform(np.log(radii[0]), np.log(radii[1]))))
            if family == "blob":
                body = _blob(rng, radius)
            elif family == "tube":
                body = _tube(rng, radius, tube_length)
            else:
                offsets = _ball_offsets(radius)
                body = np.zeros((2 * int(np.ceil(radius)) + 1,) * 3, dtype=bool)
                body[tuple((offsets + int(np.ceil(radius))).T)] = True
            contrast = level * rng.uniform(*contrast_range)
            for _ in range(_PLACEMENT_TRIES):
                starts = [int(rng.integers(-b // 4, max(s - b + b // 4, -b // 4) + 1)) for s, b in zip(shape, body.shape)]
                window = tuple(slice(max(st, 0), min(st + b, s)) for st, b, s in zip(starts, body.shape, shape))
                part = body[tuple(slice(w.start - st, w.stop - st) for w, st in zip(window, starts))]
                # Grown by one voxel so that objects never touch (each stays its own component).
                grown = ndimage.binary_dilation(part) if part.size else part
                if part.any() and not labels[window][grown].any():
                    labels[window][part] = cls
                    signal[window][part] = contrast
                    break
    image = background_texture * _smooth_noise(rng, shape, 4.0) + signal
    if bias_field > 0:
        image = image * np.exp(bias_field * _smooth_noise(rng, shape, max(shape) / 3))
    if blur_sigma > 0:
        image = ndimage.gaussian_filter(image, blur_sigma)
    image = image + noise_std * rng.standard_normal(shape).astype(np.float32)
    image = (image - image.mean()) / (image.std() + 1e-8)
    return image[None].astype(np.float32), labels


class Synthetic3DDataModule(VolumeDataModule):
    """Embedded 3-D volumes (module docstring); the training/evaluation arguments are
    :class:`~datamodules.volumes.base.VolumeDataModule`'s. ``train_size``/``val_size``/``test_size``
    are volumes per split; the generator settings are :func:`generate_volume`'s, one list entry per
    foreground class."""

    def __init__(
        self,
        class_names: Sequence[str] = ("background", "blob", "tube", "lesion"),
        volume_size: Sequence[int] = (48, 48, 48),
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        shape_families: Sequence[str] = ("blob", "tube", "lesion"),
        object_counts: Sequence[Sequence[int]] = ((1, 2), (1, 2), (2, 5)),
        radius_ranges: Sequence[Sequence[float]] = ((5.0, 9.0), (1.0, 1.6), (1.0, 2.0)),
        intensities: Sequence[float] = (1.0, -1.5, 2.5),
        tube_length: int = 40,
        contrast_range: Sequence[float] = (0.7, 1.0),
        background_texture: float = 0.2,
        bias_field: float = 0.2,
        blur_sigma: float = 0.6,
        noise_std: float = 0.15,
        train_size: int = 24,
        val_size: int = 6,
        test_size: int = 8,
        num_classes: int | None = None,
        **kwargs: Any,
    ) -> None:
        k = len(shape_families)
        bad_family = [f for f in shape_families if f not in FAMILIES]
        if bad_family:
            raise ValueError(f"Synthetic3DDataModule: shape_families must come from {FAMILIES}, got {bad_family}")
        for arg, values in (("object_counts", object_counts), ("radius_ranges", radius_ranges),
                            ("intensities", intensities)):
            if len(values) != k:
                raise ValueError(f"Synthetic3DDataModule: {arg} needs one entry per foreground class ({k}, as "
                                 f"shape_families), got {len(values)}: {list(values)}")
        if any(len(c) != 2 or c[0] < 0 or c[1] < c[0] for c in object_counts):
            raise ValueError(f"Synthetic3DDataModule: object_counts entries must be [min, max] with 0 <= min <= max, "
                             f"got {[list(c) for c in object_counts]}")
        if any(len(r) != 2 or r[0] <= 0 or r[1] < r[0] for r in radius_ranges):
            raise ValueError(f"Synthetic3DDataModule: radius_ranges entries must be [low, high] with 0 < low <= high, "
                             f"got {[list(r) for r in radius_ranges]}")
        if len(volume_size) != 3 or min(volume_size) < 8 or len(spacing) != 3 or min(spacing) <= 0:
            raise ValueError(f"Synthetic3DDataModule: volume_size must be three ints >= 8 and spacing three "
                             f"positive mm values, got {list(volume_size)} and {list(spacing)}")
        if num_classes is not None and num_classes != k + 1:
            raise ValueError(f"Synthetic3DDataModule: num_classes must be len(shape_families) + 1 = {k + 1}, "
                             f"got {num_classes}")
        for arg, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            if value < 1:
                raise ValueError(f"Synthetic3DDataModule: {arg} must be >= 1, got {value}")
        super().__init__(num_classes=k + 1, class_names=class_names, **kwargs)
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.spacing = tuple(float(s) for s in spacing)
        self.generator_args = dict(
            volume_size=[int(s) for s in volume_size], shape_families=list(shape_families),
            object_counts=[list(c) for c in object_counts], radius_ranges=[list(r) for r in radius_ranges],
            intensities=list(intensities), tube_length=tube_length, contrast_range=list(contrast_range),
            background_texture=background_texture, bias_field=bias_field, blur_sigma=blur_sigma, noise_std=noise_std)

    def volume(self, split: str, index: int) -> Volume:
        """The ``index``-th volume of ``split`` (deterministic in ``(seed, split, index)``)."""
        rng = np.random.default_rng([int(self.seed), _SPLIT_IDS[split], int(index)])
        image, labels = generate_volume(rng, **self.generator_args)
        if self.mode == "binary":
            labels = (labels > 0).astype(np.uint8)
        return Volume(f"{split}_{index:04d}", image, labels, self.spacing)

    def load_volumes(self) -> dict[str, VolumeStore]:
        stores = {}
        for split in SPLITS:
            names = [f"{split}_{k:04d}" for k in range(self.sizes[split])]
            stores[split] = VolumeStore(names, cached=[self.volume(split, k) for k in range(self.sizes[split])])
        return stores
