"""``datamodule=volume_folder``: NIfTI volumes in the Medical Segmentation Decathlon layout or images/ + masks/.

Layouts (``root`` holds one of them)::

    root/imagesTr/<case>.nii.gz      Decathlon: 3-D, or 4-D (X, Y, Z, modality) multi-modal images
    root/labelsTr/<case>.nii.gz      one class id per voxel (float files holding integers are fine)
    root/dataset.json                optional: "labels" {"0": "background", ...}, "modality" {"0": "MRI", ...}

    root/images/<case>.nii[.gz]  +  root/masks/<case>.nii[.gz]

    root/splits/{train,val,test}.txt optional (both layouts): one case name per line

nnU-Net's one-file-per-modality naming (``<case>_0000.nii.gz``, ``<case>_0001.nii.gz`` …, label
``<case>.nii.gz``) is read as one multi-channel case. Without ``splits/``, a seeded shuffle of the
sorted cases is cut by ``split_fractions``; a missing ``test.txt`` (or a test share of 0) reuses val.

The setup pass reads every case once and reports *all* problems in one ``ValueError``: unreadable
files, image/label shape or affine mismatches, label values that are not integers or not class ids,
channel counts that differ from the other cases or ``in_channels``, non-finite intensities. Then each
case is normalised per volume (``normalize``: ``zscore`` default, ``ct`` with ``ct_window``, ``none``),
optionally resampled to ``target_spacing`` mm, and kept in memory when everything fits in
``cache_max_gb`` (else re-read on each access). Training and evaluation are
:class:`~datamodules.volumes.base.VolumeDataModule`'s.
"""
from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from common.names import SPLITS
from datamodules.base import check_gb
from datamodules.volumes.base import Volume, VolumeDataModule, VolumeStore
from datamodules.volumes.nifti_io import VolumeReadError, nifti_stem, read_image, read_labels
from datamodules.volumes.preprocess import NORMALIZATIONS, normalize_intensity, resample, resampled_shape

log = logging.getLogger(__name__)

_MODALITY_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_MAX_LISTED = 20
_LISTED_NAMES = 10


