"""Data Science Bowl 2018 nuclei (Kaggle ``stage1_train``) for segmentation and detection.

Layout, as Kaggle distributes it (``root`` is the folder holding ``stage1_train/``, or ``stage1_train/``
itself)::

    stage1_train/<id>/images/<id>.png       RGBA (alpha dropped), RGB or gray
    stage1_train/<id>/masks/<mask id>.png   one binary PNG per nucleus (any value > 0 is the nucleus)

Derived once per case and cached on disk (:class:`DerivedCache`), keyed by the name, size and
modification time of the case's image and mask files (and the derivation version), so an edited or
replaced mask re-derives its case and nothing else:

- the **semantic mask** (0 background, 1 nucleus): the union of the case's masks;
- the **instance map** (uint16, 0 background, k = the k-th mask file in sorted name order); where masks
  overlap, the **smaller nucleus keeps the pixel** (a large mask never hides a small one);
- the **boxes**: ``[x1, y1, x2, y2]`` in pixel edges (``x2 = last column + 1``) of each mask's own pixels,
  so an overlap never shrinks a box.

The cache lies in ``cache_dir``, else ``<root>/.lossbench_cache/dsb2018`` when ``root`` is writable, else
``~/.cache/lossbench/dsb2018/<hash of root's path>``.

``stage1_train`` has no labelled test set: train / val / test are carved from it by the committed split
``splits/dsb2018.json`` (made by ``scripts/splits/dsb2018.py``: seeded and stratified by image size and
:func:`modality`); cases it does not list go to the hash rule of :mod:`datamodules.public.splits`.

One config, both tasks (``configs/datamodule/dsb2018.yaml``): :func:`dsb2018` builds
:class:`DSB2018SegDataModule` (the file-based segmentation engine, classes background / nucleus) for
``task=segmentation`` and :class:`DSB2018DetDataModule` (the COCO machinery on COCO files written from
the derived boxes, one class ``nucleus``) for ``task=detection``, from the same images and split.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from common.names import SPLITS
from datamodules.base import invalid
from datamodules.coco import CocoDataModule
from datamodules.file_seg import FileSegDataModule, SampleFiles
from datamodules.image_io import ImageReadError, read_image, read_mask
from datamodules.public.download import Source, ensure_dataset
from datamodules.public.layout import LayoutError
from datamodules.public.splits import SplitInfo, SplitSpec, resolve_split
from datamodules.seg_samples import DataProblems

DATASET = "dsb2018"
LAYOUT = ("stage1_train/<id>/images/<id>.png and stage1_train/<id>/masks/<mask id>.png (one binary PNG per "
          "nucleus); root = the folder holding stage1_train/, or stage1_train/ itself")
SOURCE = Source(
    DATASET,
    homepage="https://www.kaggle.com/c/data-science-bowl-2018/data",
    manual=("The Kaggle Data Science Bowl 2018 data need a Kaggle account: accept the competition rules at "
            "https://www.kaggle.com/c/data-science-bowl-2018/data, download stage1_train.zip (or "
            "`kaggle competitions download -c data-science-bowl-2018 -f stage1_train.zip`), unzip it into "
            "<root>/stage1_train/ so that <root>/stage1_train/<id>/images/<id>.png and "
            "<root>/stage1_train/<id>/masks/*.png exist, and rerun with download: false."),
)
DERIVATION_VERSION = 1
CLASS_NAMES = ("background", "nucleus")

# modality(): a colour image (mean |channel - gray| above this share of the range) is stained tissue;
# a gray one with a mean below DARK is fluorescence (bright nuclei on black), else brightfield.
COLOURFUL = 0.02
DARK = 0.5


def modality(image: np.ndarray) -> str:
    """``"stained"``, ``"fluorescence"`` or ``"brightfield"`` from an ``(H, W, C)`` image's pixels (the
    split's stratum; see :data:`COLOURFUL` and :data:`DARK`)."""
    scaled = image.astype(np.float64) / (np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1.0)
    if scaled.shape[2] == 3 and np.abs(scaled - scaled.mean(axis=2, keepdims=True)).mean() > COLOURFUL:
        return "stained"
    return "fluorescence" if scaled.mean() < DARK else "brightfield"


