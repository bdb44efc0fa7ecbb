"""The base every lossbench datamodule shares: splits, loaders, seeding, the shared argument checks and
option names, and the defaults of :class:`datamodules.contract.LossbenchData`.

Shared options (same name and meaning in every ``configs/datamodule/*.yaml``):

- ``batch_size`` (int >= 1), ``num_workers`` (int >= 0; DataLoader worker processes);
- ``pin_memory``: ``null`` = on when CUDA is available; ``true`` = on when CUDA is available (pinning
  without CUDA only warns); ``false`` = off;
- ``persistent_workers``: keep the worker processes (and their in-memory caches) between epochs; only
  meaningful with ``num_workers > 0``;
- ``seed``: the seed of everything data-side that is random (sample generation, splits, the order of
  training batches, patch positions); configs set it to ``${seed}``;
- ``cache``: keep samples in memory once made/decoded (segmentation datamodules, with ``cache_max_gb``).
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Mapping, NoReturn

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from common.names import SPLITS

if TYPE_CHECKING:
    from datamodules.public.splits import SplitInfo

__all__ = ["SPLITS", "BaseDataModule", "invalid", "check_int", "renamed_option"]


def invalid(owner: str, name: str, value: Any, expected: str) -> NoReturn:
    """Raise the datamodules' one argument error: ``owner: name=value is invalid; expected …``."""
    raise ValueError(f"{owner}: {name}={value!r} is invalid; expected {expected}")


def check_int(owner: str, name: str, value: Any, low: int) -> int:
    """``value`` as an int >= ``low`` (bools refused), else :func:`invalid`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        invalid(owner, name, value, f"an int >= {low}")
    return int(value)


def renamed_option(owner: str, old: str, old_value: Any, new: str, new_value: Any) -> Any:
    """The value of a renamed option: the new one, or the old one (with a ``FutureWarning``) when a
    config still sets it. The old name keeps working for one release."""
    if old_value is None:
        return new_value
    warnings.warn(f"{owner}: option {old!r} is deprecated and will be removed in the next release; use {new!r} "
                  f"(got {old}={old_value!r})", FutureWarning, stacklevel=3)
    return old_value


class BaseDataModule(pl.LightningDataModule):
    """Loaders over ``self.datasets[split]`` and the shared options (module docstring).

    Training batches are shuffled by a generator seeded with ``seed``, so the batch order is part of
    the run's config. A subclass fills ``self.datasets`` (or overrides the ``*_dataloader`` methods),
    sets ``num_classes``, ``class_names`` and, where they differ from the defaults, ``in_channels``,
    ``eval_window`` and :meth:`class_pixel_counts`.
    """

    in_channels: int | None = 3
    eval_window: Mapping[str, Any] | None = None
    collate_fn: Callable[[list[Any]], Any] | None = None
    split_info: SplitInfo | None = None  # set by datamodules whose splits come from a committed split file

    @property
    def owner(self) -> str:
        """How argument errors name this datamodule (a subclass may set a plain class attribute)."""
        return type(self).__name__

    def __init__(self, *, seed: int, batch_size: int, num_workers: int, pin_memory: bool | None = None,
                 persistent_workers: bool = False) -> None:
        super().__init__()
        self.seed = int(seed)
        self.batch_size = check_int(self.owner, "batch_size", batch_size, 1)
        self.num_workers = check_int(self.owner, "num_workers", num_workers, 0)
        # Pinning only helps host-to-GPU copies and warns without CUDA.
        self.pin_memory = pin_memory is not False and torch.cuda.is_available()
        self.persistent_workers = bool(persistent_workers)
        self.datasets: dict[str, Dataset] = {}

    def class_pixel_counts(self) -> torch.Tensor | None:
        """Pixels per class over the training split; None: the data has no pixel classes (detection)."""
        return None

    def split_record(self) -> dict[str, Any] | None:
        """The committed split this datamodule uses (``metrics.json``'s ``split``); None: no committed split."""
        return self.split_info.record() if self.split_info is not None else None

    def loader(self, dataset: Dataset, *, shuffle: bool = False, batch_size: int | None = None,
               sampler: Sampler | None = None, collate_fn: Callable[[list[Any]], Any] | None = None) -> DataLoader:
        """A DataLoader with the shared options; ``shuffle`` draws the order from a ``seed``-ed generator."""
        return DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            collate_fn=collate_fn or type(self).collate_fn,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.datasets["train"], shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_loader("test")

    def eval_loader(self, split: str) -> DataLoader:
        """The loader of an evaluation split; a datamodule that evaluates whole images or volumes
        (padded batches) overrides this one method."""
        return self.loader(self.datasets[split])
