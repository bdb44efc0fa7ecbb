"""Segmentation on image/mask files: patch training, whole-image sliding-window evaluation.

The shared engine behind ``datamodule=folder`` and the torchvision sets (VOC, Oxford-IIIT Pet,
Cityscapes). A subclass only says which files form each split (:meth:`FileSegDataModule.list_samples`)
and, if needed, how stored mask values map to class ids; everything else lives here:

- **setup pass** — every image, mask and roi of every split is decoded once (in threads) and checked:
  readable, mask/roi size equal to the image size, channels compatible with ``in_channels``, mask
  values known. All problems are collected and raised as *one* ``ValueError`` naming the files,
  before any training step. The same pass fills the in-memory cache (when the decoded data fit in
  ``cache_max_gb``), counts class pixels and accumulates the normalisation statistics, so those cost
  no extra decoding.
- **mask values** — ``mask_values`` maps stored values to class ids (a value may map to
  ``ignore_index``); stored values outside the mapping are an error. Without a mapping, stored values
  are class ids, and a two-class dataset whose masks hold only 0 and 255 reads 255 as class 1.
  Roi pixels equal to 0 become ``ignore_index``.
- **training** — random patches of ``patch_size`` drawn by :class:`~datamodules.patch_sampler.PatchSampler`
  (``foreground_share`` of them centred on foreground, per class), augmented jointly (image + mask),
  then normalised. Patch pixels outside the image are padded: image with the channel mean (0 after
  normalisation), mask with ``ignore_index``.
- **evaluation** — whole images (``eval_batch_size`` 1, or larger with padding to the batch's largest
  image, padding ignored); :attr:`eval_window` asks for sliding-window inference over ``patch_size``
  windows (the run's builder turns it into the model's inferer).
- **normalisation** — ``normalize="auto"``: per-channel mean and std over the training split's pixels
  (images scaled to [0, 1] by their dtype's maximum first); a mapping ``{mean: [...], std: [...]}``
  uses given values; ``"none"``: no normalisation.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from common.eval_window import window_options
from common.names import SPLITS
from datamodules.augment import build_augment
from datamodules.base import check_gb, check_int, invalid, renamed_option
from datamodules.image_io import ImageReadError, probe, read_image, read_mask
from datamodules.labels import LabelSpec, SegDataModule
from datamodules.patch_sampler import ForegroundIndex, PatchSampler
from datamodules.seg_datasets import Moments, Normalizer, PatchDataset, WholeImageDataset, pad_collate
from datamodules.seg_samples import DataProblems, MaskEncoder, SampleFiles, SampleStore

__all__ = ["DataProblems", "FileSegDataModule", "SampleFiles"]

log = logging.getLogger(__name__)



class FileSegDataModule(SegDataModule):
    """Segmentation over image/mask files with patch training and sliding-window evaluation.

    Subclasses implement :meth:`list_samples`. Members of :class:`datamodules.contract.LossbenchData`:
    ``num_classes`` (incl. background; binary: 2), ``in_channels`` (``None`` in the config: 3 if any
    image is colour, else 1, from the file headers), ``class_names``, ``eval_window`` (``patch_size``
    and the ``sliding_window`` options: how the model should evaluate whole images) and
    :meth:`class_pixel_counts`; plus ``mode`` and ``ignore_index`` (an int ≥ ``num_classes``: it marks
    padding and roi-outside pixels). The shared options are :class:`~datamodules.base.BaseDataModule`'s;
    ``cache_images`` is the deprecated name of ``cache``. See the module docstring for the pipeline.
    """

    loader_defaults = {"num_workers": 2, "persistent_workers": True}

    def __init__(
        self,
        num_classes: int,
        mode: str = "multiclass",
        class_names: Sequence[str] | None = None,
        ignore_index: int = 255,
        in_channels: int | None = None,
        mask_values: Mapping[int, int] | None = None,
        patch_size: Sequence[int] = (128, 128),
        patches_per_epoch: int = 512,
        foreground_share: float = 0.33,
        max_foreground_locations: int = 10_000,
        eval_batch_size: int = 1,
        augment: Mapping[str, Any] | None = None,
        normalize: str | Mapping[str, Sequence[float]] = "auto",
        cache: bool = True,
        cache_max_gb: float = 4.0,
        sliding_window: Mapping[str, Any] | None = None,
        seed: int = 0,
        cache_images: bool | None = None,
        **loader: Any,
    ) -> None:
        owner = self.owner
        super().__init__(LabelSpec(num_classes, mode, class_names, ignore_index, ignore_required=True, owner=owner),
                         seed=seed, **loader)
        if in_channels not in (None, 1, 3):
            invalid(owner, "in_channels", in_channels, "1, 3 or null (follow the data)")
        patch = tuple(int(v) for v in patch_size)
        if len(patch) != 2 or min(patch) < 1:
            invalid(owner, "patch_size", list(patch_size), "two positive ints [H, W]")
        self.patches_per_epoch = check_int(owner, "patches_per_epoch", patches_per_epoch, 1)
        self.eval_batch_size = check_int(owner, "eval_batch_size", eval_batch_size, 1)
        self.max_foreground_locations = check_int(owner, "max_foreground_locations", max_foreground_locations, 1)
        if not 0.0 <= foreground_share <= 1.0:
            invalid(owner, "foreground_share", foreground_share, "a share in [0, 1]")
        self.patch_size = patch
        self.foreground_share = float(foreground_share)
        self.normalize_spec = normalize
        self.cache = bool(renamed_option(owner, "cache_images", cache_images, "cache", cache))
        self.cache_max_gb = check_gb(owner, "cache_max_gb", cache_max_gb)
        self.transform = build_augment(augment, mask_fill=ignore_index)
        self._mask_values = self._check_mask_values(mask_values)
        self.eval_window = {"patch_size": patch, **window_options(f"{owner}: sliding_window", sliding_window or {}, 2)}
        self.samples = self._checked_samples(self.list_samples())
        self.in_channels = in_channels if in_channels is not None else self._channels_from_headers()
        self._prepared = False

    # ----------------------------------------------------------------- subclass API
    def list_samples(self) -> dict[str, list[SampleFiles]]:
        """``{"train": [...], "val": [...], "test": [...]}``; raise ``ValueError`` naming missing files."""
        raise NotImplementedError

    @property
    def source(self) -> str:
        """How error messages name this dataset (e.g. its root folder)."""
        return type(self).__name__

    # ----------------------------------------------------------------- public API
    def setup(self, stage: str | None = None) -> None:
        self.prepare_data_pass()

    def class_pixel_counts(self) -> torch.Tensor:
        """Pixels per class over the training split, float64 ``(num_classes,)``; ignored pixels excluded."""
        self.prepare_data_pass()
        return self._class_counts.clone()

    @property
    def normalization(self) -> dict[str, list[float]]:
        """The per-channel ``mean`` and ``std`` applied to images scaled to [0, 1]."""
        self.prepare_data_pass()
        return {"mean": self._normalizer.mean.view(-1).tolist(), "std": self._normalizer.std.view(-1).tolist()}

    def split_masks(self, split: str) -> Iterator[np.ndarray]:
        """The encoded ``(H, W)`` masks of ``split`` (class ids, ``ignore_index`` for ignored pixels)."""
        self.prepare_data_pass()
        store = self._stores[split]
        for index in range(len(store)):
            yield store.get(index)[1]

    def prepare_data_pass(self) -> None:
        """The setup pass (see module docstring); runs once."""
        if self._prepared:
            return
        cache = self.cache and self._decoded_bytes() <= self.cache_max_gb * 2**30
        if self.cache and not cache:
            log.warning("%s: decoded data exceed cache_max_gb=%.1f; images are decoded on demand",
                        self.source, self.cache_max_gb)
        encoder = self._build_encoder()
        problems: list[str] = []
        counts = np.zeros(self.num_classes, dtype=np.float64)
        moments = Moments(self.in_channels)
        foreground = ForegroundIndex(range(1, self.num_classes), self.max_foreground_locations, seed=self.seed)
        cached: dict[str, list] = {split: [] for split in SPLITS}
        train_sizes = []
        for split in SPLITS:
            for files, (image, mask, problem) in zip(self.samples[split], self._load_all(self.samples[split], encoder)):
                if problem:
                    problems.append(problem)
                    continue
                if split == "train":
                    counts += np.bincount(mask.ravel(), minlength=self.ignore_index + 1)[: self.num_classes]
                    moments.add(image)
                    foreground.add(mask)
                    train_sizes.append(mask.shape)
                if cache:
                    cached[split].append((image, mask))
        if problems:
            raise DataProblems(self.source, sorted(set(problems)))
        self._class_counts = torch.from_numpy(counts)
        self._normalizer = self._build_normalizer(moments)
        self._foreground_index = foreground
        self._train_sizes = train_sizes
        self._stores = {split: SampleStore(self.samples[split], encoder, cached[split] if cache else None) for split in SPLITS}
        self._prepared = True

    def train_dataloader(self) -> DataLoader:
        self.prepare_data_pass()
        dataset = PatchDataset(self._stores["train"], self.patch_size, self._normalizer, self.transform,
                               self.ignore_index)
        sampler = PatchSampler(self._train_sizes, self.patch_size, self.patches_per_epoch, self.foreground_share,
                               self._foreground_index, seed=self.seed)
        return self.loader(dataset, training=True, sampler=sampler)

    def predict_dataloader(self) -> DataLoader:
        return self.eval_loader("test", shard=False)  # Lightning shards prediction itself

    # ----------------------------------------------------------------- internals
    def eval_loader(self, split: str, shard: bool = True) -> DataLoader:
        self.prepare_data_pass()
        dataset = WholeImageDataset(self._stores[split], self._normalizer)
        return self.loader(dataset, batch_size=self.eval_batch_size, collate_fn=pad_collate(self.ignore_index),
                           name=f"the {split} split", shard=shard)

    def _check_mask_values(self, mask_values: Mapping[int, int] | None) -> dict[int, int] | None:
        if mask_values is None:
            return None
        mapping = {int(k): int(v) for k, v in dict(mask_values).items()}
        bad = {k: v for k, v in mapping.items() if not (0 <= v < self.num_classes or v == self.ignore_index)}
        if bad or any(not 0 <= k <= 65535 for k in mapping):
            raise ValueError(f"{type(self).__name__}: mask_values maps stored values 0..65535 to class ids in "
                             f"[0, {self.num_classes}) or ignore_index={self.ignore_index}; got {mapping}")
        return mapping

    def _checked_samples(self, samples: dict[str, list[SampleFiles]]) -> dict[str, list[SampleFiles]]:
        empty = [split for split in SPLITS if not samples.get(split)]
        if empty:
            raise ValueError(f"{self.source}: empty split(s) {empty}; every split needs at least one image "
                             "(add images, or change the split files / fractions)")
        return {split: list(samples[split]) for split in SPLITS}

    def _unique_samples(self) -> list[SampleFiles]:
        seen: dict[Path, SampleFiles] = {}
        for split in SPLITS:
            for files in self.samples[split]:
                seen.setdefault(files.image, files)
        return list(seen.values())

    def _channels_from_headers(self) -> int:
        channels = 1
        for files in self._unique_samples():
            try:
                if probe(files.image).channels == 3:
                    channels = 3
                    break
            except ImageReadError:
                continue  # reported with every other problem by the setup pass
        return channels

    def _decoded_bytes(self) -> int:
        """Upper bound of the decoded size of every split (16-bit channels plus a 4-byte mask per pixel)."""
        total = 0
        for files in self._unique_samples():
            try:
                info = probe(files.image)
            except ImageReadError:
                continue  # reported by the setup pass
            total += info.height * info.width * (2 * info.channels + 4)
        return total

    def _load_all(self, samples: Sequence[SampleFiles], encoder: MaskEncoder) -> Iterator[tuple]:
        """``(image, mask, problem)`` per sample, decoded in threads a few at a time (bounded memory)."""
        workers = max(1, min(8, os.cpu_count() or 1))
        iterator = iter(samples)
        with ThreadPoolExecutor(workers) as pool:
            while chunk := list(islice(iterator, 4 * workers)):
                yield from pool.map(lambda files: self._load_checked(files, encoder), chunk)

    def _load_checked(self, files: SampleFiles, encoder: MaskEncoder) -> tuple[Any, Any, str | None]:
        try:
            image = read_image(files.image)
            raw = read_mask(files.mask)
            roi = read_mask(files.roi) if files.roi is not None else None
        except ImageReadError as error:
            return None, None, str(error)
        size = image.shape[:2]
        if raw.shape != size:
            return None, None, (f"{files.mask}: mask size {raw.shape[1]}x{raw.shape[0]} (WxH) differs from image "
                                f"{files.image.name} size {size[1]}x{size[0]}; masks must match their image pixel for pixel")
        if roi is not None and roi.shape != size:
            return None, None, (f"{files.roi}: roi size {roi.shape[1]}x{roi.shape[0]} (WxH) differs from image "
                                f"{files.image.name} size {size[1]}x{size[0]}")
        if self.in_channels == 1 and image.shape[2] == 3:
            return None, None, f"{files.image}: colour image but in_channels=1; set in_channels: 3 (or null)"
        if raw.size and (int(raw.min()) < 0 or int(raw.max()) > 65535):
            return None, None, f"{files.mask}: mask values outside 0..65535 (min {raw.min()}, max {raw.max()})"
        mapped = encoder.map(raw)
        bad = (mapped >= self.num_classes) & (mapped != self.ignore_index)
        if bad.any():
            values = np.unique(raw[bad]).tolist()
            shown = values[:10] + (["…"] if len(values) > 10 else [])
            if self._mask_values is not None:
                return None, None, (f"{files.mask}: stored values {shown} are not in mask_values "
                                    f"{sorted(self._mask_values)}; add them to mask_values")
            return None, None, (f"{files.mask}: values {shown} are not class ids in [0, {self.num_classes}) nor "
                                f"ignore_index={self.ignore_index}; set num_classes, or map them with mask_values")
        return image, encoder.finish(mapped, roi), None

    def _build_encoder(self) -> MaskEncoder:
        dtype = np.dtype(np.uint8 if self.ignore_index <= 255 else np.int32)
        mapping = self._mask_values
        if mapping is None and self.num_classes == 2 and self._masks_are_0_255():
            log.info("%s: masks hold only 0 and 255; reading 255 as class 1", self.source)
            mapping = {0: 0, 255: 1}
        if mapping is None:
            return MaskEncoder(None, self.ignore_index, dtype)
        # Unmapped values get a sentinel above every valid id, so the setup pass names them.
        table = np.full(65536, np.iinfo(np.int32).max, dtype=np.int64)
        table[self.ignore_index] = self.ignore_index
        for stored_value, class_id in mapping.items():
            table[stored_value] = class_id
        return MaskEncoder(table, self.ignore_index, dtype)

    def _masks_are_0_255(self) -> bool:
        """True when the masks hold 255 and nothing but 0 and 255 (binary masks saved as 0/255)."""
        stored: set[int] = set()
        masks = {files.mask for split in SPLITS for files in self.samples[split]}
        with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
            for values in pool.map(_stored_values, sorted(masks)):
                stored |= values
                if not stored <= {0, 255}:
                    return False
        return 255 in stored

    def _build_normalizer(self, moments: Moments) -> Normalizer:
        spec = self.normalize_spec
        channels = self.in_channels
        if spec in (None, "none"):
            return Normalizer(channels, [0.0] * channels, [1.0] * channels)
        if isinstance(spec, Mapping):
            mean, std = list(spec.get("mean", ())), list(spec.get("std", ()))
            if len(mean) != channels or len(std) != channels or any(s <= 0 for s in std):
                raise ValueError(f"{self.source}: normalize needs mean and std with {channels} values each "
                                 f"(std > 0), got {dict(spec)}")
            return Normalizer(channels, mean, std)
        if spec != "auto":
            raise ValueError(f"{self.source}: normalize must be 'auto', 'none' or {{mean: [...], std: [...]}}, got {spec!r}")
        mean, std = moments.mean_std()
        return Normalizer(channels, mean, std)


def _stored_values(path: Path) -> set[int]:
    try:
        return set(np.unique(read_mask(path)).tolist())
    except ImageReadError:
        return set()  # reported by the setup pass

