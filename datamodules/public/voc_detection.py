"""Pascal-VOC-layout detection sets (VOC itself, BCCD, ...) read as published.

Layout under ``root``::

    Annotations/<id>.xml                  VOC XML: <size>, <object><name>, <difficult>, <bndbox>
    JPEGImages/<id>.jpg                   (any image suffix image_io reads)
    ImageSets/Main/{train,val,test}.txt   one id per line: the publisher's splits (trainval.txt unused)

Conventions:

- **classes** — ``class_names`` from the config (labels 1..K in that order) or, when null, every
  ``<name>`` in the XML of the three splits, **sorted**; an object whose class is not configured is an
  error naming its file.
- **boxes** — VOC stores 1-based inclusive pixel indices; they become pixel edges the usual way
  (``[xmin - 1, ymin - 1, xmax, ymax]``). A box reaching outside its image is clipped to it; a box
  with zero width or height after that (or ``xmax < xmin``) is dropped. Both are **reported at setup**
  per file with their counts (a warning), never silently.
- **difficult** — VOC neither counts a difficult object as a miss nor a detection on it as a false
  positive: it becomes a crowd region (``iscrowd = 1``) in the val/test targets, which the detection
  metric treats exactly so, and it is left out of the training targets (as the COCO machinery does for
  crowd regions).
- **checks** — an unreadable or malformed XML, an id listed without its image or XML, an image whose
  size differs from its XML ``<size>``, an id listed in two splits: every such file is named in one
  error (:class:`~datamodules.seg_samples.DataProblems`) before training.

The boxes go through the COCO machinery (:class:`~datamodules.coco.CocoDataModule`: resolution cap,
crops, box-aware augmentation, anchor-fit statistics) via COCO files written to ``cache_dir`` (default
``~/.cache/lossbench/voc_detection/<hash of root's path>``). The split's identity (``metrics.json``'s
``split``) is ``<root name>@ImageSets/Main`` with the hash of the ids used.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

from common.names import SPLITS
from datamodules.coco import CocoDataModule
from datamodules.image_io import IMAGE_SUFFIXES, ImageReadError, probe
from datamodules.public.download import ensure_dataset, github_master
from datamodules.public.layout import require_paths
from datamodules.public.splits import SplitInfo, split_hash
from datamodules.seg_samples import DataProblems

DATASET = "voc_detection"
LAYOUT = "Annotations/<id>.xml, JPEGImages/<id>.jpg, ImageSets/Main/{train,val,test}.txt"
REQUIRED = ("Annotations", "JPEGImages", *(f"ImageSets/Main/{split}.txt" for split in SPLITS))

# BCCD: the GitHub archive of Shenggan/BCCD_Dataset (MIT); the VOC folder is BCCD/ inside it. No checksum is
# published: the first download prints its SHA-256 for datamodule.archive_sha256.
BCCD_SOURCE = github_master("bccd", "Shenggan/BCCD_Dataset", subdir="BCCD")
SOURCES = {"bccd": BCCD_SOURCE}


class VOCObject:
    """One ``<object>``: class name, box in pixel edges, ``difficult``."""

    __slots__ = ("name", "box", "difficult")

    def __init__(self, name: str, box: tuple[float, float, float, float], difficult: bool) -> None:
        self.name, self.box, self.difficult = name, box, difficult


def parse_annotation(path: Path) -> tuple[tuple[int, int] | None, list[VOCObject]]:
    """``((height, width) or None when <size> is absent or 0, objects)`` of one VOC XML file; raises
    ``ValueError`` naming the file for unreadable XML or an object without name or numeric box."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as error:
        raise ValueError(f"{path}: unreadable VOC XML ({error})") from None
    node = tree.getroot()
    size = node.find("size")
    height = width = 0
    if size is not None:
        try:
            height, width = int(float(size.findtext("height", "0"))), int(float(size.findtext("width", "0")))
        except ValueError:
            raise ValueError(f"{path}: <size> holds non-numeric width/height") from None
    objects = []
    for k, obj in enumerate(node.iter("object")):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            raise ValueError(f"{path}: object {k} has no <name> or no <bndbox>")
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(tag, "nan")) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise ValueError(f"{path}: object {k} ({name}) has a non-numeric <bndbox>") from None
        if any(v != v for v in (xmin, ymin, xmax, ymax)):
            raise ValueError(f"{path}: object {k} ({name}) lacks one of xmin, ymin, xmax, ymax")
        difficult = (obj.findtext("difficult") or "0").strip() not in ("0", "")
        objects.append(VOCObject(name, (xmin - 1.0, ymin - 1.0, xmax, ymax), difficult))
    return ((height, width) if height > 0 and width > 0 else None), objects


