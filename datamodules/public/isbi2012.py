"""``datamodule=isbi2012``: the ISBI-2012 EM segmentation challenge stacks, as distributed.

Layout under ``root``::

    root/train-volume.tif   30-page multi-page TIFF, 512x512 8-bit serial-section TEM of the Drosophila VNC
    root/train-labels.tif   30 pages, 255 = cell interior, 0 = membrane
    root/test-volume.tif    optional: 30 pages without labels, ignored

Classes: background (cell interior, stored 255) and **membrane** (stored 0) as class 1, the foreground —
the membranes are what the challenge segments and what losses are compared on (~22 % of the pixels).
Any other stored label value is an error naming the file and page.

Each page is one 2-D case, ``slice_00`` … ``slice_29``: the pages are extracted once into PNGs in a
content-keyed cache folder (``cache_dir/<SHA-256 of the two TIFFs>/{image,label}/slice_NN.png``, written
into a temporary folder renamed when complete), then read by
:class:`~datamodules.file_seg.FileSegDataModule` unchanged. Page-count and page-size mismatches and
unreadable TIFFs are all reported together before training.

Split (committed ``splits/isbi2012.json``): contiguous blocks, slices 0–19 train, 20–24 val, 25–29
test — neighbouring sections are 50 nm apart and look alike, so a random split would leak near-copies of
training slices into val/test. The publisher's test stack has no public labels.

Download: the challenge site needs a registration now; ``download: true`` explains where to get the files.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from common.names import SPLITS
from datamodules.file_seg import SampleFiles
from datamodules.public.download import Source
from datamodules.public.layout import require_paths
from datamodules.public.seg_adapter import PublishedSegDataModule
from datamodules.public.splits import SplitSpec, resolve_split
from datamodules.seg_samples import DataProblems

DATASET = "isbi2012"
LAYOUT = "root/train-volume.tif + root/train-labels.tif (30-page TIFF stacks; optional test-volume.tif is ignored)"
FILES = ("train-volume.tif", "train-labels.tif")
STORED = {"membrane": 0, "interior": 255}
DEFAULT_CACHE = Path("~/.cache/lossbench/isbi2012")
SOURCE = Source(
    dataset=DATASET,
    homepage="https://imagej.net/events/isbi-2012-segmentation-challenge",
    manual=("The ISBI-2012 challenge site (https://imagej.net/events/isbi-2012-segmentation-challenge, data on "
            "the challenge server) needs a registration. Download train-volume.tif and train-labels.tif (the "
            "30-slice stacks; test-volume.tif is optional) and put them directly under root: "
            "root/train-volume.tif, root/train-labels.tif."),
)


def case_id(page: int) -> str:
    return f"slice_{page:02d}"


def read_stack(path: Path) -> tuple[np.ndarray | None, str | None]:
    """A multi-page TIFF as ``(pages, H, W)``, or ``(None, problem)`` naming the file."""
    try:
        stack = tifffile.imread(path)
    except Exception as error:  # tifffile raises many types for damaged files
        return None, f"{path}: not a readable TIFF stack ({type(error).__name__}: {error})"
    if stack.size == 0:
        return None, f"{path}: not a readable TIFF stack (no image data: truncated or damaged)"
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        return None, f"{path}: shape {list(stack.shape)}; expected gray pages (pages, H, W)"
    return stack, None


def extract_pages(root: Path, cache_dir: Path) -> Path:
    """The folder of ``image/slice_NN.png`` + ``label/slice_NN.png`` extracted from ``root``'s stacks, keyed by
    their content; ``DataProblems`` naming the files when a stack is unreadable or the two disagree."""
    digest = hashlib.sha256()
    for name in FILES:
        with open(root / name, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    target = cache_dir / digest.hexdigest()[:32]
    if (target / "complete").is_file():
        return target
    source = f"{DATASET} at {root}"
    (images, image_problem), (labels, label_problem) = (read_stack(root / name) for name in FILES)
    problems = [p for p in (image_problem, label_problem) if p]
    if not problems:
        if len(images) != len(labels):
            problems.append(f"{root / FILES[1]}: {len(labels)} page(s), {FILES[0]} has {len(images)}; every slice "
                            "needs its label page")
        elif images.shape[1:] != labels.shape[1:]:
            problems.append(f"{root / FILES[1]}: pages are {labels.shape[2]}x{labels.shape[1]} (WxH), {FILES[0]}'s "
                            f"are {images.shape[2]}x{images.shape[1]}")
        for page, label in enumerate(labels if not problems else ()):
            odd = np.setdiff1d(np.unique(label), list(STORED.values()))
            if odd.size:
                problems.append(f"{root / FILES[1]} page {page}: values {odd[:5].tolist()}; expected 0 (membrane) "
                                "and 255 (cell interior)")
        if images.dtype != np.uint8 and not problems:
            problems.append(f"{root / FILES[0]}: {images.dtype} pages; expected 8-bit gray")
    if problems:
        raise DataProblems(source, problems)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache_dir))
    try:
        for folder, stack in (("image", images), ("label", labels)):
            (staging / folder).mkdir()
            for page, array in enumerate(stack):
                Image.fromarray(np.ascontiguousarray(array)).save(staging / folder / f"{case_id(page)}.png")
        (staging / "complete").write_text(f"{len(images)} pages\n")
        try:
            os.replace(staging, target)
        except OSError:  # another process finished the same extraction first
            if not (target / "complete").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class ISBI2012DataModule(PublishedSegDataModule):
    """ISBI-2012 EM membranes (binary: background = cell interior, membrane) from the stacks (module docstring).

    ``cache_dir``: where the extracted pages are kept (``null``: ``~/.cache/lossbench/isbi2012``).
    ``download``: the dataset needs a registration, so ``true`` only says where to get it. Other arguments:
    :class:`~datamodules.public.seg_adapter.PublishedSegDataModule`'s."""

    dataset = DATASET
    download_source = SOURCE
    classes = ("background", "membrane")
    stored_values = {STORED["interior"]: 0, STORED["membrane"]: 1}

    def __init__(self, root: str | Path, cache_dir: str | Path | None = None, **kwargs: Any) -> None:
        self.cache_dir = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE).expanduser()
        super().__init__(root, **kwargs)

    @staticmethod
    def present(path: Path) -> bool:
        return all((path / name).is_file() for name in FILES)

    def list_samples(self) -> dict[str, list[SampleFiles]]:
        require_paths(DATASET, self.root, LAYOUT, list(FILES), hint=SOURCE.manual)
        pages = extract_pages(self.root, self.cache_dir)
        samples = {path.stem: SampleFiles(path.stem, path, pages / "label" / path.name)
                   for path in sorted((pages / "image").glob("slice_*.png"))}
        ids, self.split_info = resolve_split(SplitSpec.load(DATASET), sorted(samples), self.source)
        return {split: [samples[stem] for stem in ids[split]] for split in SPLITS}
