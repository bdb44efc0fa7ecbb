"""``datamodule=deepcrack``: DeepCrack (Liu et al., Neurocomputing 2019) in its published layout.

Layout under ``root`` (the folder holding the four folders; the published ``DeepCrack.zip`` may wrap
them in a ``DeepCrack/`` folder, which is accepted as well)::

    root/train_img/<id>.jpg    RGB, 544x384
    root/train_lab/<id>.png    crack annotation, paired with its image by file stem
    root/test_img/<id>.jpg
    root/test_lab/<id>.png

Labels come as 8-bit PNGs holding 0/255 and as 1-bit PNGs (read as 0/1), so the default
``mask_values`` maps 0 → background and 1, 255 → crack; any other stored value is an error naming
the file (all 300 training labels of the published set hold exactly 0 and 255; a copy re-saved
through JPEG would hold values near 0 and 255 — map them explicitly with ``mask_values``).

Splits (``split``): ``official`` — the publisher's train (300, minus the committed validation carve
of 45) and test (237) folders, from ``splits/deepcrack.json``; ``dev`` — train/val/test all carved
from the 300 training images (``splits/deepcrack_dev.json``), for copies without the test folders.
Both carves are stratified by the image's crack-pixel-share tertile (``scripts/splits/deepcrack.py``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from common.names import SPLITS
from datamodules.file_seg import SampleFiles
from datamodules.image_io import IMAGE_SUFFIXES, files_by_stem
from datamodules.public.download import Archive, Source
from datamodules.public.layout import LayoutError
from datamodules.public.seg_adapter import PublishedSegDataModule
from datamodules.public.splits import SplitSpec, resolve_split
from datamodules.seg_samples import DataProblems

LAYOUT = "root/{train_img,test_img}/<id>.jpg + root/{train_lab,test_lab}/<id>.png (pairs share the file stem)"
SOURCE = Source(
    dataset="deepcrack",
    archives=(Archive("https://github.com/yhlleo/DeepCrack/raw/master/dataset/DeepCrack.zip", "DeepCrack.zip"),),
    homepage="https://github.com/yhlleo/DeepCrack",
)
SPLIT_FILES = {"official": "deepcrack", "dev": "deepcrack_dev"}
_WRAPPER = "DeepCrack"  # the folder the published zip may hold the four folders in


def data_root(root: Path) -> Path:
    """``root`` itself, or its ``DeepCrack/`` folder when only that holds ``train_img`` (the zip's wrapper)."""
    if not (root / "train_img").is_dir() and (root / _WRAPPER / "train_img").is_dir():
        return root / _WRAPPER
    return root


def paired_samples(images: Mapping[str, Path], labels: Mapping[str, Path], image_dir: Path,
                   label_dir: Path) -> tuple[dict[str, SampleFiles], list[str]]:
    """Image/label pairs by file stem, and one problem line per file that has no partner."""
    problems = [f"{images[stem]}: no label with stem {stem!r} in {label_dir}"
                for stem in sorted(set(images) - set(labels))]
    problems += [f"{labels[stem]}: no image with stem {stem!r} in {image_dir}"
                 for stem in sorted(set(labels) - set(images))]
    return {stem: SampleFiles(stem, images[stem], labels[stem]) for stem in sorted(set(images) & set(labels))}, problems


class DeepCrackDataModule(PublishedSegDataModule):
    """DeepCrack crack segmentation (binary: background, crack) from its published layout (module docstring).

    ``split``: ``official`` (publisher train/test, committed val carve) or ``dev`` (all three carved from
    the training images). ``download``: fetch the published zip when ``root`` lacks the layout;
    ``archive_sha256`` pins its digest (the publisher publishes none). Other arguments:
    :class:`~datamodules.file_seg.FileSegDataModule`'s."""

    dataset = "deepcrack"
    download_source = SOURCE
    classes = ("background", "crack")
    stored_values = {0: 0, 1: 1, 255: 1}

    def __init__(self, root: str | Path, split: str = "official", **kwargs: Any) -> None:
        if split not in SPLIT_FILES:
            raise ValueError(f"{type(self).__name__}: split={split!r}; accepted: {sorted(SPLIT_FILES)}")
        self.split = split
        super().__init__(root, **kwargs)

    @staticmethod
    def present(path: Path) -> bool:
        return (data_root(path) / "train_img").is_dir()

    def list_samples(self) -> dict[str, list[SampleFiles]]:
        root = data_root(self.root)
        folders = ["train_img", "train_lab"] + (["test_img", "test_lab"] if self.split == "official" else [])
        missing = [name for name in folders if not (root / name).is_dir()]
        if missing:
            hint = ("this copy has no test folders: use datamodule.split=dev (train/val/test carved from the "
                    "training images)" if self.split == "official" and (root / "train_img").is_dir()
                    else "fix root, or set datamodule.download=true to fetch the published zip")
            raise LayoutError(self.dataset, self.root, LAYOUT, missing=[f"{name}/" for name in missing], hint=hint)
        samples: dict[str, SampleFiles] = {}
        publisher: dict[str, str] = {}
        problems: list[str] = []
        for prefix, split in (("train", "train"), ("test", "test")):
            if f"{prefix}_img" not in folders:
                continue
            image_dir, label_dir = root / f"{prefix}_img", root / f"{prefix}_lab"
            # Labels are listed with every image suffix, so a .jpg label is reported (masks must be lossless).
            found, unpaired = paired_samples(files_by_stem(image_dir, IMAGE_SUFFIXES),
                                             files_by_stem(label_dir, IMAGE_SUFFIXES), image_dir, label_dir)
            problems += unpaired
            doubled = sorted(set(found) & set(samples))
            problems += [f"{found[stem].image}: id {stem!r} is in train_img/ and test_img/" for stem in doubled]
            samples.update(found)
            publisher.update({stem: split for stem in found})
        if problems:
            raise DataProblems(self.source, problems)
        spec = SplitSpec.load(SPLIT_FILES[self.split])
        ids, self.split_info = resolve_split(spec, sorted(samples), self.source,
                                             publisher if self.split == "official" else None)
        return {split: [samples[stem] for stem in ids[split]] for split in SPLITS}
