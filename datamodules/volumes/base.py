"""The engine shared by the 3-D datamodules: patch training, whole-volume evaluation, in-memory volumes.

A subclass provides the volumes of each split (:meth:`VolumeDataModule.load_volumes`) already
preprocessed (intensity-normalised float32 images ``(C, X, Y, Z)``, integer labels ``(X, Y, Z)``,
spacing in mm). Here:

- **training** — ``patches_per_epoch`` random windows of ``patch_size`` per epoch from
  :class:`~datamodules.volumes.patches.VolumePatchSampler` (``foreground_share`` foreground-centred,
  per class), augmented by :class:`~datamodules.volumes.augment3d.Augment3D`. Voxels of a window
  outside the volume are padded: image 0 (the normalised mean), labels ``ignore_index`` (0 when the
  datamodule has none).
- **evaluation** — whole volumes, ``eval_batch_size`` per batch; volumes of different shapes in one
  batch are padded to the largest (labels with ``ignore_index``, so that needs one). Each batch is
  ``{"image": (B, C, X, Y, Z), "mask": (B, X, Y, Z) int64, "spacing": (B, 3) float64 mm, "case": [names]}``
  (the volumes' case names, which name the rows of the per-case metrics).
  How the model should run them is stated as data in :attr:`eval_window` (window size, overlap,
  Gaussian blending, and the size up to which a whole volume goes through the net in one pass); the
  run builder turns it into an inferer, the datamodule never imports model code.
- **memory** — the preprocessed volumes stay in memory (the subclass decides when they do not fit).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from common.eval_window import window_options
from common.names import SPLITS
from datamodules.base import check_int
from datamodules.labels import LabelSpec, SegDataModule
from datamodules.volumes.augment3d import Augment3D
from datamodules.volumes.patches import VolumeForegroundIndex, VolumePatchSampler, crop3d


log = logging.getLogger(__name__)


def auto_patch_size(shapes: Sequence[Sequence[int]], spacings: Sequence[Sequence[float]], max_voxels: int,
                    multiple: int) -> tuple[int, int, int]:
    """A training window for volumes of these shapes (voxels) and spacings (mm), after nnU-Net's rule.

    Start from the median shape rounded up to a multiple of ``multiple`` (a whole typical case when it
    fits: small-organ crops such as the Decathlon hippocampus train on whole cases); while the window
    holds more than ``max_voxels``, take ``multiple`` voxels off the axis that is longest in mm (so
    anisotropic data keeps a window of similar extent in mm along each axis), never below
    ``multiple``.

    >>> auto_patch_size([(36, 50, 35)], [(1.0, 1.0, 1.0)], 65_536, 8)   # hippocampus-like crops
    (40, 40, 40)
    >>> auto_patch_size([(128, 128, 40)], [(1.0, 1.0, 3.0)], 65_536, 8)  # anisotropic MRI: 64 x 64 x 48 mm
    (64, 64, 16)
    """
    median = np.median(np.asarray(shapes, dtype=np.float64), axis=0)
    spacing = np.median(np.asarray(spacings, dtype=np.float64), axis=0)
    patch = [max(multiple, int(math.ceil(m / multiple)) * multiple) for m in median]
    while math.prod(patch) > max_voxels:
        extent_mm = [p * s if p > multiple else -1.0 for p, s in zip(patch, spacing)]
        axis = int(np.argmax(extent_mm))
        if extent_mm[axis] < 0:
            break  # every axis is at the minimum
        patch[axis] -= multiple
    return tuple(patch)


@dataclass
class Volume:
    """One preprocessed case: ``image`` float32 ``(C, X, Y, Z)``, ``labels`` integer ``(X, Y, Z)``,
    ``spacing`` mm per axis."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]

    @property
    def nbytes(self) -> int:
        return int(self.image.nbytes + self.labels.nbytes)


class VolumeStore:
    """The volumes of one split: a list held in memory, or a ``loader(index)`` called on each access."""

    def __init__(self, names: Sequence[str], cached: list[Volume] | None = None,
                 loader: Callable[[int], Volume] | None = None) -> None:
        if cached is None and loader is None:
            raise ValueError("VolumeStore needs cached volumes or a loader")
        self.names = list(names)
        self.cached = cached
        self.loader = loader

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Volume:
        return self.cached[index] if self.cached is not None else self.loader(index)


class PatchDataset3D(Dataset):
    """Training patches indexed by ``(volume, x0, y0, z0)`` windows."""

    def __init__(self, store: VolumeStore, patch_size: tuple[int, int, int], augment: Augment3D | None,
                 label_fill: int) -> None:
        self.store = store
        self.patch_size = patch_size
        self.augment = augment
        self.label_fill = label_fill

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, window: tuple[int, int, int, int]) -> dict[str, torch.Tensor]:
        volume = self.store[window[0]]
        starts = window[1:]
        image = torch.from_numpy(crop3d(volume.image, starts, self.patch_size, 0.0))
        labels = torch.from_numpy(crop3d(volume.labels, starts, self.patch_size, self.label_fill).astype(np.int64))
        if self.augment is not None:
            image, labels = self.augment(image, labels)
        return {"image": image, "mask": labels}