def clip_box(box: tuple[float, float, float, float], height: int,
             width: int) -> tuple[tuple[float, float, float, float] | None, bool]:
    """``(box clipped to the image or None when it has no area left, whether it was changed)``."""
    x1, y1, x2, y2 = max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(width)), min(box[3], float(height))
    if x2 <= x1 or y2 <= y1:
        return None, True
    clipped = (x1, y1, x2, y2)
    return clipped, clipped != tuple(box)


def _read_ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


class VOCDetectionDataModule(CocoDataModule):
    """A Pascal-VOC-layout detection set (module docstring). ``class_names``: the classes in label order,
    or null (sorted from the XML); ``num_classes``: null or their count. The other options are
    :class:`~datamodules.coco.CocoDataModule`'s (``image_size``, ``train_crop``, ``scale_range``, ``augment``,
    loader options). ``download: true`` fetches ``source`` (``bccd``) when ``root`` lacks the layout."""

    owner = DATASET

    def __init__(self, root: str | Path, class_names: Sequence[str] | None = None, num_classes: int | None = None,
                 download: bool = False, archive_sha256: str | None = None, source: str | None = None,
                 cache_dir: str | Path | None = None, **kwargs: Any) -> None:
        self.voc_root = Path(root).expanduser()
        if download:
            if source not in SOURCES:
                raise ValueError(f"{DATASET}: download=true needs source= one of {sorted(SOURCES)} (which archive to "
                                 f"fetch), got source={source!r}")
            ensure_dataset(SOURCES[source], self.voc_root, present=_present, sha256=archive_sha256)
        require_paths(DATASET, self.voc_root, LAYOUT, REQUIRED,
                      hint="root is the folder holding Annotations/, JPEGImages/ and ImageSets/Main/")
        ids = {split: _read_ids(self.voc_root / "ImageSets" / "Main" / f"{split}.txt") for split in SPLITS}
        records, names = self._read_all(ids, class_names)
        if num_classes is not None and num_classes != len(names):
            raise ValueError(f"{DATASET}: num_classes={num_classes} but the classes are {names} ({len(names)}); set "
                             "num_classes to their count or null")
        folder = self._write_coco(records, names, Path(cache_dir).expanduser() if cache_dir else None)
        super().__init__(root=str(folder), num_classes=len(names), class_names=names,
                         images=str(self.voc_root / "JPEGImages"), annotations="train.json",
                         val_annotations="val.json", test_annotations="test.json", **kwargs)
        self.split_info = SplitInfo(name=f"{self.voc_root.name}@ImageSets/Main", hash=split_hash(ids),
                                    counts={split: len(ids[split]) for split in SPLITS})

    def _read_all(self, ids: dict[str, list[str]],
                  class_names: Sequence[str] | None) -> tuple[dict[str, list[dict]], list[str]]:
        problems: list[str] = []
        seen: dict[str, str] = {}
        for split in SPLITS:
            for image_id in ids[split]:
                if image_id in seen:
                    problems.append(f"ImageSets/Main/{split}.txt: id {image_id} is also listed in {seen[image_id]}.txt")
                seen.setdefault(image_id, split)
            if not ids[split]:
                problems.append(f"{self.voc_root / 'ImageSets/Main' / f'{split}.txt'}: lists no image")
        records: dict[str, list[dict]] = {split: [] for split in SPLITS}
        fixes: list[str] = []
        for split in SPLITS:
            for image_id in ids[split]:
                record = self._read_one(image_id, problems, fixes)
                if record is not None:
                    records[split].append(record)
        found = sorted({obj.name for split in SPLITS for record in records[split] for obj in record["objects"]})
        names = list(class_names) if class_names is not None else found
        if class_names is not None:
            known = set(names)
            for split in SPLITS:
                for record in records[split]:
                    unknown = sorted({obj.name for obj in record["objects"]} - known)
                    if unknown:
                        problems.append(f"{record['xml']}: class(es) {unknown} not in class_names {names}; add "
                                        "them to datamodule.class_names (or set it to null: every class in the XML)")
        if problems:
            raise DataProblems(f"{DATASET} at {self.voc_root}", problems)
        if not names:
            raise ValueError(f"{DATASET} at {self.voc_root}: no <object> in any annotation; nothing to detect")
        if fixes:
            warnings.warn(f"{DATASET} at {self.voc_root}: {len(fixes)} file(s) hold boxes reaching outside their image "
                          f"(clipped to it) or without area (dropped): " + "; ".join(fixes[:20])
                          + (f"; … and {len(fixes) - 20} more" if len(fixes) > 20 else ""), stacklevel=3)
        return records, names

    def _read_one(self, image_id: str, problems: list[str], fixes: list[str]) -> dict | None:
        xml = self.voc_root / "Annotations" / f"{image_id}.xml"
        image = next((p for p in (self.voc_root / "JPEGImages" / f"{image_id}{s}" for s in (".jpg", *IMAGE_SUFFIXES))
                      if p.is_file()), None)
        if image is None:
            problems.append(f"{self.voc_root / 'JPEGImages' / image_id}.jpg: image missing (id listed in ImageSets/Main)")
        if not xml.is_file():
            problems.append(f"{xml}: annotation missing (id listed in ImageSets/Main)")
            return None
        try:
            size, objects = parse_annotation(xml)
        except ValueError as error:
            problems.append(str(error))
            return None
        if image is None:
            return None
        try:
            info = probe(image)
        except ImageReadError as error:
            problems.append(str(error))
            return None
        if size is not None and size != (info.height, info.width):
            problems.append(f"{xml}: <size> {size[1]}x{size[0]} (WxH) differs from {image.name} {info.width}x{info.height}")
            return None
        kept, clipped, dropped = [], 0, 0
        for obj in objects:
            box, changed = clip_box(obj.box, info.height, info.width)
            if box is None:
                dropped += 1
                continue
            clipped += changed
            kept.append(VOCObject(obj.name, box, obj.difficult))
        if clipped or dropped:
            fixes.append(f"{xml.name}: {clipped} clipped, {dropped} dropped")
        return {"id": image_id, "file_name": image.name, "xml": xml, "height": info.height, "width": info.width,
                "objects": kept}

    def _write_coco(self, records: dict[str, list[dict]], names: list[str], cache_dir: Path | None) -> Path:
        label_of = {name: k for k, name in enumerate(names, start=1)}
        files = {}
        image_ids = {record["id"]: k for k, record in
                     enumerate(sorted((r for s in SPLITS for r in records[s]), key=lambda r: r["id"]), start=1)}
        for split in SPLITS:
            images, annotations = [], []
            for record in records[split]:
                images.append({"id": image_ids[record["id"]], "file_name": record["file_name"],
                               "height": record["height"], "width": record["width"]})
                for obj in record["objects"]:
                    x1, y1, x2, y2 = obj.box
                    annotations.append({"id": len(annotations) + 1, "image_id": image_ids[record["id"]],
                                        "category_id": label_of[obj.name], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                        "area": (x2 - x1) * (y2 - y1), "iscrowd": int(obj.difficult)})
            categories = [{"id": k, "name": name} for name, k in label_of.items()]
            files[split] = json.dumps({"images": images, "annotations": annotations, "categories": categories}).encode()
        digest = hashlib.sha256(b"".join(files[s] for s in SPLITS)).hexdigest()[:16]
        base = cache_dir or Path.home() / ".cache" / "lossbench" / DATASET / \
            hashlib.sha256(str(self.voc_root.resolve()).encode()).hexdigest()[:12]
        folder = base / f"coco-{digest}"
        folder.mkdir(parents=True, exist_ok=True)
        for split, data in files.items():
            handle, temp = tempfile.mkstemp(prefix=f".{split}.", dir=folder)
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temp, folder / f"{split}.json")
        return folder


def _present(root: Path) -> bool:
    return root.is_dir() and all((root / name).exists() for name in REQUIRED)