class VolumeProblems(ValueError):
    """Every problem the setup pass found in the volumes, one line per case."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        listed = "\n  - ".join(problems[:_MAX_LISTED])
        more = f"\n  … and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        super().__init__(f"{source}: {len(problems)} problem(s) in the volumes; fix them and rerun:\n  - {listed}{more}")
        self.problems = list(problems)


@dataclass(frozen=True)
class CaseFiles:
    """One case: its image file(s) (one per channel, or one multi-channel file) and its label file."""

    name: str
    images: tuple[Path, ...]
    labels: Path


def _nifti_files(folder: Path) -> dict[str, Path]:
    """The NIfTI files in ``folder`` by case name. Hidden files are skipped with a warning: the
    Decathlon archives ship a macOS ``._<case>.nii.gz`` metadata file next to every case, which is
    not a volume."""
    files, hidden = {}, []
    for path in sorted(folder.iterdir()):
        stem = nifti_stem(path)
        if stem is None:
            continue
        if path.name.startswith("."):
            hidden.append(path.name)
        else:
            files[stem] = path
    if hidden:
        log.warning("%s: skipped %d hidden file(s) that are not volumes (e.g. macOS '._' metadata): %s",
                    folder, len(hidden), _shown(hidden))
    return files


def _label_names(labels: Any) -> dict[str, str] | Any:
    """``dataset.json`` "labels" as ``{"0": "background", "1": ...}``: the Decathlon writes it that way,
    nnU-Net v2 the other way round (``{"background": 0, "Anterior": 1}``), which is inverted here."""
    if isinstance(labels, dict) and labels and all(isinstance(v, int) and not isinstance(v, bool)
                                                   for v in labels.values()):
        return {str(v): str(k) for k, v in labels.items()}
    return labels


def _shown(names: Sequence[str]) -> str:
    names = list(names)
    return ", ".join(names[:_LISTED_NAMES]) + (f" … ({len(names)} in all)" if len(names) > _LISTED_NAMES else "")


def list_cases(root: Path) -> tuple[list[CaseFiles], dict[str, Any]]:
    """The cases under ``root`` (either layout) and the parsed ``dataset.json`` (``{}`` when absent)."""
    source = f"volume folder {root}"
    if not root.is_dir():
        raise ValueError(f"{source}: root is not a directory; expected imagesTr/ + labelsTr/ or images/ + masks/")
    for image_dir, label_dir in (("imagesTr", "labelsTr"), ("images", "masks")):
        if (root / image_dir).is_dir() and (root / label_dir).is_dir():
            break
    else:
        raise ValueError(f"{source}: found neither imagesTr/ + labelsTr/ (Decathlon) nor images/ + masks/; "
                         f"present: {sorted(p.name for p in root.iterdir())}")
    images = _nifti_files(root / image_dir)
    labels = _nifti_files(root / label_dir)
    if not images:
        raise ValueError(f"{source}: no NIfTI files (.nii, .nii.gz) in {root / image_dir}")
    grouped: dict[str, list[tuple[int, Path]]] = {}
    modality_named = all((m := _MODALITY_FILE.match(stem)) and m["case"] in labels for stem in images) \
        and not set(images) & set(labels)
    for stem, path in images.items():
        if modality_named:
            match = _MODALITY_FILE.match(stem)
            grouped.setdefault(match["case"], []).append((int(match["channel"]), path))
        else:
            grouped[stem] = [(0, path)]
    problems = []
    lonely_images = sorted(set(grouped) - set(labels))
    lonely_labels = sorted(set(labels) - set(grouped))
    if lonely_images:
        problems.append(f"image(s) without a label in {root / label_dir}: {_shown(lonely_images)}")
    if lonely_labels:
        problems.append(f"label(s) without an image in {root / image_dir}: {_shown(lonely_labels)}")
    for case, channels in grouped.items():
        numbers = sorted(c for c, _ in channels)
        if numbers != list(range(len(numbers))):
            problems.append(f"{case}: modality files _{'/_'.join(f'{n:04d}' for n in numbers)} are not numbered 0000, 0001, …")
    if problems:
        raise VolumeProblems(source, problems)
    meta: dict[str, Any] = {}
    meta_path = root / "dataset.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{meta_path}: not valid JSON ({error})") from None
    cases = [CaseFiles(case, tuple(p for _, p in sorted(grouped[case])), labels[case]) for case in sorted(grouped)]
    return cases, meta


def split_cases(root: Path, names: list[str], fractions: Sequence[float], seed: int) -> dict[str, list[str]]:
    """Case names per split: from ``root/splits/*.txt`` when present, else a seeded split by ``fractions``."""
    source = f"volume folder {root}"
    folder = root / "splits"
    if not folder.is_dir():
        _, val_share, test_share = fractions
        n = len(names)
        n_val = max(1, round(val_share * n))
        n_test = max(1, round(test_share * n)) if test_share > 0 else 0
        if n - n_val - n_test < 1:
            raise ValueError(f"{source}: {n} case(s) cannot fill train, val and test with split_fractions "
                             f"{list(fractions)}; add cases or use a test share of 0 (test reuses val)")
        order = [names[k] for k in np.random.default_rng(seed).permutation(n)]
        val, test, train = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
        return {"train": sorted(train), "val": sorted(val), "test": sorted(test or val)}
    known = set(names)
    out: dict[str, list[str]] = {}
    for split in SPLITS:
        path = folder / f"{split}.txt"
        if not path.is_file():
            if split == "test":
                continue
            raise ValueError(f"{source}: {path} is missing; splits/ needs train.txt and val.txt (test.txt optional)")
        listed = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
        out[split] = [name for name in listed if name]
        unknown = [name for name in out[split] if name not in known]
        if not out[split] or unknown:
            raise ValueError(f"{source}: {path} " + (f"names unknown cases: {_shown(unknown)}" if unknown
                                                     else "lists no cases") + f"; known cases: {_shown(sorted(known))}")
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = sorted(set(out.get(first, ())) & set(out.get(second, ())))
        if shared:
            raise ValueError(f"{source}: cases in both splits/{first}.txt and splits/{second}.txt: {_shown(shared)}")
    out.setdefault("test", out["val"])
    return out


class VolumeFolderDataModule(VolumeDataModule):
    """NIfTI volumes from ``root`` (module docstring).

    Args:
        root: the dataset folder.
        num_classes: classes including background; ``None``: from ``dataset.json`` "labels".
        in_channels: image channels; ``None``: from the data (all cases must agree).
        normalize: ``zscore``, ``ct`` or ``none`` (:mod:`~datamodules.volumes.preprocess`).
        ct_window: ``[low, high]`` HU for ``normalize: ct``.
        target_spacing: ``[sx, sy, sz]`` mm to resample every case to, or ``None`` (keep the grid).
        affine_tolerance: largest absolute difference allowed between image and label affines (mm).
        split_fractions, split_seed: the seeded split when ``splits/`` is absent.
        cache_max_gb: keep the preprocessed volumes in memory up to this size.
        Others: :class:`~datamodules.volumes.base.VolumeDataModule`'s.
    """

    def __init__(
        self,
        root: str | Path,
        num_classes: int | None = None,
        in_channels: int | None = None,
        class_names: Sequence[str] | None = None,
        normalize: str = "zscore",
        ct_window: Sequence[float] | None = None,
        target_spacing: Sequence[float] | None = None,
        affine_tolerance: float = 1e-3,
        split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
        split_seed: int = 0,
        cache_max_gb: float = 4.0,
        **kwargs: Any,
    ) -> None:
        self.root = Path(root).expanduser()
        self.source = f"volume folder {self.root}"
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"VolumeFolderDataModule: normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if normalize == "ct" and (ct_window is None or len(ct_window) != 2 or ct_window[1] <= ct_window[0]):
            raise ValueError(f"VolumeFolderDataModule: normalize=ct needs ct_window [low, high] HU, got {ct_window}")
        if target_spacing is not None and (len(target_spacing) != 3 or min(target_spacing) <= 0):
            raise ValueError(f"VolumeFolderDataModule: target_spacing must be three positive mm values or null, "
                             f"got {target_spacing}")
        fractions = [float(f) for f in split_fractions]
        if len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0 or fractions[1] <= 0 \
                or abs(sum(fractions) - 1) > 1e-6:
            raise ValueError(f"VolumeFolderDataModule: split_fractions must be three shares (train, val, test) "
                             f"summing to 1 with train and val > 0, got {list(split_fractions)}")
        self.cases, self.meta = self.list_cases()
        label_names = _label_names(self.meta.get("labels"))
        if num_classes is None:
            if not isinstance(label_names, dict) or not label_names:
                raise ValueError(f"{self.source}: num_classes is null and dataset.json has no \"labels\"; set "
                                 "datamodule.num_classes")
            num_classes = len(label_names)
        if class_names is None and isinstance(label_names, dict) and len(label_names) == num_classes:
            class_names = [str(label_names.get(str(k), f"class_{k}")) for k in range(num_classes)]
        modality = self.meta.get("modality") or self.meta.get("channel_names")
        if in_channels is None and isinstance(modality, dict) and modality:
            in_channels = len(modality)
        super().__init__(num_classes=num_classes, in_channels=in_channels, class_names=class_names, **kwargs)
        self.normalize = normalize
        self.ct_window = list(ct_window) if ct_window is not None else None
        self.target_spacing = tuple(float(s) for s in target_spacing) if target_spacing is not None else None
        self.affine_tolerance = float(affine_tolerance)
        self.cache_max_gb = check_gb(self.owner, "cache_max_gb", cache_max_gb)
        self.splits = self.split_cases([c.name for c in self.cases], fractions, split_seed)
        if self.in_channels is None:
            self.in_channels = self._channels_from_headers()

    # ----------------------------------------------------------------- layout (subclass hooks)
    def list_cases(self) -> tuple[list[CaseFiles], dict[str, Any]]:
        """The cases under ``self.root`` and the parsed ``dataset.json``; ``datamodule=msd`` reads it strictly."""
        return list_cases(self.root)

    def split_cases(self, names: list[str], fractions: Sequence[float], seed: int) -> dict[str, list[str]]:
        """Case names per split; ``datamodule=msd`` applies a committed split file instead."""
        return split_cases(self.root, names, fractions, seed)

    # ----------------------------------------------------------------- loading
    def _channels_from_headers(self) -> int:
        import nibabel as nib

        files = self.cases[0]
        if len(files.images) > 1:
            return len(files.images)
        try:
            shape = nib.load(str(files.images[0])).shape
        except Exception:
            return 1  # the setup pass reports the unreadable file
        return int(shape[-1]) if len(shape) in (4, 5) else 1

    def read_case(self, files: CaseFiles) -> Volume:
        """One case read, checked and preprocessed; ``ValueError`` naming the case on any problem."""
        parts = [read_image(path) for path in files.images]
        image = np.concatenate([p.array for p in parts]) if len(parts) > 1 else parts[0].array
        label_file = read_labels(files.labels)
        problems = []
        for part, path in zip(parts, files.images):
            if part.array.shape[1:] != label_file.array.shape:
                problems.append(f"image {path.name} shape {list(part.array.shape[1:])} != label {files.labels.name} "
                                f"shape {list(label_file.array.shape)}")
            elif not np.allclose(part.affine, label_file.affine, atol=self.affine_tolerance, rtol=0):
                worst = float(np.abs(part.affine - label_file.affine).max())
                problems.append(f"image {path.name} and label {files.labels.name} affines differ by up to "
                                f"{worst:.4g} mm (tolerance affine_tolerance={self.affine_tolerance}); the label "
                                "is not on the image's grid")
        if image.shape[0] != self.in_channels:
            problems.append(f"{image.shape[0]} image channel(s), expected in_channels={self.in_channels} "
                            "(all cases must have the same modalities)")
        if not np.isfinite(image).all():
            problems.append("image holds NaN or infinite values")
        labels = label_file.array
        if labels.dtype.kind == "f":
            if not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels)):
                values = np.unique(labels[labels != np.round(labels)])[:5].tolist() if np.isfinite(labels).all() \
                    else ["nan/inf"]
                problems.append(f"label {files.labels.name} holds non-integer values {values}")
            labels = np.round(np.nan_to_num(labels)).astype(np.int64)
        labels = labels.astype(np.int64)
        bad = (labels < 0) | ((labels >= self.num_classes) & (labels != (self.ignore_index if self.ignore_index
                                                                         is not None else -1)))
        if bad.any():
            problems.append(f"label {files.labels.name} values {np.unique(labels[bad])[:10].tolist()} are not class "
                            f"ids in [0, {self.num_classes}) nor ignore_index={self.ignore_index}; set num_classes")
        if problems:
            raise ValueError(f"{files.name}: " + "; ".join(problems))
        spacing = parts[0].spacing
        image = normalize_intensity(image, self.normalize, self.ct_window)
        dtype = np.uint8 if max(self.num_classes - 1, self.ignore_index or 0) <= 255 else np.int32
        labels = labels.astype(dtype)
        if self.target_spacing is not None:
            image, labels, spacing = resample(image, labels, spacing, self.target_spacing)
        return Volume(files.name, np.ascontiguousarray(image), np.ascontiguousarray(labels), spacing)

    def _checked(self, files: CaseFiles) -> tuple[Volume | None, str | None]:
        try:
            return self.read_case(files), None
        except (VolumeReadError, ValueError) as error:
            return None, str(error)

    def _estimated_bytes(self) -> int:
        import nibabel as nib

        total = 0
        for files in self.cases:
            try:
                header = nib.load(str(files.labels)).header
            except Exception:
                continue  # reported by the setup pass
            shape, spacing = header.get_data_shape()[:3], header.get_zooms()[:3]
            if self.target_spacing is not None:
                shape = resampled_shape(shape, spacing, self.target_spacing)
            total += int(np.prod(shape)) * (4 * (self.in_channels or 1) + 1)
        return total

    def load_volumes(self) -> dict[str, VolumeStore]:
        by_name = {files.name: files for files in self.cases}
        used = sorted({name for split in SPLITS for name in self.splits[split]})
        cache = self._estimated_bytes() <= self.cache_max_gb * 2**30
        if not cache:
            log.warning("%s: preprocessed volumes exceed cache_max_gb=%.1f; cases are re-read on each access",
                        self.source, self.cache_max_gb)
        volumes: dict[str, Volume] = {}
        problems = []
        with ThreadPoolExecutor(2) as pool:
            for name, (volume, problem) in zip(used, pool.map(lambda n: self._checked(by_name[n]), used)):
                if problem:
                    problems.append(problem)
                elif cache:
                    volumes[name] = volume
        if problems:
            raise VolumeProblems(self.source, problems)
        stores = {}
        for split in SPLITS:
            names = self.splits[split]
            if cache:
                stores[split] = VolumeStore(names, cached=[volumes[n] for n in names])
            else:
                stores[split] = VolumeStore(names, loader=lambda k, names=names: self.read_case(by_name[names[k]]))
        return stores
