"""``datamodule=msd``: a Medical Segmentation Decathlon task folder, read as its publisher distributes it.

Layout under ``root`` (one task, e.g. ``Task04_Hippocampus/`` as extracted from ``Task04_Hippocampus.tar``)::

    root/dataset.json            "labels" {"0": "background", ...}, "modality" {"0": "MRI", ...},
                                 "training" [{"image": "./imagesTr/<case>.nii.gz", "label": "./labelsTr/<case>.nii.gz"}]
    root/imagesTr/<case>.nii.gz  3-D, or 4-D (X, Y, Z, modality) multi-modal images (BrainTumour: 4, Prostate: 2)
    root/labelsTr/<case>.nii.gz  one class id per voxel (some are stored as float; integers are required)
    root/imagesTs/               unlabelled test images: ignored

This is :class:`~datamodules.volumes.volume_folder.VolumeFolderDataModule` (one code path: reading,
checks, normalisation, patches, sliding window, caching) with ``dataset.json`` read strictly:

- ``labels`` gives ``num_classes`` and ``class_names``, ``modality`` gives ``in_channels``, and the
  ``training`` list gives the cases (case id = the file name without ``.nii.gz``, the publisher's own).
  Files in ``imagesTr/`` that the list does not name are not used (a warning says how many); the macOS
  ``._<case>.nii.gz`` resource-fork files of the published tars are never cases.
- a listed case whose image and label are both absent is dropped with one warning (a partial copy);
  a case with only one of the two is an error, as is a ``dataset.json`` without those keys.
- **splits**: the Decathlon publishes no labelled test set, so train / val / test are all carved from the
  training list. ``datamodules/public/splits/msd_<task>.json`` (lower case, e.g. ``msd_task04_hippocampus``)
  is the committed carve where one exists (:mod:`scripts.splits.msd`: seeded, stratified by volume-size
  tertile); cases it does not list, and every case of a task without a committed file, go to the split of
  the hash rule (:mod:`datamodules.public.splits`) cut by ``split_fractions``.
- ``download: true`` fetches ``<task>.tar`` from the Decathlon's AWS mirror (the URLs and MD5 sums MONAI's
  ``DecathlonDataset`` uses) and extracts its ``<task>/`` folder as ``root``.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Sequence

from datamodules.public.download import Archive, Source, ensure_dataset
from datamodules.public.layout import LayoutError, require_paths
from datamodules.public.splits import SPLIT_DIR, SplitSpec, resolve_split
from datamodules.volumes.nifti_io import nifti_stem
from datamodules.volumes.volume_folder import CaseFiles, VolumeFolderDataModule

log = logging.getLogger(__name__)

DATASET = "msd"
LAYOUT = ("root/dataset.json (labels, modality, training), root/imagesTr/<case>.nii.gz, "
          "root/labelsTr/<case>.nii.gz — one Decathlon task folder, e.g. Task04_Hippocampus/")
MIRROR = "https://msd-for-monai.s3-us-west-2.amazonaws.com"
HOMEPAGE = "http://medicaldecathlon.com/"
# The archives' MD5 sums as published in MONAI's DecathlonDataset resource table (no SHA-256 is published).
TASK_MD5 = {
    "Task01_BrainTumour": "240a19d752f0d9e9101544901065d872",
    "Task02_Heart": "06ee59366e1e5124267b774dbd654057",
    "Task03_Liver": "a90ec6c4aa7f6a3d087205e23d4e6397",
    "Task04_Hippocampus": "9d24dba78a72977dbd1d2e110310f31b",
    "Task05_Prostate": "35138f08b1efaef89d7424d2bcc928db",
    "Task06_Lung": "8afd997733c7fc0432f71255ba4e52dc",
    "Task07_Pancreas": "4f7080cfca169fa8066d17ce6eb061e4",
    "Task08_HepaticVessel": "641d79e80ec66453921d997fbf12a29c",
    "Task09_Spleen": "410d4a301da4e5b2f6f86ec3ddba524e",
    "Task10_Colon": "bad7a188931dc2f6acf72b08eb6202d0",
}
_TASK_NAME = re.compile(r"^(Task\d\d_[A-Za-z]+)")
_REQUIRED_KEYS = ("labels", "modality", "training")


def task_source(task: str) -> Source:
    """Where ``task`` (e.g. ``Task04_Hippocampus``) is downloaded from, and its pinned MD5."""
    if task not in TASK_MD5:
        raise ValueError(f"msd: task={task!r} is not a Decathlon task; expected one of {sorted(TASK_MD5)}")
    return Source(DATASET, [Archive(f"{MIRROR}/{task}.tar", f"{task}.tar", md5=TASK_MD5[task], subdir=task)],
                  homepage=HOMEPAGE)


def infer_task(root: Path, task: str | None) -> str | None:
    """``task`` as given, else the ``TaskNN_Name`` prefix of the root folder's name, else ``None``."""
    if task is not None:
        return str(task)
    match = _TASK_NAME.match(root.name)
    return match[1] if match else None


def split_name(task: str | None, meta: dict[str, Any]) -> str:
    """The committed split file's name: ``msd_<task>`` lower case (``msd_task04_hippocampus``)."""
    label = task or str(meta.get("name") or "custom")
    return "msd_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def _present(root: Path) -> bool:
    return (root / "dataset.json").is_file() and (root / "imagesTr").is_dir() and (root / "labelsTr").is_dir()