def stage1_folder(root: Path) -> Path:
    """The ``stage1_train`` folder under ``root`` (or ``root`` itself); :class:`LayoutError` when neither."""
    if not root.is_dir():
        raise LayoutError(DATASET, root, LAYOUT, missing=[str(root)], hint=_download_hint())
    if (root / "stage1_train").is_dir():
        return root / "stage1_train"
    if any((case / "images").is_dir() for case in _case_dirs(root)):
        return root
    unexpected = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    raise LayoutError(DATASET, root, LAYOUT, missing=["stage1_train/", "<id>/images/<id>.png"], unexpected=unexpected,
                      hint="root is the folder holding stage1_train/ (or stage1_train/ itself); " + _download_hint())


def _download_hint() -> str:
    return "download: true cannot fetch it (Kaggle needs an account): " + SOURCE.manual


def _case_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


@dataclass(frozen=True)
class DerivedCase:
    """One image and what was derived from its masks (paths into the cache)."""

    id: str
    image: Path
    semantic: Path
    instances: Path
    boxes: list[list[float]]
    areas: list[int]
    height: int
    width: int


def _case_key(image: Path, masks: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"dsb2018-derivation-v{DERIVATION_VERSION}".encode())
    for path in (image, *masks):
        stat = path.stat()
        digest.update(f"\n{path.name}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def derive(image: np.ndarray, masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[list[float]], list[int]]:
    """``(semantic uint8, instances uint16, boxes xyxy, areas)`` from one image's per-nucleus masks
    (the rules of the module docstring)."""
    height, width = image.shape[:2]
    semantic = np.zeros((height, width), dtype=np.uint8)
    instances = np.zeros((height, width), dtype=np.uint16)
    binary = [mask > 0 for mask in masks]
    areas = [int(b.sum()) for b in binary]
    boxes = []
    for b in binary:
        rows, cols = np.flatnonzero(b.any(axis=1)), np.flatnonzero(b.any(axis=0))
        boxes.append([float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)])
    for k in sorted(range(len(binary)), key=lambda k: -areas[k]):  # largest first: smaller ones paint over
        instances[binary[k]] = k + 1
        semantic |= binary[k]
    return semantic, instances, boxes, areas


