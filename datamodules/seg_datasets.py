"""Tensors from decoded samples: training patches, whole evaluation images, normalisation and the
statistics behind ``normalize: auto``, and the collate that pads images of differing sizes."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.augment import augment_pair
from datamodules.image_io import image_scale, match_channels
from datamodules.patch_sampler import crop
from datamodules.seg_samples import SampleStore


class PatchDataset(Dataset):
    """Training patches: indexed by ``(image_index, top, left)`` windows from a :class:`PatchSampler`."""

    def __init__(self, store: SampleStore, patch_size: tuple[int, int], normalizer: "Normalizer",
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
    """Whole images for evaluation: ``{"image": (C, H, W) normalised, "mask": (H, W) int64, "case": stem}``
    (the sample's file stem names the case in the per-case metrics)."""

    def __init__(self, store: SampleStore, normalizer: "Normalizer") -> None:
        self.store = store
        self.normalizer = normalizer

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, mask = self.store.get(index)
        return {"image": self.normalizer.normalize(self.normalizer.to_unit(image)),
                "mask": torch.from_numpy(mask.astype(np.int64)), "case": self.store.samples[index].stem}


class Normalizer:
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
    """Collate whole images of differing sizes: pad to the largest (image 0, mask ``ignore_index``);
    the items' ``case`` ids, when they have them, become a list."""

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        height = max(item["image"].shape[-2] for item in items)
        width = max(item["image"].shape[-1] for item in items)
        images = torch.zeros((len(items), items[0]["image"].shape[0], height, width))
        masks = torch.full((len(items), height, width), ignore_index, dtype=torch.int64)
        for k, item in enumerate(items):
            h, w = item["mask"].shape
            images[k, :, :h, :w] = item["image"]
            masks[k, :h, :w] = item["mask"]
        batch: dict[str, Any] = {"image": images, "mask": masks}
        if all("case" in item for item in items):
            batch["case"] = [item["case"] for item in items]
        return batch

    return collate


class Moments:
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
