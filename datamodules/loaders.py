"""DataLoaders for datamodules whose splits are ready-made datasets (synthetic, synthetic_det, COCO)."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset


class SplitLoadersMixin:
    """``train/val/test_dataloader`` over ``self.datasets[split]``.

    The host class provides ``datasets``, ``batch_size``, ``seed``, ``num_workers``, ``pin_memory``
    and ``persistent_workers``; ``collate_fn`` may be overridden. Training batches are shuffled by a
    generator seeded with ``seed``, so the batch order is part of the run's config.
    """

    datasets: dict[str, Dataset]
    collate_fn: Callable[[list[Any]], Any] | None = None

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            collate_fn=type(self).collate_fn,
            num_workers=self.num_workers,
            # Pinning only helps host-to-GPU copies and warns without CUDA; persistent workers need workers.
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
