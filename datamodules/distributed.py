"""How a lossbench loader splits its samples over DDP processes (our datamodules' loaders use these
samplers themselves, so Lightning does not put its own ``DistributedSampler`` in their place).

Lightning's default wrapper shuffles the positions of a custom sampler's epoch once more and pads
evaluation splits with repeats. Both cost what a loss benchmark needs: the DDP run's batches were not
the one-process run's, and a test split of 29 images on 2 processes scored one image twice. Here:

- **training** (:class:`TrainShard`): the epoch is drawn exactly as one process draws it (the same
  seeded shuffle or patch sampler, on every rank), and rank ``r`` of ``W`` takes positions ``r, r + W,
  r + 2W, …``. With a per-process batch ``B``, step ``i`` of the ``W`` ranks together covers positions
  ``i·B·W … (i+1)·B·W − 1`` — the one-process run's batch ``i`` at batch size ``B·W``. An epoch whose
  length is not a multiple of ``W`` is padded with its first positions (every rank must take as many
  steps);
- **evaluation** (:class:`EvalShard`): rank ``r`` takes positions ``r, r + W, …`` of the split and
  nothing else — every case once, ranks differing by at most one case (what
  :class:`metrics.cases.CaseRows` expects when it puts the gathered rows back in order).
"""
from __future__ import annotations

from typing import Iterator, Sized

import torch
from torch.utils.data import DistributedSampler, Sampler


def process_group() -> tuple[int, int] | None:
    """``(rank, world size)`` when this process is one of several DDP processes; None otherwise."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    world = torch.distributed.get_world_size()
    return (torch.distributed.get_rank(), world) if world > 1 else None


class TrainShard(DistributedSampler):
    """Rank ``rank``'s share of one epoch of ``sampler`` (the same sampler, seeded alike, on every rank):
    positions ``rank, rank + world, …``, padded to ``ceil(len / world)`` per rank. ``sampler`` stays
    reachable as ``.sampler`` (runtime.checkpointing.RngState saves its generator)."""

    def __init__(self, sampler: Sampler, rank: int, world: int) -> None:
        super().__init__(_Sized(len(sampler)), num_replicas=world, rank=rank, shuffle=False, drop_last=False)
        self.sampler = sampler

    def __iter__(self) -> Iterator:
        epoch = list(self.sampler)  # every rank draws the whole epoch: the generators stay in step
        if not epoch:
            return iter([])
        padded = epoch + (epoch * self.total_size)[:self.total_size - len(epoch)]
        return iter(padded[self.rank:self.total_size:self.num_replicas])


class EvalShard(DistributedSampler):
    """Positions ``rank, rank + world, …`` of an evaluation split of ``size`` cases, no repeats."""

    def __init__(self, size: int, rank: int, world: int, what: str = "an evaluation split") -> None:
        if size < world:
            raise ValueError(f"{what} has {size} case(s) for {world} DDP processes: every process needs at least "
                             f"one case to evaluate; evaluate it with at most {max(size, 1)} device(s)")
        super().__init__(_Sized(size), num_replicas=world, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(rank, size, world))
        self.total_size = size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))


class _Sized(Sized):
    """A stand-in dataset of ``n`` items: DistributedSampler's constructor only asks for its length."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n