def read_dataset_json(root: Path) -> dict[str, Any]:
    """``root/dataset.json`` parsed; ``ValueError`` naming the file when it is not JSON or lacks a key."""
    path = root / "dataset.json"
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{DATASET}: {path} is not valid JSON ({error})") from None
    absent = [key for key in _REQUIRED_KEYS if not meta.get(key)]
    wrong = [key for key, kind in (("labels", dict), ("modality", dict), ("training", list))
             if key not in absent and not isinstance(meta[key], kind)]
    if absent or wrong:
        raise ValueError(f"{DATASET}: {path} needs non-empty \"labels\" (a mapping), \"modality\" (a mapping) and "
                         f"\"training\" (a list of {{image, label}}); missing: {absent}, wrong type: {wrong}")
    return meta


class MSDDataModule(VolumeFolderDataModule):
    """One Decathlon task folder (module docstring).

    Args:
        root: the task folder (holds ``dataset.json``).
        task: ``TaskNN_Name`` (e.g. ``Task04_Hippocampus``); ``None``: from the root folder's name. Names
            the committed split file and the archive ``download`` fetches.
        download: fetch and extract the task's archive when ``root`` does not hold it.
        archive_sha256: pin the archive's SHA-256 instead of the published MD5.
        split_fractions: train, val, test shares of the hash rule for cases no committed split lists.
        Others: :class:`~datamodules.volumes.volume_folder.VolumeFolderDataModule`'s.
    """

    def __init__(self, root: str | Path, task: str | None = None, download: bool = False,
                 archive_sha256: str | None = None, **kwargs: Any) -> None:
        root = Path(root).expanduser()
        self.task = infer_task(root, task)
        if download:
            if self.task is None:
                raise ValueError(f"{DATASET}: download=true needs the task: set datamodule.task to one of "
                                 f"{sorted(TASK_MD5)} (root={str(root)!r} is not named after one)")
            ensure_dataset(task_source(self.task), root, _present, sha256=archive_sha256)
        super().__init__(root, **kwargs)

    def list_cases(self) -> tuple[list[CaseFiles], dict[str, Any]]:
        self.source = f"msd {self.task} at {self.root}" if self.task else f"msd at {self.root}"
        hint = "set datamodule.download=true and datamodule.task=TaskNN_Name to fetch it" if self.task in TASK_MD5 \
            else f"download a task from {HOMEPAGE}"
        require_paths(DATASET, self.root, LAYOUT, ["dataset.json", "imagesTr", "labelsTr"], hint=hint)
        meta = read_dataset_json(self.root)
        cases, absent, broken = [], [], []
        for k, entry in enumerate(meta["training"]):
            if not isinstance(entry, dict) or not {"image", "label"} <= set(entry):
                broken.append(f"training[{k}] = {entry!r} is not {{\"image\": ..., \"label\": ...}}")
                continue
            image, label = self.root / entry["image"], self.root / entry["label"]
            name = nifti_stem(image)
            if name is None or nifti_stem(label) is None:
                broken.append(f"training[{k}]: {entry['image']} / {entry['label']} are not NIfTI file names")
            elif not image.is_file() and not label.is_file():
                absent.append(name)
            elif not image.is_file() or not label.is_file():
                broken.append(f"{name}: {image if not image.is_file() else label} is missing (its pair is present)")
            else:
                cases.append(CaseFiles(name, (image,), label))
        if broken:
            raise LayoutError(DATASET, self.root, LAYOUT, missing=broken,
                              hint=f"{self.root / 'dataset.json'} lists cases whose files are not all there")
        if not cases:
            raise LayoutError(DATASET, self.root, LAYOUT, missing=[f"imagesTr/{name}.nii.gz" for name in absent],
                              hint="dataset.json lists no case whose files are present")
        if absent:
            log.warning("%s: dataset.json lists %d case(s) whose image and label are both absent (a partial copy; "
                        "e.g. %s); using the %d present", self.source, len(absent), ", ".join(absent[:5]), len(cases))
        listed = {c.images[0].name for c in cases} | {f"{name}.nii.gz" for name in absent}
        unlisted = sorted(p.name for p in (self.root / "imagesTr").iterdir()
                          if nifti_stem(p) is not None and not p.name.startswith(".") and p.name not in listed)
        if unlisted:
            log.warning("%s: %d file(s) in imagesTr/ are not in dataset.json's training list and are not used "
                        "(e.g. %s)", self.source, len(unlisted), ", ".join(unlisted[:5]))
        if len(meta["training"]) != meta.get("numTraining", len(meta["training"])):
            log.warning("%s: dataset.json says numTraining=%s but lists %d cases; the list is used", self.source,
                        meta.get("numTraining"), len(meta["training"]))
        return sorted(cases, key=lambda c: c.name), meta

    def split_cases(self, names: list[str], fractions: Sequence[float], seed: int) -> dict[str, list[str]]:
        name = split_name(self.task, self.meta)
        if (SPLIT_DIR / f"{name}.json").is_file():
            spec = SplitSpec.load(name)
        else:
            spec = SplitSpec(name, 1, "no committed file: every case by the hash rule", tuple(fractions))
            log.info("%s: no committed split %s.json; every case goes by the hash rule (fractions %s)",
                     self.source, name, list(fractions))
        used, self.split_info = resolve_split(spec, names, self.source)
        return used
