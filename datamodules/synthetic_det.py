"""Synthetic detection data: many small objects of long-tailed classes among unlabeled clutter,
with boxes exact by construction; deterministic per ``(seed, split, index)``.

The images come from the segmentation generator (:class:`datamodules.synthetic.SyntheticSpec`):
the same shapes, textures, background noise, blur and pixel noise. Clutter objects are one more
generator class, drawn in grey and never reported as targets. Each object's box is the tight box
around the pixels of its shape mask (``x1 = first column, x2 = last column + 1``, likewise for rows),
so every drawn pixel lies inside its box and every box edge touches one; objects never overlap.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from common.names import SPLITS
from datamodules import shapes
from datamodules.base import LOADER_DEFAULTS, BaseDataModule, check_int, invalid
from datamodules.det_collate import collate_detection
from datamodules.synthetic import SEG_GENERATOR, SyntheticObject, SyntheticSpec, generator_options

OWNER = "synthetic_det"  # how argument errors name this data

CLUTTER_COLOR = (0.55, 0.55, 0.55)
PER_CLASS = ("class_frequencies", "shape_families", "class_colors", "textures")
# The generator keys of the detection datamodule: the segmentation generator's but ``radius_range`` (set from
# ``object_sizes``), with these defaults where they differ (configs/datamodule/synthetic_det.yaml).
DET_GENERATOR: dict[str, Any] = {key: value for key, value in SEG_GENERATOR.items() if key != "radius_range"} | {
    "class_frequencies": (1.0, 0.5, 0.25, 0.12, 0.06), "shape_families": ("blob", "polygon", "blob", "polygon", "curve"),
    "textures": ("flat", "stripes", "checker", "flat", "flat"), "objects_per_image": (4, 12), "curve_width": 1.5,
    "contrast_range": (0.6, 1.0), "background_texture": 0.15, "blur_sigma": 0.5,
}


def object_box(obj: SyntheticObject, height: int, width: int) -> tuple[float, float, float, float]:
    """The tight ``(x1, y1, x2, y2)`` box around the shape mask of ``obj`` (pixel-edge coordinates)."""
    window = shapes.shape_window(obj.shape, height, width)
    rows, cols = np.nonzero(shapes.window_distance(obj.shape, window) <= 0.0)
    return (
        float(window.x0 + cols.min()), float(window.y0 + rows.min()),
        float(window.x0 + cols.max() + 1), float(window.y0 + rows.max() + 1),
    )


class SyntheticDetDataset(Dataset):
    """``length`` samples of one split: ``(image float32 (3, H, W) in [0, 1], {"boxes": float32
    (K, 4) xyxy, "labels": int64 (K,) in [1, num_classes], "case": "<split>_<index>"})``; regenerated
    on every access."""

    def __init__(self, spec: SyntheticSpec, split: str, length: int, num_classes: int) -> None:
        if split not in SPLITS:
            invalid(OWNER, "split", split, f"one of {list(SPLITS)}")
        self.spec, self.split, self.length, self.num_classes = spec, split, int(length), int(num_classes)

    def __len__(self) -> int:
        return self.length

    def targets(self, index: int) -> dict[str, torch.Tensor]:
        """The boxes and labels of sample ``index`` without drawing its image."""
        return self._targets(self.spec.layout(self.split, index))

    def _targets(self, objects: Sequence[SyntheticObject]) -> dict[str, torch.Tensor]:
        height, width = self.spec.image_size
        kept = [obj for obj in objects if obj.label <= self.num_classes]  # larger labels are clutter
        boxes = torch.tensor([object_box(obj, height, width) for obj in kept], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([obj.label for obj in kept], dtype=torch.int64)
        return {"boxes": boxes, "labels": labels}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for the {self.split} split of {self.length} samples")
        objects = self.spec.layout(self.split, index)
        image = torch.from_numpy(self.spec.image(objects, self.split, index))
        return image, {**self._targets(objects), "case": f"{self.split}_{index}"}


class SyntheticDetDataModule(BaseDataModule):
    """Synthetic detection data; every constructor argument is a config key
    (``configs/datamodule/synthetic_det*.yaml``).

    Per foreground class (lists of ``num_classes`` entries): ``class_frequencies`` (relative
    probability of an object being of that class — long-tailed by default), ``shape_families``,
    ``class_colors``, ``textures`` (see :class:`datamodules.synthetic.SyntheticSpec`).
    ``object_sizes = [min, max]``: object diameters in px, log-uniform (most objects are small);
    a box side is at most ``floor(diameter) + 1`` px. ``objects_per_image = [lo, hi]`` objects are attempted,
    of which a share ``clutter_share`` is unlabeled grey clutter (drawn like objects, no box); an
    object that does not fit without overlap is dropped. ``contrast_range``, ``background_texture``,
    ``noise_std``, ``blur_sigma``: as for the segmentation data. These generator keys default to
    :data:`DET_GENERATOR` and become one :class:`~datamodules.synthetic.SyntheticSpec` (checked there);
    an unknown key is an error. The loader options are :class:`~datamodules.base.BaseDataModule`'s.

    Attributes: ``num_classes`` (foreground classes; labels are ``1..num_classes``),
    ``class_names``, ``image_size`` (square side; the detector's input size). Batches: ``(list of images, list of target dicts)``.
    """

    collate_fn = staticmethod(collate_detection)
    owner = OWNER

    def __init__(
        self,
        num_classes: int = 5,
        class_names: Sequence[str] | None = None,
        image_size: int = 128,
        object_sizes: Sequence[float] = (4.0, 48.0),
        clutter_share: float = 0.2,
        train_size: int = 512,
        val_size: int = 64,
        test_size: int = 128,
        seed: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(seed=seed, **{key: options.pop(key) for key in LOADER_DEFAULTS if key in options})
        if not 0.0 <= clutter_share < 1.0:
            invalid(OWNER, "clutter_share", clutter_share, "a number in [0, 1)")
        if len(object_sizes) != 2 or not 1.0 <= object_sizes[0] <= object_sizes[1]:
            invalid(OWNER, "object_sizes", list(object_sizes), "[min, max] diameters in px with 1 <= min <= max")
        if not isinstance(image_size, int) or image_size < 8:
            invalid(OWNER, "image_size", image_size, "an int >= 8 (square images)")
        self.sizes = {split: check_int(OWNER, f"{split}_size", size, 1)
                      for split, size in zip(SPLITS, (train_size, val_size, test_size))}
        options = generator_options(OWNER, options, DET_GENERATOR)
        per_class = {name: list(options[name]) for name in PER_CLASS}
        for name, value in per_class.items():
            if len(value) != num_classes:
                invalid(OWNER, name, value, f"a list of num_classes={num_classes} entries (one per class)")
        if class_names is None:
            class_names = [f"{family}_{k}" for k, family in enumerate(per_class["shape_families"], start=1)]
        if len(class_names) != num_classes:
            invalid(OWNER, "class_names", list(class_names), f"a list of num_classes={num_classes} names")
        if clutter_share > 0:
            # One more generator class for clutter, sized so that it is clutter_share of all objects.
            frequencies = [float(f) for f in per_class["class_frequencies"]]
            per_class["class_frequencies"].append(clutter_share / (1.0 - clutter_share) * sum(frequencies))
            for name, value in (("shape_families", "blob"), ("class_colors", CLUTTER_COLOR), ("textures", "flat")):
                per_class[name].append(value)
        self.spec = SyntheticSpec.from_options(
            OWNER, **{**options, **per_class}, image_size=image_size, num_classes=len(per_class["textures"]) + 1,
            radius_range=(0.5 * float(object_sizes[0]), 0.5 * float(object_sizes[1])), seed=seed)
        self.num_classes, self.class_names = int(num_classes), list(class_names)
        self.image_size = int(image_size)
        self.datasets = {
            split: SyntheticDetDataset(self.spec, split, self.sizes[split], self.num_classes) for split in SPLITS
        }
