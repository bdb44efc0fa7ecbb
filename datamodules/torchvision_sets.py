"""Public segmentation sets in their standard torchvision layouts, trained like user folders.

torchvision's dataset classes find (and, with ``download=True``, fetch) the files; the file lists
then go through the same engine as ``datamodule=folder`` (:mod:`datamodules.file_seg`): patch
training with foreground oversampling, whole-image sliding-window evaluation, setup checks, stats.
``download`` defaults to off: nothing is fetched unless asked for.

| datamodule | layout under ``root`` | classes | splits (train / val / test) |
|---|---|---|---|
| ``voc`` | ``VOCdevkit/VOC<year>/{JPEGImages,SegmentationClass,ImageSets/Segmentation}`` | 21, 255 = border (ignored) | train / seeded share of val / rest of val |
| ``oxford_pet`` | ``oxford-iiit-pet/{images,annotations/trimaps,annotations/{trainval,test}.txt}`` | background, pet; trimap border → ignored | seeded split of trainval / test |
| ``cityscapes`` | ``{leftImg8bit,gtFine}/{train,val}/<city>/`` | the 19 train ids; other label ids ignored | train / seeded share of val / rest of val |

VOC and Cityscapes publish no test labels, so their val split is cut in two (``val_share`` for
model selection, the rest for the test metrics) — the test numbers never come from the images
that picked the checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torchvision import datasets

from datamodules.file_seg import FileSegDataModule, SampleFiles

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor"]
CITYSCAPES_CLASSES = [c.name for c in sorted(datasets.Cityscapes.classes, key=lambda c: c.train_id)
                      if 0 <= c.train_id < 255]


def _samples(images: Sequence[Any], masks: Sequence[Any]) -> list[SampleFiles]:
    return [SampleFiles(Path(image).stem, Path(image), Path(mask)) for image, mask in zip(images, masks)]


def _cut(samples: list[SampleFiles], share: float, seed: int, what: str) -> tuple[list[SampleFiles], list[SampleFiles]]:
    """A seeded cut of ``samples`` into (``share``, rest), both non-empty."""
    if len(samples) < 2:
        raise ValueError(f"{what}: {len(samples)} image(s) cannot be cut into two non-empty splits")
    order = np.random.default_rng(seed).permutation(len(samples))
    first = min(max(1, round(share * len(samples))), len(samples) - 1)
    return [samples[k] for k in sorted(order[:first])], [samples[k] for k in sorted(order[first:])]


def _opened(factory: Any, what: str, layout: str, **kwargs: Any) -> Any:
    try:
        return factory(**kwargs)
    except (RuntimeError, FileNotFoundError) as error:
        raise ValueError(f"{what}: dataset not found under root={kwargs.get('root')!s} ({error}); expected the "
                         f"layout {layout}" + ("" if "download" not in kwargs else
                                               ", or set download: true to fetch it")) from None


class _TorchvisionSegDataModule(FileSegDataModule):
    def __init__(self, root: str | Path, val_share: float = 0.5, split_seed: int = 0, **kwargs: Any) -> None:
        if not 0.0 < val_share < 1.0:
            raise ValueError(f"{type(self).__name__}: val_share must be in (0, 1), got {val_share!r}")
        self.root = Path(root).expanduser()
        self.val_share = float(val_share)
        self.split_seed = split_seed
        super().__init__(**kwargs)

    @property
    def source(self) -> str:
        return f"{type(self).__name__} at {self.root}"


class VOCSegDataModule(_TorchvisionSegDataModule):
    """Pascal VOC segmentation (``year`` 2007–2012): 21 classes, border pixels (255) ignored."""

    def __init__(self, root: str | Path, year: str = "2012", download: bool = False, num_classes: int = 21,
                 class_names: Sequence[str] | None = tuple(VOC_CLASSES), **kwargs: Any) -> None:
        self.year = str(year)
        self.download = download
        super().__init__(root, num_classes=num_classes, class_names=class_names, **kwargs)

    def list_samples(self) -> dict[str, list[SampleFiles]]:
        layout = f"root/VOCdevkit/VOC{self.year}/{{JPEGImages,SegmentationClass,ImageSets/Segmentation/{{train,val}}.txt}}"
        splits = {}
        for image_set in ("train", "val"):
            dataset = _opened(datasets.VOCSegmentation, self.source, layout, root=str(self.root), year=self.year,
                              image_set=image_set, download=self.download and image_set == "train")
            splits[image_set] = _samples(dataset.images, dataset.masks)
        val, test = _cut(splits["val"], self.val_share, self.split_seed, f"{self.source} val split")
        return {"train": splits["train"], "val": val, "test": test}


class OxfordPetSegDataModule(_TorchvisionSegDataModule):
    """Oxford-IIIT Pet trimaps as background (trimap 2) vs pet (trimap 1); the border (trimap 3) is ignored.

    ``val_share``: share of ``trainval`` held out for validation; ``test`` is the official test list."""

    def __init__(self, root: str | Path, download: bool = False, num_classes: int = 2,
                 class_names: Sequence[str] | None = ("background", "pet"), val_share: float = 0.1,
                 ignore_index: int = 255, **kwargs: Any) -> None:
        self.download = download
        kwargs.setdefault("mask_values", {1: 1, 2: 0, 3: ignore_index})
        super().__init__(root, num_classes=num_classes, class_names=class_names, val_share=val_share,
                         ignore_index=ignore_index, **kwargs)

    def list_samples(self) -> dict[str, list[SampleFiles]]:
        layout = "root/oxford-iiit-pet/{images/<id>.jpg, annotations/trimaps/<id>.png, annotations/{trainval,test}.txt}"
        splits = {}
        for split in ("trainval", "test"):
            dataset = _opened(datasets.OxfordIIITPet, self.source, layout, root=str(self.root), split=split,
                              target_types="segmentation", download=self.download and split == "trainval")
            splits[split] = _samples(dataset._images, dataset._segs)
        val, train = _cut(splits["trainval"], self.val_share, self.split_seed, f"{self.source} trainval split")
        return {"train": train, "val": val, "test": splits["test"]}


class CityscapesSegDataModule(_TorchvisionSegDataModule):
    """Cityscapes fine annotations mapped from label ids to the 19 train ids; every other id is ignored.

    Cityscapes needs a login to download, so ``root`` must already hold ``leftImg8bit/`` and ``gtFine/``."""

    def __init__(self, root: str | Path, num_classes: int = 19,
                 class_names: Sequence[str] | None = tuple(CITYSCAPES_CLASSES), ignore_index: int = 255,
                 **kwargs: Any) -> None:
        kwargs.setdefault("mask_values", {c.id: (c.train_id if 0 <= c.train_id < 255 else ignore_index)
                                          for c in datasets.Cityscapes.classes if c.id >= 0})
        super().__init__(root, num_classes=num_classes, class_names=class_names, ignore_index=ignore_index, **kwargs)

    def list_samples(self) -> dict[str, list[SampleFiles]]:
        layout = "root/{leftImg8bit,gtFine}/{train,val}/<city>/<city>_<seq>_<frame>_{leftImg8bit,gtFine_labelIds}.png"
        splits = {}
        for split in ("train", "val"):
            dataset = _opened(datasets.Cityscapes, self.source, layout, root=str(self.root), split=split,
                              mode="fine", target_type="semantic")
            pairs = sorted(zip(dataset.images, (targets[0] for targets in dataset.targets)))
            splits[split] = _samples([image for image, _ in pairs], [mask for _, mask in pairs])
        val, test = _cut(splits["val"], self.val_share, self.split_seed, f"{self.source} val split")
        return {"train": splits["train"], "val": val, "test": test}