class DerivedCache:
    """The derived masks and boxes of every case, on disk under ``folder/<id>/`` (module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def default_folder(root: Path) -> Path:
        """``<root>/.lossbench_cache/dsb2018`` when writable, else ``~/.cache/lossbench/dsb2018/<key>``."""
        if os.access(root, os.W_OK):
            return root / ".lossbench_cache" / DATASET
        key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
        return Path.home() / ".cache" / "lossbench" / DATASET / key

    def cases(self, stage1: Path) -> list[DerivedCase]:
        """Every case of ``stage1``, derived where the cache lacks it; raises :class:`DataProblems` naming
        every bad file (unreadable, size mismatch, empty mask, missing image or masks) at once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
            results = list(pool.map(self._case, _case_dirs(stage1)))
        problems = [problem for _, case_problems in results for problem in case_problems]
        if problems:
            raise DataProblems(f"{DATASET} at {stage1}", problems)
        return [case for case, _ in results if case is not None]

    def _case(self, folder: Path) -> tuple[DerivedCase | None, list[str]]:
        case_id = folder.name
        image_path = folder / "images" / f"{case_id}.png"
        masks = sorted((folder / "masks").glob("*.png")) if (folder / "masks").is_dir() else []
        problems = []
        if not image_path.is_file():
            problems.append(f"{image_path}: image missing (expected <id>/images/<id>.png)")
        if not masks:
            problems.append(f"{folder / 'masks'}: no mask PNGs (expected one binary PNG per nucleus)")
        if problems:
            return None, problems
        key = _case_key(image_path, masks)
        out = self.folder / case_id
        record_path = out / f"boxes-{key}.json"
        if record_path.is_file():
            record = json.loads(record_path.read_text())
        else:
            record, problems = self._derive(case_id, image_path, masks, out, key)
            if record is None:
                return None, problems
        return DerivedCase(case_id, image_path, out / f"semantic-{key}.png", out / f"instances-{key}.png",
                           record["boxes"], record["areas"], record["height"], record["width"]), []

    def _derive(self, case_id: str, image_path: Path, mask_paths: Sequence[Path], out: Path,
                key: str) -> tuple[dict | None, list[str]]:
        problems = []
        try:
            image = read_image(image_path)
        except ImageReadError as error:
            return None, [str(error)]
        masks = []
        for path in mask_paths:
            try:
                mask = read_mask(path)
            except ImageReadError as error:
                problems.append(str(error))
                continue
            if mask.shape != image.shape[:2]:
                problems.append(f"{path}: mask size {mask.shape[1]}x{mask.shape[0]} (WxH) differs from image "
                                f"{image_path.name} size {image.shape[1]}x{image.shape[0]}")
            elif not mask.any():
                problems.append(f"{path}: empty mask (no pixel > 0); every mask file is one nucleus")
            else:
                masks.append(mask)
        if problems:
            return None, problems
        semantic, instances, boxes, areas = derive(image, masks)
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.iterdir():
            if key not in stale.name:
                stale.unlink(missing_ok=True)
        _write_png(out / f"semantic-{key}.png", semantic)
        _write_png(out / f"instances-{key}.png", instances)
        record = {"id": case_id, "height": int(image.shape[0]), "width": int(image.shape[1]), "boxes": boxes,
                  "areas": areas, "masks": [p.name for p in mask_paths], "modality": modality(image)}
        _write_atomic(out / f"boxes-{key}.json", json.dumps(record).encode())  # written last: marks the case done
        return record, []


def _write_png(path: Path, array: np.ndarray) -> None:
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(handle)
    Image.fromarray(array).save(temp, format="PNG")
    os.replace(temp, path)


def _write_atomic(path: Path, data: bytes) -> None:
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temp, path)


class DSB2018Cases:
    """The cases under ``root`` (layout checked, derived, cached) assigned to the committed split."""

    def __init__(self, root: str | Path, download: bool = False, archive_sha256: str | None = None,
                 cache_dir: str | Path | None = None, split: str = DATASET) -> None:
        self.root = Path(root).expanduser()
        if download:
            ensure_dataset(SOURCE, self.root, present=_present, sha256=archive_sha256)
        self.stage1 = stage1_folder(self.root)
        self.cache = DerivedCache(Path(cache_dir).expanduser() if cache_dir else DerivedCache.default_folder(self.root))
        cases = self.cache.cases(self.stage1)
        if not cases:
            raise LayoutError(DATASET, self.root, LAYOUT, missing=[f"{self.stage1.name}/<id>/images/<id>.png"],
                              hint=_download_hint())
        by_id = {case.id: case for case in cases}
        used, self.split_info = resolve_split(SplitSpec.load(split), sorted(by_id), f"{DATASET} at {self.stage1}")
        self.splits: dict[str, list[DerivedCase]] = {s: [by_id[c] for c in used[s]] for s in SPLITS}

    def write_coco(self) -> Path:
        """COCO files ``{train,val,test}.json`` of the split's derived boxes (``file_name`` relative to
        ``stage1_train``; image ids 1.. in case-id order), in the cache; returns their folder."""
        folder = self.cache.folder / f"coco-{self.split_info.hash[:12]}"
        folder.mkdir(parents=True, exist_ok=True)
        ordered = sorted(case.id for split in SPLITS for case in self.splits[split])
        image_id = {case_id: k for k, case_id in enumerate(ordered, start=1)}
        for split in SPLITS:
            images, annotations = [], []
            for case in self.splits[split]:
                images.append({"id": image_id[case.id], "file_name": f"{case.id}/images/{case.id}.png",
                               "height": case.height, "width": case.width})
                for (x1, y1, x2, y2), area in zip(case.boxes, case.areas):
                    annotations.append({"id": len(annotations) + 1, "image_id": image_id[case.id], "category_id": 1,
                                        "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area, "iscrowd": 0})
            coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "nucleus"}]}
            _write_atomic(folder / f"{split}.json", json.dumps(coco).encode())
        return folder