class WholeVolumeDataset(Dataset):
    """Whole volumes for evaluation (see the module docstring for the keys)."""

    def __init__(self, store: VolumeStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        volume = self.store[index]
        return {"image": torch.from_numpy(volume.image), "mask": torch.from_numpy(volume.labels.astype(np.int64)),
                "spacing": torch.tensor(volume.spacing, dtype=torch.float64), "case": volume.name}


def pad_collate_3d(label_fill: int | None) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """Stacks whole volumes; different shapes are padded at the far end to the batch's largest
    (image 0, labels ``label_fill``; ``None`` refuses, because padding would then count as background)."""

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        shapes = {tuple(item["mask"].shape) for item in items}
        if len(shapes) > 1 and label_fill is None:
            raise ValueError(f"eval_batch_size > 1 with volumes of shapes {sorted(shapes)} needs padding, which needs "
                             "an ignore_index; set datamodule.ignore_index (e.g. 255) or eval_batch_size: 1")
        target = tuple(max(s[a] for s in shapes) for a in range(3))
        images, masks = [], []
        for item in items:
            pad = [p for a in reversed(range(3)) for p in (0, target[a] - item["mask"].shape[a])]
            images.append(torch.nn.functional.pad(item["image"], pad, value=0.0) if any(pad) else item["image"])
            masks.append(torch.nn.functional.pad(item["mask"], pad, value=label_fill) if any(pad) else item["mask"])
        batch: dict[str, Any] = {"image": torch.stack(images), "mask": torch.stack(masks),
                                 "spacing": torch.stack([item["spacing"] for item in items])}
        if all("case" in item for item in items):
            batch["case"] = [item["case"] for item in items]
        return batch

    return collate


class VolumeDataModule(SegDataModule):
    """3-D segmentation data: patch training, whole-volume evaluation; see the module docstring.

    Args:
        num_classes: classes including background (binary mode: 2).
        mode: ``multiclass`` or ``binary`` (one-channel model, labels 0/1).
        ignore_index: label of voxels excluded from loss and metrics (padding), or ``None``.
        class_names: one per class; ``None``: background, class_1, ….
        patch_size: training window ``[X, Y, Z]`` in voxels (after any resampling), or ``"auto"``:
            sized from the training volumes by :func:`auto_patch_size` (the median case shape, cut to
            ``patch_max_voxels`` along its longest axis in mm first, in multiples of ``patch_multiple``).
        patch_max_voxels, patch_multiple: the voxel budget and the size divisor of ``patch_size: auto``
            (the net's total down-sampling: 8 for the 4-level ``unet3d``).
        patches_per_epoch, batch_size: training windows per epoch and per batch.
        foreground_share: share of windows centred on a foreground voxel (nnU-Net uses 0.33).
        max_foreground_locations: per volume and class, voxel positions kept for foreground centres.
        eval_batch_size: whole volumes per evaluation batch.
        sliding_window: the evaluation-window options of :mod:`common.eval_window`, the same keys as
            the 2-D datamodules (``overlap``, ``blend``, ``sigma_scale``, ``batch_size``,
            ``whole_input_max_pixels``: volumes up to this many voxels skip the windows and go through
            the net whole, ``pad_multiple``: default ``patch_multiple``, optional ``patch_size``).
        augment: :class:`Augment3D` keys, or ``None`` for no augmentation.
        seed: seeds the patch sampler and everything random in the data.
        batch_size, num_workers, pin_memory, persistent_workers: the loader options
            (:class:`~datamodules.base.BaseDataModule`; defaults 2, 0, null, true).
    """

    loader_defaults = {"batch_size": 2, "persistent_workers": True}

    def __init__(
        self,
        num_classes: int,
        mode: str = "multiclass",
        in_channels: int | None = 1,
        ignore_index: int | None = None,
        class_names: Sequence[str] | None = None,
        patch_size: Sequence[int] | str = (32, 32, 32),
        patch_max_voxels: int = 65_536,
        patch_multiple: int = 8,
        patches_per_epoch: int = 64,
        foreground_share: float = 0.33,
        max_foreground_locations: int = 10_000,
        eval_batch_size: int = 1,
        sliding_window: Mapping[str, Any] | None = None,
        augment: Mapping[str, Any] | None = None,
        seed: int = 0,
        **loader: Any,
    ) -> None:
        super().__init__(LabelSpec(num_classes, mode, class_names, ignore_index, owner=self.owner), seed=seed, **loader)
        name = self.owner
        if isinstance(patch_size, str):
            if patch_size != "auto":
                raise ValueError(f"{name}: patch_size must be three positive ints [X, Y, Z] or 'auto', got {patch_size!r}")
            patch = None
        else:
            patch = tuple(int(p) for p in patch_size)
            if len(patch) != 3 or min(patch) < 1:
                raise ValueError(f"{name}: patch_size must be three positive ints [X, Y, Z] or 'auto', "
                                 f"got {list(patch_size)}")
        for arg, value, low in (("patches_per_epoch", patches_per_epoch, 1), ("eval_batch_size", eval_batch_size, 1),
                                ("max_foreground_locations", max_foreground_locations, 1),
                                ("patch_max_voxels", patch_max_voxels, 1), ("patch_multiple", patch_multiple, 1)):
            check_int(name, arg, value, low)
        if not 0.0 <= foreground_share <= 1.0:
            raise ValueError(f"{name}: foreground_share must be in [0, 1], got {foreground_share!r}")
        self.in_channels = in_channels
        self.patch_size = patch
        self.patch_max_voxels = patch_max_voxels
        self.patch_multiple = patch_multiple
        self.patches_per_epoch = patches_per_epoch
        self.foreground_share = float(foreground_share)
        self.max_foreground_locations = max_foreground_locations
        self.eval_batch_size = eval_batch_size
        self._window = window_options(f"{name}: sliding_window", {"pad_multiple": patch_multiple,
                                                                     **dict(sliding_window or {})}, 3)
        self.augment = Augment3D.from_config(augment)
        self._stores: dict[str, VolumeStore] | None = None

    @property
    def eval_window(self) -> dict[str, Any]:
        """The evaluation window (:mod:`datamodules.contract`): ``patch_size`` plus the sliding-window
        options; with ``patch_size: auto`` reading it loads the volumes (the size comes from them)."""
        if self.patch_size is None:
            self.volumes()
        return {"patch_size": list(self.patch_size), **self._window}

    # ----------------------------------------------------------------- subclass API
    def load_volumes(self) -> dict[str, VolumeStore]:
        """One :class:`VolumeStore` per split; raise one ``ValueError`` naming every bad case."""
        raise NotImplementedError

    # ----------------------------------------------------------------- public API
    def setup(self, stage: str | None = None) -> None:
        self.volumes()

    def volumes(self) -> dict[str, VolumeStore]:
        """The per-split stores (loaded once)."""
        if self._stores is None:
            stores = self.load_volumes()
            empty = [split for split in SPLITS if len(stores.get(split, ())) == 0]
            if empty:
                raise ValueError(f"{type(self).__name__}: empty split(s) {empty}; every split needs at least one volume")
            self._stores = stores
            self._index_training_split()
        return self._stores

    def split_masks(self, split: str) -> Iterator[np.ndarray]:
        """The whole label volumes of ``split`` (class ids, ``ignore_index`` where ignored), one at a time."""
        store = self.volumes()[split]
        for index in range(len(store)):
            yield store[index].labels

    def class_pixel_counts(self) -> torch.Tensor:
        """Voxels per class over the training split, float64 ``(num_classes,)``; ignored voxels excluded."""
        self.volumes()
        return self._class_counts.clone()

    def train_dataloader(self) -> DataLoader:
        stores = self.volumes()
        fill = self.ignore_index if self.ignore_index is not None else 0
        dataset = PatchDataset3D(stores["train"], self.patch_size, self.augment, fill)
        sampler = VolumePatchSampler(self._foreground, self.patch_size, self.patches_per_epoch,
                                     self.foreground_share, seed=self.seed)
        return self.loader(dataset, training=True, sampler=sampler)

    def predict_dataloader(self) -> DataLoader:
        return self.eval_loader("test", shard=False)  # Lightning shards prediction itself

    # ----------------------------------------------------------------- internals
    def _index_training_split(self) -> None:
        store = self._stores["train"]
        counts = np.zeros(self.num_classes, dtype=np.float64)
        index = VolumeForegroundIndex(range(1, self.num_classes), self.max_foreground_locations, seed=self.seed)
        shapes, spacings = [], []
        for k in range(len(store)):  # one pass: a store that does not cache re-reads a case on every access
            volume = store[k]
            labels = volume.labels
            shapes.append(labels.shape)
            spacings.append(volume.spacing)
            bins = np.bincount(labels.ravel().astype(np.int64))
            counts += np.pad(bins, (0, max(self.num_classes - bins.size, 0)))[: self.num_classes]
            index.add(np.where(labels == self.ignore_index, 0, labels) if self.ignore_index is not None else labels)
        self._class_counts = torch.from_numpy(counts)
        self._foreground = index
        if self.patch_size is None:
            self.patch_size = auto_patch_size(shapes, spacings, self.patch_max_voxels, self.patch_multiple)
            log.info("%s: patch_size auto -> %s (median training case %s voxels)", self.owner,
                     list(self.patch_size), [int(v) for v in np.median(np.array(shapes), axis=0)])

    def eval_loader(self, split: str, shard: bool = True) -> DataLoader:
        dataset = WholeVolumeDataset(self.volumes()[split])
        return self.loader(dataset, batch_size=self.eval_batch_size, collate_fn=pad_collate_3d(self.ignore_index),
                           name=f"the {split} split", shard=shard)
