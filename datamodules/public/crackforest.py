"""``datamodule=crackforest``: the CrackForest dataset (CFD; Shi et al., IEEE T-ITS 2016) in its published layout.

Layout under ``root`` (the ``CrackForest-dataset`` repository as distributed)::

    root/image/<NNN>.jpg          001–118, RGB 480x320 road-surface photographs
    root/groundTruth/<NNN>.mat    MATLAB v5: a 1x1 cell ``groundTruth`` holding a struct with
                                  ``Segmentation`` (uint8, 1 = background, 2 = crack) and ``Boundaries``
    root/seg/                     present in some copies: ignored

The ``.mat`` files are read with ``scipy.io.loadmat``. Each ``Segmentation`` is written once into a
PNG in a content-keyed cache (``cache_dir``, file name = SHA-256 of the ``.mat``'s bytes), so the
shared file-segmentation engine reads it like any mask and a changed ``.mat`` is converted again. The
PNG keeps the stored values (1, 2); ``mask_values`` maps them to background / crack. Unreadable
``.mat`` files, a missing ``groundTruth`` / ``Segmentation``, and a segmentation whose size differs from
its image are collected and raised together, each naming its ``.mat`` file.

CFD publishes no split: ``splits/crackforest.json`` fixes train/val/test 70/15/15 of 001–118
(``scripts/splits/crackforest.py``).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

from common.names import SPLITS
from datamodules.file_seg import SampleFiles
from datamodules.image_io import IMAGE_SUFFIXES, ImageReadError, files_by_stem, probe
from datamodules.public.deepcrack import paired_samples
from datamodules.public.download import github_master
from datamodules.public.layout import require_paths
from datamodules.public.seg_adapter import PublishedSegDataModule
from datamodules.public.splits import SplitSpec, resolve_split
from datamodules.seg_samples import DataProblems

LAYOUT = "root/image/<NNN>.jpg + root/groundTruth/<NNN>.mat (MATLAB struct groundTruth{1}.Segmentation)"
SOURCE = github_master("crackforest", "cuilimeng/CrackForest-dataset")
DEFAULT_CACHE = Path("~/.cache/lossbench/crackforest")


class MatReadError(ValueError):
    """A ``.mat`` ground truth that cannot be read as ``groundTruth{1}.Segmentation``; names the file."""


def read_segmentation(path: Path) -> np.ndarray:
    """``groundTruth{1}.Segmentation`` of a CFD ``.mat`` file as a 2-D uint8 array of the stored values."""
    try:
        content = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as error:  # scipy raises ValueError, TypeError, OSError, … on damaged files
        raise MatReadError(f"{path}: not a readable MATLAB v5 file ({type(error).__name__}: {error})") from None
    if "groundTruth" not in content:
        keys = sorted(k for k in content if not k.startswith("__"))
        raise MatReadError(f"{path}: no variable 'groundTruth' (found {keys}); expected groundTruth{{1}}.Segmentation")
    ground_truth = content["groundTruth"]
    while isinstance(ground_truth, np.ndarray) and ground_truth.dtype == object:  # the 1x1 cell (squeezed or not)
        if ground_truth.size != 1:
            raise MatReadError(f"{path}: groundTruth holds {ground_truth.size} annotations; expected one (a 1x1 cell)")
        ground_truth = ground_truth.item()
    segmentation = getattr(ground_truth, "Segmentation", None)
    if segmentation is None:
        raise MatReadError(f"{path}: groundTruth{{1}} has no field 'Segmentation' (fields: "
                           f"{list(getattr(ground_truth, '_fieldnames', []))})")
    segmentation = np.asarray(segmentation)
    if segmentation.ndim != 2 or not np.issubdtype(segmentation.dtype, np.number) or segmentation.min() < 0 \
            or segmentation.max() > 255:
        raise MatReadError(f"{path}: groundTruth{{1}}.Segmentation is {segmentation.dtype} of shape "
                           f"{segmentation.shape}; expected a 2-D array of label values 1 (background), 2 (crack)")
    return segmentation.astype(np.uint8)


def cached_mask(mat: Path, cache_dir: Path) -> Path:
    """The PNG of ``mat``'s segmentation in ``cache_dir`` (named by the ``.mat``'s SHA-256), written once."""
    key = hashlib.sha256(mat.read_bytes()).hexdigest()[:32]
    target = cache_dir / f"{key}.png"
    if not target.is_file():
        segmentation = read_segmentation(mat)
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(suffix=".png", dir=cache_dir)
        os.close(handle)
        try:
            Image.fromarray(segmentation).save(temporary)
            os.replace(temporary, target)
        finally:
            Path(temporary).unlink(missing_ok=True)
    return target


class CrackForestDataModule(PublishedSegDataModule):
    """CrackForest crack segmentation (binary: background, crack) from its published layout (module docstring).

    ``cache_dir``: where the converted masks are kept (``null``: ``~/.cache/lossbench/crackforest``).
    ``download``: fetch the repository archive when ``root`` lacks the layout; ``archive_sha256`` pins its
    digest (none is published). Other arguments:
    :class:`~datamodules.public.seg_adapter.PublishedSegDataModule`'s."""

    dataset = "crackforest"
    download_source = SOURCE
    classes = ("background", "crack")
    stored_values = {1: 0, 2: 1}

    def __init__(self, root: str | Path, cache_dir: str | Path | None = None, **kwargs: Any) -> None:
        self.cache_dir = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE).expanduser()
        super().__init__(root, **kwargs)

    @staticmethod
    def present(path: Path) -> bool:
        return (path / "groundTruth").is_dir()

    def list_samples(self) -> dict[str, list[SampleFiles]]:
        require_paths(self.dataset, self.root, LAYOUT, ["image", "groundTruth"],
                      hint="fix root, or set datamodule.download=true to fetch the published repository")
        image_dir, truth_dir = self.root / "image", self.root / "groundTruth"
        pairs, problems = paired_samples(files_by_stem(image_dir, IMAGE_SUFFIXES), files_by_stem(truth_dir, (".mat",)),
                                         image_dir, truth_dir)
        samples: dict[str, SampleFiles] = {}
        for stem, files in pairs.items():
            try:
                mask = cached_mask(files.mask, self.cache_dir)
                with Image.open(mask) as converted:
                    width, height = converted.size
                info = probe(files.image)
            except (MatReadError, ImageReadError) as error:
                problems.append(str(error))
                continue
            if (info.height, info.width) != (height, width):
                problems.append(f"{files.mask}: Segmentation is {width}x{height} (WxH), its image {files.image.name} "
                                f"is {info.width}x{info.height}")
                continue
            samples[stem] = SampleFiles(stem, files.image, mask)
        if problems:
            raise DataProblems(self.source, problems)
        ids, self.split_info = resolve_split(SplitSpec.load(self.dataset), sorted(samples), self.source)
        return {split: [samples[stem] for stem in ids[split]] for split in SPLITS}