def _present(root: Path) -> bool:
    try:
        stage1_folder(root)
    except LayoutError:
        return False
    return True


class DSB2018SegDataModule(FileSegDataModule):
    """DSB-2018 nuclei as two-class segmentation (background, nucleus) on the derived semantic masks; the
    options are :class:`~datamodules.file_seg.FileSegDataModule`'s plus ``root``, ``download``,
    ``archive_sha256``, ``cache_dir`` and ``split`` (module docstring). Case ids are the Kaggle image ids."""

    owner = DATASET

    def __init__(self, root: str | Path, download: bool = False, archive_sha256: str | None = None,
                 cache_dir: str | Path | None = None, split: str = DATASET, num_classes: int = 2,
                 class_names: Sequence[str] | None = CLASS_NAMES, **kwargs: Any) -> None:
        self.data = DSB2018Cases(root, download, archive_sha256, cache_dir, split)
        self.split_info = self.data.split_info
        super().__init__(num_classes=num_classes, class_names=class_names or CLASS_NAMES, **kwargs)

    @property
    def source(self) -> str:
        return f"{DATASET} at {self.data.stage1}"

    def list_samples(self) -> dict[str, list[SampleFiles]]:
        return {split: [SampleFiles(case.id, case.image, case.semantic) for case in self.data.splits[split]]
                for split in SPLITS}


class DSB2018DetDataModule(CocoDataModule):
    """DSB-2018 nuclei as one-class detection (``nucleus``) on the derived boxes, through
    :class:`~datamodules.coco.CocoDataModule` (resolution cap, crops, box-aware augmentation, anchor-fit
    statistics); same images and split as :class:`DSB2018SegDataModule`."""

    owner = DATASET

    def __init__(self, root: str | Path, download: bool = False, archive_sha256: str | None = None,
                 cache_dir: str | Path | None = None, split: str = DATASET, num_classes: int = 1,
                 class_names: Sequence[str] | None = None, **kwargs: Any) -> None:
        if num_classes != 1:
            invalid(DATASET, "num_classes", num_classes, "1 (nucleus) for task=detection, or null")
        self.data = DSB2018Cases(root, download, archive_sha256, cache_dir, split)
        folder = self.data.write_coco()
        super().__init__(root=str(folder), num_classes=1, class_names=class_names or ["nucleus"], images=str(self.data.stage1),
                         annotations="train.json", val_annotations="val.json", test_annotations="test.json",
                         **kwargs)
        self.split_info: SplitInfo = self.data.split_info


_SHARED = ("root", "download", "archive_sha256", "cache_dir", "split", "seed", "num_workers", "pin_memory",
           "persistent_workers")


def dsb2018(task: str = "segmentation", image_size: int = 512, detection: Mapping[str, Any] | None = None,
            num_classes: int | None = None, **options: Any) -> DSB2018SegDataModule | DSB2018DetDataModule:
    """The DSB-2018 datamodule of ``task`` (``configs/datamodule/dsb2018.yaml`` sets ``task: ${task}``).

    ``segmentation``: every option but ``image_size`` and ``detection`` goes to :class:`DSB2018SegDataModule`.
    ``detection``: the shared options (root, download, archive_sha256, cache_dir, split, seed, loader
    options), ``image_size`` and the ``detection`` mapping (train_crop, scale_range, augment, batch_size)
    go to :class:`DSB2018DetDataModule`; the segmentation-only options are not used.
    """
    if task == "segmentation":
        if num_classes is not None:
            options["num_classes"] = num_classes
        return DSB2018SegDataModule(**options)
    if task == "detection":
        shared = {key: options[key] for key in _SHARED if key in options}
        return DSB2018DetDataModule(num_classes=1 if num_classes is None else num_classes, image_size=image_size,
                                    **shared, **dict(detection or {}))
    invalid(DATASET, "task", task, "'segmentation' or 'detection'")
