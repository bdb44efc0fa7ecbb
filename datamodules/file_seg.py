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
from dataclasses import dataclass
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.augment import augment_pair, build_augment
from datamodules.image_io import ImageReadError, image_scale, match_channels, probe, read_image, read_mask
from datamodules.patch_sampler import ForegroundIndex, PatchSampler, crop

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MODES = ("multiclass", "binary")
_MAX_LISTED = 20


@dataclass(frozen=True)
class SampleFiles:
    """The files of one sample: image, mask and optional region-of-interest mask."""

    stem: str
    image: Path
    mask: Path
    roi: Path | None = None


class DataProblems(ValueError):
    """Every problem the setup pass found in the data, one line per file."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        listed = "\n  - ".join(problems[:_MAX_LISTED])
        more = f"\n  … and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        super().__init__(f"{source}: {len(problems)} problem(s) in the data; fix them and rerun:\n  - {listed}{more}")
        self.problems = list(problems)


class _Store:
    """Decoded samples of one split: from the in-memory cache, or decoded on demand (small per-process LRU)."""

    _RECENT = 4  # decoded samples kept per process when not cached (consecutive patches often share one)

    def __init__(self, samples: Sequence[SampleFiles], encoder: "_MaskEncoder", cached: list | None) -> None:
        self.samples = list(samples)
        self.encoder = encoder
        self.cached = cached
        self._recent: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.cached is not None:
            return self.cached[index]
        if index not in self._recent:
            files = self.samples[index]
            roi = read_mask(files.roi) if files.roi is not None else None
            self._recent[index] = (read_image(files.image), self.encoder.finish(self.encoder.map(read_mask(files.mask)), roi))
            if len(self._recent) > self._RECENT:
                self._recent.popitem(last=False)
        self._recent.move_to_end(index)
        return self._recent[index]


class _MaskEncoder:
    """Stored mask values → class ids through a lookup table; roi zeros → ignore_index."""

    def __init__(self, table: np.ndarray | None, ignore_index: int, dtype: np.dtype) -> None:
        self.table = table
        self.ignore_index = ignore_index
        self.dtype = dtype

    def map(self, raw: np.ndarray) -> np.ndarray:
        """Stored values → int64 class ids (unmapped values become a sentinel above every id)."""
        return self.table[raw] if self.table is not None else raw.astype(np.int64)

    def finish(self, mapped: np.ndarray, roi: np.ndarray | None) -> np.ndarray:
        """Validated class ids → compact storage dtype, roi zeros → ignore_index."""
        if roi is not None:
            mapped = np.where(roi == 0, self.ignore_index, mapped)
        return np.ascontiguousarray(mapped, dtype=self.dtype)


class PatchDataset(Dataset):
    """Training patches: indexed by ``(image_index, top, left)`` windows from a :class:`PatchSampler`."""

    def __init__(self, store: _Store, patch_size: tuple[int, int], normalizer: "_Normalizer",
                 transform: Any, ignore_index: int) -> None:
        self.store = store
        self.patch_size = patch_size
        self.normalizer = normalizer
        self.transform = transform
        self.ignore_index = ignore_index

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, window: tuple[int, int, int]) -> dict[str, torch.Tensor]:
        index, top, left = window
        image, mask = self.store.get(index)
        image = crop(image, top, left, self.patch_size, self.normalizer.raw_fill(image))
        mask = crop(mask, top, left, self.patch_size, self.ignore_index)
        image_t = self.normalizer.to_unit(image)
        mask_t = torch.from_numpy(mask.astype(np.int64))
        image_t, mask_t = augment_pair(self.transform, image_t, mask_t)
        return {"image": self.normalizer.normalize(image_t), "mask": mask_t}


class WholeImageDataset(Dataset):
    """Whole images for evaluation: ``{"image": (C, H, W) normalised, "mask": (H, W) int64}``."""

    def __init__(self, store: _Store, normalizer: "_Normalizer") -> None:
        self.store = store
        self.normalizer = normalizer

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, mask = self.store.get(index)
        return {"image": self.normalizer.normalize(self.normalizer.to_unit(image)),
                "mask": torch.from_numpy(mask.astype(np.int64))}


class _Normalizer:
    """Raw arrays → float [0, 1] tensors with ``channels`` channels → ``(x - mean) / std``."""

    def __init__(self, channels: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.channels = channels
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1)

    def to_unit(self, image: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        scale = image_scale(image.dtype)
        return match_channels(tensor / scale if scale != 1.0 else tensor, self.channels)

    def raw_fill(self, image: np.ndarray) -> np.ndarray:
        """The channel mean in the stored units of ``image`` (padding that normalises to 0)."""
        fill = self.mean.view(-1)[: image.shape[2]].numpy() * image_scale(image.dtype)
        return fill.round().astype(image.dtype) if image.dtype.kind in "iu" else fill.astype(image.dtype)

    def normalize(self, tensor: torch.Tensor) -> torch.Tensor:
        return (tensor - self.mean) / self.std


def pad_collate(ignore_index: int):
    """Collate whole images of differing sizes: pad to the largest (image 0, mask ``ignore_index``)."""

    def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        height = max(item["image"].shape[-2] for item in items)
        width = max(item["image"].shape[-1] for item in items)
        images = torch.zeros((len(items), items[0]["image"].shape[0], height, width))
        masks = torch.full((len(items), height, width), ignore_index, dtype=torch.int64)
        for k, item in enumerate(items):
            h, w = item["mask"].shape
            images[k, :, :h, :w] = item["image"]
            masks[k, :h, :w] = item["mask"]
        return {"image": images, "mask": masks}

    return collate


class FileSegDataModule(pl.LightningDataModule):
    """Segmentation over image/mask files with patch training and sliding-window evaluation.

    Subclasses implement :meth:`list_samples`. Attributes follow docs/architecture.md: ``num_classes``
    (incl. background; binary: 2), ``mode``, ``in_channels`` (``None`` in the config: 3 if any image
    is colour, else 1, from the file headers), ``ignore_index`` (an int ≥ ``num_classes``: it marks
    padding and roi-outside pixels), ``class_names``; plus ``eval_window``, the sliding-window
    settings (``patch_size`` and the ``sliding_window`` options) the model should evaluate with.
    See the module docstring for the data pipeline.
    """

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
        batch_size: int = 8,
        eval_batch_size: int = 1,
        num_workers: int = 2,
        pin_memory: bool | None = None,
        augment: Mapping[str, Any] | None = None,
        normalize: str | Mapping[str, Sequence[float]] = "auto",
        cache_images: bool = True,
        cache_max_gb: float = 4.0,
        sliding_window: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"{name}: num_classes must be an int >= 2 (background included), got {num_classes!r}")
        if mode not in MODES:
            raise ValueError(f"{name}: mode must be one of {MODES}, got {mode!r}")
        if mode == "binary" and num_classes != 2:
            raise ValueError(f"{name}: mode='binary' needs num_classes=2, got {num_classes}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int) or not num_classes <= ignore_index <= 65535:
            raise ValueError(f"{name}: ignore_index must be an int in [num_classes, 65535] (it marks padding and "
                             f"roi-outside pixels), got {ignore_index!r}")
        if in_channels not in (None, 1, 3):
            raise ValueError(f"{name}: in_channels must be 1, 3 or null (follow the data), got {in_channels!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{name}: class_names has {len(class_names)} names, expected num_classes={num_classes}")
        patch = tuple(int(v) for v in patch_size)
        if len(patch) != 2 or min(patch) < 1:
            raise ValueError(f"{name}: patch_size must be two positive ints [H, W], got {list(patch_size)}")
        for arg, value, low in (("patches_per_epoch", patches_per_epoch, 1), ("batch_size", batch_size, 1),
                                ("eval_batch_size", eval_batch_size, 1), ("num_workers", num_workers, 0),
                                ("max_foreground_locations", max_foreground_locations, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: {arg} must be an int >= {low}, got {value!r}")
        if not 0.0 <= foreground_share <= 1.0:
            raise ValueError(f"{name}: foreground_share must be in [0, 1], got {foreground_share!r}")
        if cache_max_gb < 0:
            raise ValueError(f"{name}: cache_max_gb must be >= 0, got {cache_max_gb!r}")
        self.num_classes = num_classes
        self.mode = mode
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else \
            ["background"] + [f"class_{k}" for k in range(1, num_classes)]
        self.patch_size = patch
        self.patches_per_epoch = patches_per_epoch
        self.foreground_share = float(foreground_share)
        self.max_foreground_locations = max_foreground_locations
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.normalize_spec = normalize
        self.cache_images = cache_images
        self.cache_max_gb = float(cache_max_gb)
        self.seed = seed
        self.transform = build_augment(augment, mask_fill=ignore_index)
        self._mask_values = self._check_mask_values(mask_values)
        self.eval_window = {"patch_size": patch, **dict(sliding_window or {})}
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
        cache = self.cache_images and self._decoded_bytes() <= self.cache_max_gb * 2**30
        if self.cache_images and not cache:
            log.warning("%s: decoded data exceed cache_max_gb=%.1f; images are decoded on demand",
                        self.source, self.cache_max_gb)
        encoder = self._build_encoder()
        problems: list[str] = []
        counts = np.zeros(self.num_classes, dtype=np.float64)
        moments = _Moments(self.in_channels)
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
        self._stores = {split: _Store(self.samples[split], encoder, cached[split] if cache else None) for split in SPLITS}
        self._prepared = True

    def train_dataloader(self) -> DataLoader:
        self.prepare_data_pass()
        dataset = PatchDataset(self._stores["train"], self.patch_size, self._normalizer, self.transform,
                               self.ignore_index)
        sampler = PatchSampler(self._train_sizes, self.patch_size, self.patches_per_epoch, self.foreground_share,
                               self._foreground_index, seed=self.seed)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, **self._loader_options())

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    # ----------------------------------------------------------------- internals
    def _loader_options(self) -> dict[str, Any]:
        return {"num_workers": self.num_workers, "pin_memory": self.pin_memory,
                "persistent_workers": self.num_workers > 0}

    def _eval_loader(self, split: str) -> DataLoader:
        self.prepare_data_pass()
        dataset = WholeImageDataset(self._stores[split], self._normalizer)
        return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=pad_collate(self.ignore_index), **self._loader_options())

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

    def _load_all(self, samples: Sequence[SampleFiles], encoder: _MaskEncoder) -> Iterator[tuple]:
        """``(image, mask, problem)`` per sample, decoded in threads a few at a time (bounded memory)."""
        workers = max(1, min(8, os.cpu_count() or 1))
        iterator = iter(samples)
        with ThreadPoolExecutor(workers) as pool:
            while chunk := list(islice(iterator, 4 * workers)):
                yield from pool.map(lambda files: self._load_checked(files, encoder), chunk)

    def _load_checked(self, files: SampleFiles, encoder: _MaskEncoder) -> tuple[Any, Any, str | None]:
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

    def _build_encoder(self) -> _MaskEncoder:
        dtype = np.dtype(np.uint8 if self.ignore_index <= 255 else np.int32)
        mapping = self._mask_values
        if mapping is None and self.num_classes == 2 and self._masks_are_0_255():
            log.info("%s: masks hold only 0 and 255; reading 255 as class 1", self.source)
            mapping = {0: 0, 255: 1}
        if mapping is None:
            return _MaskEncoder(None, self.ignore_index, dtype)
        # Unmapped values get a sentinel above every valid id, so the setup pass names them.
        table = np.full(65536, np.iinfo(np.int32).max, dtype=np.int64)
        table[self.ignore_index] = self.ignore_index
        for stored_value, class_id in mapping.items():
            table[stored_value] = class_id
        return _MaskEncoder(table, self.ignore_index, dtype)

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

    def _build_normalizer(self, moments: "_Moments") -> _Normalizer:
        spec = self.normalize_spec
        channels = self.in_channels
        if spec in (None, "none"):
            return _Normalizer(channels, [0.0] * channels, [1.0] * channels)
        if isinstance(spec, Mapping):
            mean, std = list(spec.get("mean", ())), list(spec.get("std", ()))
            if len(mean) != channels or len(std) != channels or any(s <= 0 for s in std):
                raise ValueError(f"{self.source}: normalize needs mean and std with {channels} values each "
                                 f"(std > 0), got {dict(spec)}")
            return _Normalizer(channels, mean, std)
        if spec != "auto":
            raise ValueError(f"{self.source}: normalize must be 'auto', 'none' or {{mean: [...], std: [...]}}, got {spec!r}")
        mean, std = moments.mean_std()
        return _Normalizer(channels, mean, std)


def _stored_values(path: Path) -> set[int]:
    try:
        return set(np.unique(read_mask(path)).tolist())
    except ImageReadError:
        return set()  # reported by the setup pass


class _Moments:
    """Running per-channel sums of images scaled to [0, 1] (gray images count for every channel)."""

    def __init__(self, channels: int) -> None:
        self.total = np.zeros(channels)
        self.squares = np.zeros(channels)
        self.pixels = 0

    def add(self, image: np.ndarray) -> None:
        unit = image.reshape(-1, image.shape[2]).astype(np.float64) / image_scale(image.dtype)
        self.total += unit.sum(0)
        self.squares += np.square(unit).sum(0)
        self.pixels += unit.shape[0]

    def mean_std(self) -> tuple[list[float], list[float]]:
        mean = self.total / max(self.pixels, 1)
        std = np.sqrt(np.maximum(self.squares / max(self.pixels, 1) - mean**2, 0.0))
        std = np.where(std > 1e-6, std, 1.0)  # a constant channel is only centred
        return mean.tolist(), std.tolist()
