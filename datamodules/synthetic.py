"""The embedded synthetic segmentation data: objects of K classes on a textured, noisy background,
generated on the fly and deterministic per ``(seed, split, index)``.

No files are read or written, so every DataLoader worker and every DDP rank sees the same samples,
and the data of a run is reproduced exactly by its config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from common.names import SPLITS
from datamodules import shapes
from datamodules.base import LOADER_DEFAULTS, check_gb, check_int, invalid
from datamodules.labels import LabelSpec, SegDataModule

OWNER = "synthetic data"  # how argument errors name this data
# Images are drawn in [0, 1] and shifted/scaled by these constants, so a batch is roughly zero-mean
# with unit-order spread without depending on the data (the same constants for every split and seed).
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25
_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)
# The generator keys of the segmentation datamodule and their defaults (configs/datamodule/synthetic_*.yaml).
SEG_GENERATOR: dict[str, Any] = {
    "class_frequencies": (1.0, 1.0, 0.7, 0.02, 0.03),
    "shape_families": ("blob", "polygon", "curve", "blob", "polygon"),
    "class_colors": ((0.9, 0.2, 0.2), (0.2, 0.8, 0.3), (0.2, 0.3, 0.9), (0.9, 0.85, 0.2), (0.8, 0.2, 0.8)),
    "textures": ("flat", "stripes", "flat", "checker", "flat"),
    "radius_range": (1.5, 8.0),
    "objects_per_image": (2, 8),
    "curve_width": 2.0,
    "contrast_range": (0.5, 0.9),
    "background_texture": 0.12,
    "noise_std": 0.05,
    "blur_sigma": 0.6,
}


def generator_options(owner: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated by the ``given`` generator keys; a key ``defaults`` lacks is an error naming it."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{owner}: unknown option(s) {unknown}; accepted generator options: {sorted(defaults)}")
    return {**defaults, **given}


@dataclass(frozen=True)
class SyntheticObject:
    """One object of a layout: its class (1..K-1; 0 is background), shape, opacity, and the shape's
    signed distance on its image window (computed once, used by both the mask and the image)."""

    label: int
    shape: shapes.Shape
    opacity: float
    window: shapes.Window
    distance: np.ndarray


@dataclass(frozen=True)
class SyntheticSpec:
    """The generator parameters (validated on construction; errors name the argument).

    Per foreground class ``k = 1..K-1`` (lists of length ``num_classes - 1``): ``class_frequencies``
    (relative probability that an object is of class ``k``; pixel shares also depend on the shape
    family), ``shape_families`` (``blob``, ``polygon`` or ``curve``), ``class_colors`` (RGB in
    [0, 1]) and ``textures`` (``flat``, ``stripes``, ``checker``, ``gradient``).

    Per image: ``objects_per_image = [lo, hi]`` objects are attempted (uniform, inclusive), with radii
    log-uniform in ``radius_range`` (px; each shape lies inside the disc of its radius), larger ones
    placed first, never overlapping (2 px gap; an object that does not fit is dropped). Objects are
    alpha-blended over a background of mean 0.5 varied by smooth colour noise of amplitude
    ``background_texture``, with an opacity drawn from ``contrast_range``; then the image is blurred
    with a Gaussian of ``blur_sigma`` px and gets pixel noise of std ``noise_std``.
    """

    image_size: tuple[int, int]
    num_classes: int
    class_frequencies: tuple[float, ...]
    shape_families: tuple[str, ...]
    class_colors: tuple[tuple[float, float, float], ...]
    textures: tuple[str, ...]
    radius_range: tuple[float, float]
    objects_per_image: tuple[int, int]
    curve_width: float
    contrast_range: tuple[float, float]
    background_texture: float
    noise_std: float
    blur_sigma: float
    seed: int
    owner: str = field(default=OWNER, compare=False, repr=False)  # how errors name the datamodule

    @classmethod
    def from_options(cls, owner: str, **options: Any) -> SyntheticSpec:
        """The spec from config values (YAML lists, ints where floats go): each converted to its field's type.
        ``image_size`` may be one int (square)."""
        size = options["image_size"]
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2:
            invalid(owner, "image_size", options["image_size"], "an int or [height, width]")
        converted = {name: _CONVERT[name](value) for name, value in {**options, "image_size": size}.items()}
        return cls(**converted, owner=owner)

    def __post_init__(self) -> None:
        height, width = self.image_size
        if height < 8 or width < 8:
            invalid(self.owner, "image_size", self.image_size, "two ints >= 8 (height, width)")
        if self.num_classes < 2:
            invalid(self.owner, "num_classes", self.num_classes, "an int >= 2 (background + at least one class)")
        n_fg = self.num_classes - 1
        for name in ("class_frequencies", "shape_families", "class_colors", "textures"):
            value = getattr(self, name)
            if len(value) != n_fg:
                invalid(self.owner, name, list(value), f"a list of num_classes - 1 = {n_fg} entries (one per foreground class)")
        if not all(np.isfinite(f) and f > 0 for f in self.class_frequencies):
            invalid(self.owner, "class_frequencies", list(self.class_frequencies), "positive finite numbers")
        for family in self.shape_families:
            if family not in shapes.SHAPE_FAMILIES:
                invalid(self.owner, "shape_families", list(self.shape_families), f"entries from {sorted(shapes.SHAPE_FAMILIES)}")
        for color in self.class_colors:
            if len(color) != 3 or not all(0.0 <= c <= 1.0 for c in color):
                invalid(self.owner, "class_colors", [list(c) for c in self.class_colors], "[r, g, b] triples in [0, 1]")
        for name in self.textures:
            if name not in shapes.TEXTURES:
                invalid(self.owner, "textures", list(self.textures), f"entries from {list(shapes.TEXTURES)}")
        r_min, r_max = self.radius_range
        if not 0.5 <= r_min <= r_max:
            invalid(self.owner, "radius_range", list(self.radius_range), "[min, max] with 0.5 <= min <= max (pixels)")
        if 2 * r_max + 1 > min(height, width):
            invalid(self.owner, 
                "radius_range",
                list(self.radius_range),
                f"max radius with 2 * max + 1 <= the smaller image side {min(height, width)}",
            )
        lo, hi = self.objects_per_image
        if not 0 <= lo <= hi:
            invalid(self.owner, "objects_per_image", list(self.objects_per_image), "[lo, hi] ints with 0 <= lo <= hi")
        if not self.curve_width > 0:
            invalid(self.owner, "curve_width", self.curve_width, "a positive number of pixels")
        c_min, c_max = self.contrast_range
        if not 0.0 < c_min <= c_max <= 1.0:
            invalid(self.owner, "contrast_range", list(self.contrast_range), "[min, max] with 0 < min <= max <= 1 (object opacity)")
        for name in ("background_texture", "noise_std", "blur_sigma"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                invalid(self.owner, name, value, "a finite number >= 0")

    def rng(self, split: str, index: int, stream: int) -> np.random.Generator:
        """The generator of one sample; stream 0 draws the layout (mask), stream 1 the pixels, so a
        mask can be rebuilt without drawing its image."""
        return np.random.default_rng([self.seed, SPLITS.index(split), index, stream])

    def layout(self, split: str, index: int) -> list[SyntheticObject]:
        """The objects of sample ``index`` of ``split``."""
        rng = self.rng(split, index, 0)
        height, width = self.image_size
        count = int(rng.integers(self.objects_per_image[0], self.objects_per_image[1] + 1))
        frequencies = np.asarray(self.class_frequencies, dtype=np.float64)
        labels = rng.choice(len(frequencies), size=count, p=frequencies / frequencies.sum()) + 1
        log_r = np.log(self.radius_range)
        radii = np.sort(np.exp(rng.uniform(log_r[0], log_r[1], size=count)))[::-1]
        opacities = rng.uniform(*self.contrast_range, size=count)
        centers, kept = shapes.place_non_overlapping(rng, radii, height, width)
        objects = []
        for center, i in zip(centers, kept):
            label = int(labels[i])
            family = self.shape_families[label - 1]
            extra = {"width": self.curve_width} if family == "curve" else {}
            shape = shapes.SHAPE_FAMILIES[family](rng, (float(center[0]), float(center[1])), float(radii[i]), **extra)
            window = shapes.shape_window(shape, height, width)
            distance = shapes.window_distance(shape, window)
            objects.append(SyntheticObject(label, shape, float(opacities[i]), window, distance))
        return objects

    def mask(self, objects: Sequence[SyntheticObject], ignore_index: int | None = None) -> np.ndarray:
        """Label map ``(H, W)`` int64. With ``ignore_index``, the background pixels touching an object
        (8-neighbourhood; where blur mixes object and background) are labelled ``ignore_index``, VOC style."""
        height, width = self.image_size
        mask = np.zeros((height, width), dtype=np.int64)
        for obj in objects:
            inside = obj.distance <= 0.0
            region = mask[obj.window.slices]
            if ignore_index is not None:
                # The window has a 1-px margin around the shape, so the dilation fits inside it.
                ring = ndimage.binary_dilation(inside, structure=_EIGHT_NEIGHBOURS) & ~inside
                region[ring & (region == 0)] = ignore_index
            region[inside] = obj.label
        return mask

    def image(self, objects: Sequence[SyntheticObject], split: str, index: int) -> np.ndarray:
        """RGB image ``(3, H, W)`` float32 in [0, 1] (before normalisation)."""
        rng = self.rng(split, index, 1)
        height, width = self.image_size
        image = 0.5 + self.background_texture * shapes.smooth_noise(rng, 3, height, width, cells=4)
        image += 0.5 * self.background_texture * shapes.smooth_noise(rng, 3, height, width, cells=12)
        for obj in objects:
            coverage = np.clip(0.5 - obj.distance, 0.0, 1.0)
            pattern = shapes.texture(self.textures[obj.label - 1], obj.window, rng)
            color = np.asarray(self.class_colors[obj.label - 1])[:, None, None] * (0.5 + 0.5 * pattern)
            alpha = obj.opacity * coverage
            region = image[(slice(None), *obj.window.slices)]
            region += alpha * (color - region)
        image = shapes.gaussian_blur(image, self.blur_sigma)
        image += self.noise_std * rng.standard_normal(image.shape)
        return np.clip(image, 0.0, 1.0).astype(np.float32)


def _floats(values: Sequence[Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _float_range(values: Sequence[Any]) -> tuple[float, float]:
    return float(values[0]), float(values[-1])


def _int_range(values: Sequence[Any]) -> tuple[int, int]:
    return int(values[0]), int(values[-1])


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "image_size": lambda size: (int(size[0]), int(size[1])), "num_classes": int, "seed": int,
    "class_frequencies": _floats, "shape_families": tuple, "textures": tuple,
    "class_colors": lambda colors: tuple(_floats(color) for color in colors),
    "radius_range": _float_range, "objects_per_image": _int_range, "contrast_range": _float_range,
    "curve_width": float, "background_texture": float, "noise_std": float, "blur_sigma": float,
}


class SyntheticSegDataset(Dataset):
    """``length`` samples of one split: ``{"image": float32 (in_channels, H, W), "mask": int64 (H, W),
    "case": "<split>_<index>"}``.

    Images are normalised as ``(x - 0.5) / 0.25``; ``in_channels=1`` averages the RGB channels first.
    Samples are generated deterministically on first access; with ``cache=True`` they are kept in
    memory (per process: each DataLoader worker keeps its own), so later epochs cost no generation.
    """

    def __init__(
        self,
        spec: SyntheticSpec,
        split: str,
        length: int,
        in_channels: int = 3,
        ignore_index: int | None = None,
        cache: bool = False,
    ) -> None:
        if split not in SPLITS:
            invalid(OWNER, "split", split, f"one of {list(SPLITS)}")
        self.spec, self.split, self.length = spec, split, length
        self.in_channels, self.ignore_index = in_channels, ignore_index
        self._cache: dict[int, dict[str, torch.Tensor]] | None = {} if cache else None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for the {self.split} split of {self.length} samples")
        if self._cache is None:
            return self._generate(index)
        if index not in self._cache:
            self._cache[index] = self._generate(index)
        return self._cache[index]

    def _generate(self, index: int) -> dict[str, torch.Tensor]:
        objects = self.spec.layout(self.split, index)
        image = self.spec.image(objects, self.split, index)
        if self.in_channels == 1:
            image = image.mean(axis=0, keepdims=True)
        image = (image - PIXEL_MEAN) / PIXEL_STD
        mask = self.spec.mask(objects, self.ignore_index)
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask), "case": f"{self.split}_{index}"}

    def mask(self, index: int) -> np.ndarray:
        """The label map of sample ``index`` without drawing its image."""
        return self.spec.mask(self.spec.layout(self.split, index), self.ignore_index)


class SyntheticSegDataModule(SegDataModule):
    """Synthetic segmentation data; every constructor argument is a config key
    (``configs/datamodule/synthetic_*.yaml``).

    The generator keys (``class_frequencies``, ``shape_families``, ``class_colors``, ``textures``,
    ``radius_range``, ``objects_per_image``, ``curve_width``, ``contrast_range``, ``background_texture``,
    ``noise_std``, ``blur_sigma``; defaults in :data:`SEG_GENERATOR`) and ``image_size`` (an int or
    ``[height, width]``) become one :class:`SyntheticSpec`, checked there; an unknown key is an error.
    The labels (``num_classes`` incl. background, ``mode``: ``multiclass``, or ``binary`` with
    ``num_classes=2``; ``ignore_index``: ``None``, or a label outside ``[0, num_classes)`` used for a
    1-px ring around each object; ``class_names``, default ``<family>_<k>``) become one
    :class:`~datamodules.labels.LabelSpec`. ``in_channels``: 1 or 3. ``class_pixel_counts()`` is exact
    from the masks. The loader options are :class:`~datamodules.base.BaseDataModule`'s (``batch_size``
    default 16); ``cache`` keeps generated samples in memory when all splits fit in ``cache_max_gb``.
    """

    owner = OWNER
    loader_defaults = {"batch_size": 16}

    def __init__(
        self,
        num_classes: int = 6,
        mode: str = "multiclass",
        in_channels: int = 3,
        ignore_index: int | None = None,
        class_names: Sequence[str] | None = None,
        image_size: int | Sequence[int] = 64,
        train_size: int = 800,
        val_size: int = 200,
        test_size: int = 200,
        seed: int = 1,
        cache: bool = True,
        cache_max_gb: float = 2.0,
        **options: Any,
    ) -> None:
        loader = {key: options.pop(key) for key in LOADER_DEFAULTS if key in options}
        options = generator_options(OWNER, options, SEG_GENERATOR)
        self.spec = SyntheticSpec.from_options(OWNER, image_size=image_size, num_classes=num_classes, seed=seed,
                                               **options)
        if class_names is None:
            class_names = ["background"] + [f"{family}_{k}" for k, family in enumerate(self.spec.shape_families, 1)]
        super().__init__(LabelSpec(num_classes, mode, class_names, ignore_index, owner=OWNER), seed=seed, **loader)
        if in_channels not in (1, 3):
            invalid(OWNER, "in_channels", in_channels, "1 (grey) or 3 (RGB)")
        self.in_channels = int(in_channels)
        self.sizes = {split: check_int(OWNER, f"{split}_size", size, 1)
                      for split, size in zip(SPLITS, (train_size, val_size, test_size))}
        self.cache = bool(cache) and self.cache_bytes() <= check_gb(OWNER, "cache_max_gb", cache_max_gb) * 2**30
        self.datasets = {split: self._dataset(split) for split in SPLITS}
        self._class_pixel_counts: torch.Tensor | None = None

    def cache_bytes(self) -> int:
        """Memory that caching every sample of every split takes (float32 image + int64 mask)."""
        pixels = self.spec.image_size[0] * self.spec.image_size[1]
        return sum(self.sizes.values()) * pixels * (4 * self.in_channels + 8)

    def _dataset(self, split: str) -> SyntheticSegDataset:
        return SyntheticSegDataset(self.spec, split, self.sizes[split], self.in_channels, self.ignore_index, self.cache)

    def class_pixel_counts(self) -> torch.Tensor:
        """Exact per-class pixel counts ``(num_classes,)`` float64 over the training split (masks
        only, ``ignore_index`` pixels excluded); computed once, then cached."""
        if self._class_pixel_counts is None:
            train = self.datasets["train"]
            counts = np.zeros(self.num_classes, dtype=np.int64)
            for index in range(len(train)):
                labels = train.mask(index).ravel()
                counts += np.bincount(labels[(labels >= 0) & (labels < self.num_classes)], minlength=self.num_classes)
            self._class_pixel_counts = torch.from_numpy(counts.astype(np.float64))
        return self._class_pixel_counts.clone()
