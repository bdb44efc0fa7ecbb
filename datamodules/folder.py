"""``datamodule=folder``: the user's own images and masks (docs/contracts.md, "Your data layout").

Layout::

    root/images/<stem>.<png|jpg|tif|tiff|gif|bmp>
    root/masks/<stem>.<png|tif|tiff|gif|bmp>     class id per pixel (0/255 binary masks → 0/1)
    root/roi/<stem>.<...>                        optional: 0 = outside the region of interest → ignored
    root/splits/{train,val,test}.txt             optional: one stem per line

Every image needs a mask with the same stem and vice versa; when ``roi/`` exists every image needs
a roi. Split files list stems (blank lines and ``#`` comments skipped); ``train.txt`` and ``val.txt``
are required when ``splits/`` exists, a missing ``test.txt`` makes the test split equal to val. A
stem named in a split file but absent from ``images/``, or named in two splits, is an error.
Without ``splits/``, a seeded shuffle of the sorted stems is cut by ``split_fractions``
(train, val, test); a test fraction of 0 also reuses val for test.

Everything about decoding, patches, evaluation and checks is in :mod:`datamodules.file_seg`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from common.names import SPLITS
from datamodules.file_seg import FileSegDataModule, SampleFiles
from datamodules.image_io import IMAGE_SUFFIXES, files_by_stem

_LISTED = 10


class FolderSegDataModule(FileSegDataModule):
    """Segmentation on ``root/images`` + ``root/masks`` (+ ``roi``, ``splits``); see the module docstring.

    ``split_fractions``: (train, val, test) shares for the seeded split, ``split_seed`` its seed; the
    other arguments are :class:`~datamodules.file_seg.FileSegDataModule`'s."""

    def __init__(
        self,
        root: str | Path,
        num_classes: int = 2,
        split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        self.root = Path(root).expanduser()
        fractions = [float(f) for f in split_fractions]
        if len(fractions) != 3 or any(f < 0 for f in fractions) or fractions[0] <= 0 or fractions[1] <= 0 \
                or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(f"FolderSegDataModule: split_fractions must be three shares (train, val, test) >= 0 "
                             f"summing to 1 with train and val > 0, got {list(split_fractions)}")
        self.split_fractions = fractions
        self.split_seed = split_seed
        super().__init__(num_classes=num_classes, **kwargs)

    @property
    def source(self) -> str:
        return f"folder dataset {self.root}"

    def list_samples(self) -> dict[str, list[SampleFiles]]:
        if not self.root.is_dir():
            raise ValueError(f"{self.source}: root is not a directory; expected root/images and root/masks")
        folders = {name: self.root / name for name in ("images", "masks")}
        missing = [name for name, path in folders.items() if not path.is_dir()]
        if missing:
            raise ValueError(f"{self.source}: missing folder(s) {missing}; expected root/images/<stem>.<ext> "
                             "and root/masks/<stem>.<ext>")
        images = files_by_stem(folders["images"], IMAGE_SUFFIXES)
        # Masks are listed with every image suffix so that a .jpg mask is reported, not silently skipped.
        masks = files_by_stem(folders["masks"], IMAGE_SUFFIXES)
        if not images:
            raise ValueError(f"{self.source}: no images in {folders['images']} (accepted: {', '.join(IMAGE_SUFFIXES)})")
        _require_pairs(images, masks, "image", "mask", folders["images"], folders["masks"])
        rois: dict[str, Path] = {}
        roi_dir = self.root / "roi"
        if roi_dir.is_dir():
            rois = files_by_stem(roi_dir, IMAGE_SUFFIXES)
            _require_pairs(images, rois, "image", "roi", folders["images"], roi_dir)
        samples = {stem: SampleFiles(stem, images[stem], masks[stem], rois.get(stem)) for stem in images}
        stems = self._split_file_stems(set(samples)) if (self.root / "splits").is_dir() else self._seeded_split(sorted(samples))
        return {split: [samples[stem] for stem in stems[split]] for split in SPLITS}

    def _split_file_stems(self, known: set[str]) -> dict[str, list[str]]:
        folder = self.root / "splits"
        stems: dict[str, list[str]] = {}
        for split in SPLITS:
            path = folder / f"{split}.txt"
            if not path.is_file():
                if split == "test":
                    continue
                raise ValueError(f"{self.source}: {path} is missing; splits/ needs train.txt and val.txt "
                                 "(test.txt optional), or remove splits/ for a seeded split")
            lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
            stems[split] = [line for line in lines if line]
            if not stems[split]:
                raise ValueError(f"{self.source}: {path} lists no stems (empty split); add one stem per line")
            unknown = [stem for stem in stems[split] if stem not in known]
            if unknown:
                raise ValueError(f"{self.source}: {path} names stems without an image in images/: "
                                 f"{_shown(unknown)}")
            doubled = sorted({stem for stem in stems[split] if stems[split].count(stem) > 1})
            if doubled:
                raise ValueError(f"{self.source}: {path} lists stems more than once: {_shown(doubled)}")
        for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = sorted(set(stems.get(first, ())) & set(stems.get(second, ())))
            if shared:
                raise ValueError(f"{self.source}: stems in both splits/{first}.txt and splits/{second}.txt "
                                 f"(data leak): {_shown(shared)}")
        stems.setdefault("test", stems["val"])
        return stems

    def _seeded_split(self, stems: list[str]) -> dict[str, list[str]]:
        _, val_share, test_share = self.split_fractions
        n = len(stems)
        n_val = max(1, round(val_share * n))
        n_test = max(1, round(test_share * n)) if test_share > 0 else 0
        if n - n_val - n_test < 1:
            raise ValueError(f"{self.source}: {n} image(s) cannot fill train, val and test with split_fractions "
                             f"{self.split_fractions} (empty split); add images or set split_fractions "
                             "with a test share of 0 (test reuses val)")
        order = [stems[k] for k in np.random.default_rng(self.split_seed).permutation(n)]
        val, test, train = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
        return {"train": sorted(train), "val": sorted(val), "test": sorted(test) if test else sorted(val)}


def _shown(stems: list[str]) -> str:
    return ", ".join(stems[:_LISTED]) + (f" … ({len(stems)} in all)" if len(stems) > _LISTED else "")


def _require_pairs(first: dict[str, Path], second: dict[str, Path], first_name: str, second_name: str,
                   first_dir: Path, second_dir: Path) -> None:
    lonely_first = sorted(set(first) - set(second))
    lonely_second = sorted(set(second) - set(first))
    problems = []
    if lonely_first:
        problems.append(f"{first_name}(s) without a {second_name} in {second_dir}: {_shown(lonely_first)}")
    if lonely_second:
        problems.append(f"{second_name}(s) without an {first_name} in {first_dir}: {_shown(lonely_second)}")
    if problems:
        raise ValueError("; ".join(problems) + " — stems must match one to one")
