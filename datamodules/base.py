"""The base every lossbench datamodule shares: splits, loaders, seeding, the shared argument checks and
option names, and the defaults of :class:`datamodules.contract.LossbenchData`.

Shared options (same name and meaning in every ``configs/datamodule/*.yaml``):

- ``batch_size`` (int >= 1), ``num_workers`` (int >= 0; DataLoader worker processes);
- ``pin_memory``: ``null`` = on when CUDA is available; ``true`` = on when CUDA is available (pinning
  without CUDA only warns); ``false`` = off;
- ``persistent_workers``: keep the worker processes (and their in-memory caches) between epochs; only
  meaningful with ``num_workers > 0``;
- ``seed``: the seed of everything data-side that is random (sample generation, splits, the order of
  training batches, patch positions); configs set it to ``${seed}``.

Not shared, though spelled the same where they exist: ``cache`` (keep samples in memory once made or
decoded) and ``cache_max_gb`` (only when all splits fit in that many GB, checked by :func:`check_gb`)
belong to the 2-D segmentation datamodules (synthetic segmentation, the file-based ones); ``volume_folder``
and ``msd`` have ``cache_max_gb`` alone, ``synthetic_3d`` always keeps its volumes, and the detection
datamodules have neither. The segmentation datamodules' labels (``num_classes``, ``mode``,
``class_names``, ``ignore_index``) are checked by :class:`datamodules.labels.LabelSpec`.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Mapping, NoReturn

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from common.names import SPLITS
from datamodules.distributed import EvalShard, TrainShard, process_group

if TYPE_CHECKING:
    from datamodules.public.splits import SplitInfo

__all__ = ["SPLITS", "LOADER_DEFAULTS", "BaseDataModule", "invalid", "check_int", "check_gb", "renamed_option"]

# The loader options and their defaults; a datamodule states the ones that differ in ``loader_defaults``.
LOADER_DEFAULTS: dict[str, Any] = {"batch_size": 8, "num_workers": 0, "pin_memory": None, "persistent_workers": False}


def invalid(owner: str, name: str, value: Any, expected: str) -> NoReturn:
    """Raise the datamodules' one argument error: ``owner: name=value is invalid; expected …``."""
    raise ValueError(f"{owner}: {name}={value!r} is invalid; expected {expected}")


def check_int(owner: str, name: str, value: Any, low: int) -> int:
    """``value`` as an int >= ``low`` (bools refused), else :func:`invalid`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        invalid(owner, name, value, f"an int >= {low}")
    return int(value)


def check_gb(owner: str, name: str, value: Any) -> float:
    """``value`` as a size in GB >= 0 (bools refused), else :func:`invalid`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        invalid(owner, name, value, "a size in GB >= 0")
    return float(value)


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
    ``eval_window`` and :meth:`class_pixel_counts`. The loader options (``batch_size``, ``num_workers``,
    ``pin_memory``, ``persistent_workers``) are keyword arguments with the defaults of
    :data:`LOADER_DEFAULTS`, updated by the subclass's ``loader_defaults``.
    """

    loader_defaults: Mapping[str, Any] = {}

    in_channels: int | None = 3
    eval_window: Mapping[str, Any] | None = None
    collate_fn: Callable[[list[Any]], Any] | None = None
    split_info: SplitInfo | None = None  # set by datamodules whose splits come from a committed split file

    @property
    def owner(self) -> str:
        """How argument errors name this datamodule (a subclass may set a plain class attribute)."""
        return type(self).__name__

    def __init__(self, *, seed: int, **loader: Any) -> None:
        super().__init__()
        unknown = sorted(set(loader) - set(LOADER_DEFAULTS))
        if unknown:
            raise TypeError(f"{self.owner}: unexpected option(s) {unknown}")
        options = {**LOADER_DEFAULTS, **self.loader_defaults, **loader}
        self.seed = int(seed)
        self.batch_size = check_int(self.owner, "batch_size", options["batch_size"], 1)
        self.num_workers = check_int(self.owner, "num_workers", options["num_workers"], 0)
        # Pinning only helps host-to-GPU copies and warns without CUDA.
        self.pin_memory = options["pin_memory"] is not False and torch.cuda.is_available()
        self.persistent_workers = bool(options["persistent_workers"])
        self.datasets: dict[str, Dataset] = {}

    def class_pixel_counts(self) -> torch.Tensor | None:
        """Pixels per class over the training split; None: the data has no pixel classes (detection)."""
        return None

    def split_record(self) -> dict[str, Any] | None:
        """The committed split this datamodule uses (``metrics.json``'s ``split``); None: no committed split."""
        return self.split_info.record() if self.split_info is not None else None

    def loader(self, dataset: Dataset, *, training: bool = False, shuffle: bool = False, batch_size: int | None = None,
               sampler: Sampler | None = None, collate_fn: Callable[[list[Any]], Any] | None = None,
               name: str = "an evaluation split", shard: bool = True) -> DataLoader:
        """A DataLoader with the shared options; ``shuffle`` draws the order from a ``seed``-ed generator.
        Under DDP the samples are split over the processes by :mod:`datamodules.distributed` (training:
        the one-process epoch, interleaved; evaluation: every case once); ``name`` names the split in its
        error. ``shard=False``: prediction, which Lightning splits over the processes itself."""
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        group = process_group() if shard else None
        if group is not None:
            if training:
                base = sampler if sampler is not None else (
                    RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset))
                sampler = TrainShard(base, *group)
            else:
                sampler = EvalShard(len(dataset), *group, what=name)
            shuffle, generator = False, None
        return DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            generator=generator,
            collate_fn=collate_fn or type(self).collate_fn,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.datasets["train"], training=True, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_loader("test")

    def eval_loader(self, split: str, shard: bool = True) -> DataLoader:
        """The loader of an evaluation split; a datamodule that evaluates whole images or volumes
        (padded batches) overrides this one method."""
        return self.loader(self.datasets[split], name=f"the {split} split", shard=shard)
