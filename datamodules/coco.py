"""COCO-format detection data: a folder of images plus a COCO ``annotations.json``.

Layout (``root`` and file names are config keys)::

    root/images/<file_name from the json>
    root/annotations.json                      every image, or the training images
    root/<val_annotations>, <test_annotations> optional; a split without its own file is carved
                                               from annotations.json by a seeded split of image ids

Reading goes through torchvision's ``CocoDetection`` (pycocotools index) with images read by
:mod:`datamodules.image_io` (8/16-bit, grey replicated to RGB). Resolution follows
:mod:`datamodules.resolution`: native pixels up to the cap ``image_size`` (larger images are
downscaled, none upscaled); training reads random ``train_crop`` windows, optionally at a random
scale in ``scale_range``, then the ``augment`` pipeline of :mod:`datamodules.augment`
(``transforms.v2``, so boxes follow crops, flips, rotations and affine warps; boxes pushed out of
the image are dropped with their labels). Validation and test images are returned whole and
unscaled: the detector applies the same cap and reports boxes in original pixels.

Targets: ``boxes`` float32 (K, 4) xyxy px, ``labels`` int64 in ``[1, num_classes]`` (category ids
sorted ascending → 1, 2, …; ``class_names`` keeps their names), ``iscrowd`` int64 (K,) for val/test,
and for val/test ``case``: the image's file stem (it names the image in the per-case metrics).
Crowd annotations are left out of training targets and kept, flagged, for evaluation (COCO
counts a detection on a crowd region as neither true nor false positive).

Checked when the datamodule is set up: an unknown ``category_id``, a negative width/height or a
malformed ``bbox`` → ``ValueError`` naming the image id and annotation id. Boxes reaching outside
their image are clipped to it and zero-area boxes dropped, with one warning that counts them.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.datasets import CocoDetection
from torchvision.transforms import v2

from common.names import SPLITS
from datamodules.augment import build_augment
from datamodules.base import BaseDataModule
from datamodules.box_stats import BoxStatistics
from datamodules.det_collate import collate_detection
from datamodules.image_io import read_image, to_float_tensor
from datamodules.resolution import downscale_factor, training_resolution


def category_labels(categories: Sequence[Mapping[str, Any]]) -> tuple[dict[int, int], list[str]]:
    """COCO categories → (``{category_id: label}`` with labels 1..K by ascending id, names by label)."""
    ordered = sorted(categories, key=lambda c: int(c["id"]))
    return {int(c["id"]): k for k, c in enumerate(ordered, start=1)}, [str(c.get("name", c["id"])) for c in ordered]


def coco_target(
    annotations: Sequence[Mapping[str, Any]],
    image: Mapping[str, Any],
    label_of: Mapping[int, int],
    keep_crowd: bool,
) -> tuple[dict[str, torch.Tensor], int]:
    """Targets of one image from its COCO annotations; returns ``(target, (clipped, dropped))``: boxes
    reaching outside the image are clipped to it; a box with no area inside the image (zero width or
    height, or lying wholly outside) is dropped — both counted so that setup reports them by file.

    Raises ``ValueError`` (naming image and annotation ids) for unknown categories, malformed
    ``bbox`` entries and negative sizes.
    """
    height, width = int(image["height"]), int(image["width"])
    boxes, labels, crowd, clipped, dropped = [], [], [], 0, 0
    for ann in annotations:
        where = f"image id {image['id']}, annotation id {ann.get('id')}"
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(np.isfinite(float(v)) for v in bbox):
            raise ValueError(f"COCO annotations: {where}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        if w < 0 or h < 0:
            raise ValueError(f"COCO annotations: {where}: negative box size (w={w}, h={h}) in bbox {bbox!r}")
        category = int(ann.get("category_id", -1))
        if category not in label_of:
            raise ValueError(
                f"COCO annotations: {where}: unknown category_id {category}; categories: {sorted(label_of)}"
            )
        is_crowd = int(bool(ann.get("iscrowd", 0)))
        if is_crowd and not keep_crowd:
            continue
        x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + w, float(width)), min(y + h, float(height))
        if x2 <= x1 or y2 <= y1:
            dropped += 1
            continue
        clipped += (x1, y1, x2, y2) != (x, y, x + w, y + h)
        boxes.append((x1, y1, x2, y2))
        labels.append(label_of[category])
        crowd.append(is_crowd)
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }
    if keep_crowd:
        target["iscrowd"] = torch.tensor(crowd, dtype=torch.int64)
    return target, (clipped, dropped)


class CocoBoxes(CocoDetection):
    """``CocoDetection`` restricted to ``image_ids``, yielding ``(image float32 (3, H, W) in [0, 1],
    target)`` as in :func:`coco_target`; ``augment`` (a v2 transform) moves image and boxes jointly."""

    def __init__(
        self,
        image_root: str | Path,
        ann_file: str | Path,
        image_ids: Sequence[int] | None,
        label_of: Mapping[int, int],
        keep_crowd: bool,
        augment: v2.Transform | None = None,
    ) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            super().__init__(str(image_root), str(ann_file))
        if image_ids is not None:
            self.ids = [int(i) for i in image_ids]
        self.label_of, self.keep_crowd, self.augment = dict(label_of), keep_crowd, augment

    def _load_image(self, id: int) -> torch.Tensor:
        return to_float_tensor(read_image(Path(self.root) / self.coco.loadImgs(id)[0]["file_name"]), channels=3)

    def target(self, index: int) -> tuple[dict[str, torch.Tensor], tuple[int, int]]:
        image_id = self.ids[index]
        return coco_target(self._load_target(image_id), self.coco.imgs[image_id], self.label_of, self.keep_crowd)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image = self._load_image(self.ids[index])
        target, _ = self.target(index)
        if self.augment is None:
            return image, {**target, "case": Path(self.coco.imgs[self.ids[index]]["file_name"]).stem}
        sample = {
            "image": tv_tensors.Image(image),
            "boxes": tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=tuple(image.shape[-2:])),
            "labels": target["labels"],
        }
        out = self.augment(sample)
        return out["image"].as_subclass(torch.Tensor), {
            "boxes": out["boxes"].as_subclass(torch.Tensor), "labels": out["labels"],
        }


class CocoDataModule(BaseDataModule):
    """COCO-format detection data (see the module docstring for layout and checks).

    ``num_classes`` must equal the number of categories in the json (the model config reads it
    before any file is opened); ``class_names: null`` takes the category names. ``image_size`` is
    the resolution cap: images keep their native pixels up to a longer side of ``image_size`` and
    larger ones are downscaled to it (the detector applies the same rule and maps detections back
    to the original pixels, so metrics use the original box areas). ``train_crop`` (px or null)
    and ``scale_range`` (``[low, high]`` or null) are the training side of that policy.
    ``split_seed`` seeds the carved val/test split (null: ``seed``, which also orders the training
    batches); a fixed one keeps the split — and the anchors fitted to it — equal across seeds.
    :meth:`box_statistics` reports the training boxes for the anchor fit.
    """

    collate_fn = staticmethod(collate_detection)
    owner = "coco"

    def __init__(
        self,
        root: str,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        images: str = "images",
        annotations: str = "annotations.json",
        val_annotations: str | None = None,
        test_annotations: str | None = None,
        val_share: float = 0.1,
        test_share: float = 0.1,
        image_size: int = 512,
        augment: Mapping[str, Any] | None = None,
        seed: int = 1,
        train_crop: int | None = None,
        scale_range: Sequence[float] | None = None,
        split_seed: int | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__(seed=seed, batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory,
                         persistent_workers=persistent_workers)
        self.root, self.images = Path(root), images
        if not (self.root / annotations).is_file():
            raise ValueError(f"coco: annotations file {self.root / annotations} not found (root={root!r}, annotations={annotations!r})")
        if not (self.root / images).is_dir():
            raise ValueError(f"coco: image folder {self.root / images} not found (root={root!r}, images={images!r})")
        for name, share in (("val_share", val_share), ("test_share", test_share)):
            if not 0.0 <= share < 1.0:
                raise ValueError(f"coco: {name} must be in [0, 1), got {share!r}")
        if val_share + test_share >= 1.0:
            raise ValueError(f"coco: val_share + test_share must be < 1, got {val_share} + {test_share}")
        if not (isinstance(image_size, int) and image_size >= 32):
            raise ValueError(f"coco: image_size must be an int >= 32, got {image_size!r}")
        if train_crop is not None and not (isinstance(train_crop, int) and 32 <= train_crop):
            raise ValueError(f"coco: train_crop must be null or an int >= 32, got {train_crop!r}")
        if scale_range is not None and not (len(scale_range) == 2 and 0 < scale_range[0] <= scale_range[1]):
            raise ValueError(f"coco: scale_range must be null or [low, high] with 0 < low <= high, got {scale_range!r}")
        self.files = {"train": self.root / annotations, "val": _optional(self.root, val_annotations, "val_annotations"),
                      "test": _optional(self.root, test_annotations, "test_annotations")}
        self.label_of, names = self._categories()
        if num_classes != len(names):
            raise ValueError(
                f"coco: num_classes={num_classes} but {annotations} has {len(names)} categories ({names[:10]}…); "
                f"set datamodule.num_classes={len(names)}"
            )
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"coco: class_names has {len(class_names)} names, expected num_classes={num_classes}")
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names is not None else names
        self.image_size, self.augment_spec = int(image_size), dict(augment or {})
        self.shares = {"val": float(val_share), "test": float(test_share)}
        self.split_seed = int(seed if split_seed is None else split_seed)
        self.train_crop = None if train_crop is None else int(train_crop)
        self.scale_range = None if scale_range is None else (float(scale_range[0]), float(scale_range[1]))

    def _categories(self) -> tuple[dict[int, int], list[str]]:
        maps = {}
        for split, path in self.files.items():
            if path is not None:
                maps[split] = category_labels(json.loads(path.read_text()).get("categories", []))
        label_of, names = maps["train"]
        if not label_of:
            raise ValueError(f"coco: {self.files['train']} has no categories")
        for split, other in maps.items():
            if other[0] != label_of:
                raise ValueError(f"coco: {self.files[split]} has other category ids than {self.files['train']}: "
                                 f"{sorted(other[0])} vs {sorted(label_of)}")
        return label_of, names

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        image_root = self.root / self.images
        carved = self._carve_ids()
        for split in SPLITS:
            own_file = self.files[split] if split != "train" else None
            ann_file = own_file or self.files["train"]
            ids = None if own_file is not None else carved[split]
            augment = self._train_transform() if split == "train" else None
            self.datasets[split] = CocoBoxes(image_root, ann_file, ids, self.label_of, split != "train", augment)
        self._check_annotations()

    def _carve_ids(self) -> dict[str, list[int]]:
        """A seeded split of the main file's image ids into train and the splits without a file."""
        with contextlib.redirect_stdout(io.StringIO()):
            ids = np.array(sorted(CocoDetection(str(self.root), str(self.files["train"])).coco.imgs), dtype=np.int64)
        order = np.random.default_rng(self.split_seed).permutation(len(ids))
        counts = {s: int(round(self.shares[s] * len(ids))) if self.files[s] is None else 0 for s in ("val", "test")}
        val = ids[order[: counts["val"]]]
        test = ids[order[counts["val"]: counts["val"] + counts["test"]]]
        train = ids[order[counts["val"] + counts["test"]:]]
        return {"train": sorted(train.tolist()), "val": sorted(val.tolist()), "test": sorted(test.tolist())}

    def _train_transform(self) -> v2.Transform:
        augment = build_augment(self.augment_spec)
        steps = training_resolution(self.image_size, self.train_crop, self.scale_range)
        return v2.Compose([*steps, *([augment] if augment is not None else []), v2.SanitizeBoundingBoxes()])

    def box_statistics(self) -> BoxStatistics:
        """The training split's boxes in network pixels (scaled by the resolution cap), read from the
        annotations alone (no image is decoded)."""
        self.setup("fit")
        dataset = self.datasets["train"]
        boxes, downscaled, in_crop = [], 0, []
        for index, image_id in enumerate(dataset.ids):
            info = dataset.coco.imgs[image_id]
            factor = downscale_factor(info["height"], info["width"], self.image_size)
            downscaled += factor < 1.0
            boxes.append(dataset.target(index)[0]["boxes"].double().numpy() * factor)
            if self.train_crop is not None:  # the share of the (capped) image one random crop covers
                area = info["height"] * info["width"] * factor**2
                in_crop.append(len(boxes[-1]) * min(1.0, self.train_crop**2 / max(area, 1.0)))
        return BoxStatistics(np.concatenate(boxes) if boxes else np.zeros((0, 4)), len(dataset.ids), int(downscaled),
                             self.image_size, float(np.mean(in_crop)) if in_crop else None)

    def _check_annotations(self) -> None:
        """One warning naming every image file whose boxes were clipped or dropped, with the counts."""
        fixes = []
        for split, dataset in self.datasets.items():
            for index, image_id in enumerate(dataset.ids):
                clipped, dropped = dataset.target(index)[1]
                if clipped or dropped:
                    name = dataset.coco.imgs[image_id]["file_name"]
                    fixes.append(f"{name} ({split}): {clipped} clipped, {dropped} dropped")
        if fixes:
            shown = "; ".join(fixes[:20]) + (f"; … and {len(fixes) - 20} more files" if len(fixes) > 20 else "")
            warnings.warn(f"coco: {len(fixes)} image(s) hold boxes reaching outside the image (clipped to it) or "
                          f"without area inside it (zero width/height or wholly outside: dropped): {shown}",
                          stacklevel=2)


def _optional(root: Path, name: str | None, key: str) -> Path | None:
    if name is None:
        return None
    path = root / name
    if not path.is_file():
        raise ValueError(f"coco: {key}={name!r}: file {path} not found")
    return path
