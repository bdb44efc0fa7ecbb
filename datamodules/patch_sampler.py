"""Where training patches come from: random positions plus foreground-oversampled ones.

Large images that are mostly background make random patches nearly free of small structures. As in
nnU-Net, a share ``foreground_share`` of each epoch's patches is instead centred on a foreground
pixel, drawn *per class* so that rare classes are seen as often as common ones:

1. class ``c`` uniform over the foreground classes present in the training split,
2. an image uniform over the training images that contain ``c``,
3. a pixel uniform over (a seeded subsample of at most ``max_locations`` of) that image's ``c`` pixels.

The other patches are uniform over all training pixels: the image is drawn with probability
proportional to its pixel count, the centre uniformly inside it. A patch window is then placed so that
it contains its centre pixel and stays inside the image when the image is at least as large as the
patch; otherwise the window overhangs the image and :func:`crop` pads the outside.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch


class ForegroundIndex:
    """Per image and foreground class, a subsample of that class's pixel positions (flat indices).

    Masks are added in image order with :meth:`add`; they hold non-negative class ids, and only
    ``foreground_classes`` (usually 1..C-1, so never the ignore index) are indexed."""

    def __init__(self, foreground_classes: Sequence[int], max_locations: int = 10_000, seed: int = 0) -> None:
        if max_locations < 1:
            raise ValueError(f"max_locations must be >= 1, got {max_locations}")
        self.foreground_classes = {int(c) for c in foreground_classes}
        self.max_locations = max_locations
        self.rng = np.random.default_rng(seed)
        self.locations: dict[tuple[int, int], np.ndarray] = {}
        self.images_with_class: dict[int, list[int]] = {}
        self.num_images = 0

    @property
    def classes(self) -> list[int]:
        """Foreground classes present in at least one added mask."""
        return sorted(self.images_with_class)

    def add(self, mask: np.ndarray) -> None:
        image_index = self.num_images
        self.num_images += 1
        flat = mask.ravel()
        for c in np.flatnonzero(np.bincount(flat, minlength=1)).tolist():
            if c not in self.foreground_classes:
                continue
            positions = np.flatnonzero(flat == c)
            if positions.size > self.max_locations:
                positions = np.sort(self.rng.choice(positions, size=self.max_locations, replace=False))
            self.locations[(image_index, c)] = positions
            self.images_with_class.setdefault(c, []).append(image_index)


class PatchSampler(torch.utils.data.Sampler):
    """Yields ``(image_index, top, left)`` windows of size ``patch_size`` for one epoch of ``num_patches``.

    Exactly ``round(foreground_share * num_patches)`` of them are foreground-centred (shuffled among the
    random ones); with no foreground in the training split all are random. The generator is seeded once
    and advances every epoch, so a run is reproducible and epochs differ."""

    def __init__(
        self,
        sizes: Sequence[tuple[int, int]],
        patch_size: tuple[int, int],
        num_patches: int,
        foreground_share: float = 0.33,
        index: ForegroundIndex | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not sizes:
            raise ValueError("PatchSampler: no images to sample from")
        if num_patches < 1:
            raise ValueError(f"PatchSampler: num_patches must be >= 1, got {num_patches}")
        if not 0.0 <= foreground_share <= 1.0:
            raise ValueError(f"PatchSampler: foreground_share must be in [0, 1], got {foreground_share}")
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.patch_size = (int(patch_size[0]), int(patch_size[1]))
        self.num_patches = int(num_patches)
        self.foreground_share = float(foreground_share)
        self.index = index
        self.rng = np.random.default_rng(seed)
        areas = self.sizes[:, 0] * self.sizes[:, 1]
        self.image_probabilities = areas / areas.sum()

    def __len__(self) -> int:
        return self.num_patches

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        yield from self.draw()

    def draw(self) -> list[tuple[int, int, int]]:
        """One epoch of windows (advances the generator)."""
        rng = self.rng
        use_foreground = self.index is not None and bool(self.index.classes)
        n_foreground = int(round(self.foreground_share * self.num_patches)) if use_foreground else 0
        images = rng.choice(len(self.sizes), size=self.num_patches, p=self.image_probabilities)
        rows = (rng.random(self.num_patches) * self.sizes[images, 0]).astype(np.int64)
        cols = (rng.random(self.num_patches) * self.sizes[images, 1]).astype(np.int64)
        for k in range(n_foreground):
            images[k], rows[k], cols[k] = self._foreground_centre(rng)
        order = rng.permutation(self.num_patches)
        return [self.window(int(images[k]), int(rows[k]), int(cols[k])) for k in order]

    def _foreground_centre(self, rng: np.random.Generator) -> tuple[int, int, int]:
        index = self.index
        c = index.classes[rng.integers(len(index.classes))]
        candidates = index.images_with_class[c]
        image = candidates[rng.integers(len(candidates))]
        positions = index.locations[(image, c)]
        flat = int(positions[rng.integers(positions.size)])
        width = int(self.sizes[image, 1])
        return image, flat // width, flat % width

    def window(self, image: int, row: int, col: int) -> tuple[int, int, int]:
        """The window of ``image`` containing pixel (row, col): centred on it, shifted to stay inside."""
        height, width = (int(v) for v in self.sizes[image])
        ph, pw = self.patch_size
        top = int(np.clip(row - ph // 2, min(0, height - ph), max(0, height - ph)))
        left = int(np.clip(col - pw // 2, min(0, width - pw), max(0, width - pw)))
        return image, top, left


def crop(array: np.ndarray, top: int, left: int, size: tuple[int, int], fill: float | np.ndarray) -> np.ndarray:
    """``array[top:top+h, left:left+w]`` (first two axes), with ``fill`` (a scalar, or one value per
    channel) where the window leaves the array."""
    height, width = array.shape[:2]
    ph, pw = size
    if top >= 0 and left >= 0 and top + ph <= height and left + pw <= width:
        return array[top:top + ph, left:left + pw]
    out = np.full((ph, pw) + array.shape[2:], fill, dtype=array.dtype)
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + ph, height), min(left + pw, width)
    if src_bottom > src_top and src_right > src_left:
        out[src_top - top:src_bottom - top, src_left - left:src_right - left] = \
            array[src_top:src_bottom, src_left:src_right]
    return out
