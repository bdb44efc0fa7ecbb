"""datamodules.distributed: under DDP every rank trains on an interleaved share of the one-process epoch
and evaluates each case once (the end-to-end check on real data is tests/test_ddp_real.py)."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import DistributedSampler, RandomSampler, SequentialSampler

import datamodules.base as base
from datamodules.distributed import EvalShard, TrainShard
from datamodules.patch_sampler import PatchSampler
from datamodules.synthetic import SyntheticSegDataModule
from datamodules.synthetic_det import SyntheticDetDataModule


def random_sampler(n: int, seed: int = 5) -> RandomSampler:
    return RandomSampler(range(n), generator=torch.Generator().manual_seed(seed))


def batches(order: list, batch_size: int) -> list[list]:
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@pytest.mark.parametrize("n, world, batch", list(itertools.product((1, 7, 12, 16, 33), (1, 2, 3, 4), (1, 2, 4))))
def test_ranks_together_take_the_one_process_batches(n, world, batch):
    one = list(random_sampler(n))  # the epoch one process draws
    shards = [list(TrainShard(random_sampler(n), rank, world)) for rank in range(world)]
    per_rank = -(-n // world)
    assert [len(s) for s in shards] == [per_rank] * world
    assert [len(TrainShard(random_sampler(n), rank, world)) for rank in range(world)] == [per_rank] * world
    padded = one + (one * world)[:per_rank * world - n]  # short epochs repeat their first positions
    rank_batches = [batches(s, batch) for s in shards]
    for step in range(len(rank_batches[0])):
        together = sorted(x for r in range(world) for x in rank_batches[r][step])
        expected = padded[step * batch * world:(step + 1) * batch * world]
        if len(expected) == batch * world:  # full steps: the one-process batch of size batch*world
            assert together == sorted(expected), (step, together, expected)
    assert sorted(x for s in shards for x in s) == sorted(padded)


def test_every_epoch_of_a_patch_sampler_is_split_alike_on_every_rank():
    def sampler() -> PatchSampler:
        return PatchSampler([(40, 50), (64, 30), (20, 20)], (16, 16), num_patches=10, seed=3)

    one = sampler()
    shards = [TrainShard(sampler(), rank, 2) for rank in range(2)]
    for _ in range(3):  # the wrapped samplers advance epoch by epoch, in step with the one-process sampler
        epoch = list(one)
        parts = [list(s) for s in shards]
        assert parts[0] == epoch[0::2] and parts[1] == epoch[1::2]
    assert shards[0].sampler.rng is not one.rng  # each rank has its generator; RngState finds it at .sampler


@pytest.mark.parametrize("size, world", list(itertools.product((2, 5, 16, 29), (2, 3, 4))))
def test_evaluation_takes_every_case_once(size, world):
    if size < world:
        with pytest.raises(ValueError, match=rf"the test split has {size} case\(s\) for {world} DDP processes"):
            EvalShard(size, 0, world, what="the test split")
        return
    shards = [list(EvalShard(size, rank, world)) for rank in range(world)]
    assert sorted(x for s in shards for x in s) == list(range(size))
    assert [len(EvalShard(size, rank, world)) for rank in range(world)] == [len(s) for s in shards]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shards == [list(range(r, size, world)) for r in range(world)]  # rank r: r, r + W, ... (metrics.cases.CaseRows)


@pytest.mark.parametrize("module", [SyntheticSegDataModule, SyntheticDetDataModule])
def test_loaders_shard_themselves_under_ddp_so_lightning_keeps_them(module, monkeypatch):
    monkeypatch.setattr(base, "process_group", lambda: (1, 2))
    datamodule = module(train_size=9, val_size=5, test_size=4, batch_size=2, seed=2)
    datamodule.setup("fit")
    datamodule.setup("test")
    train = datamodule.train_dataloader()
    assert isinstance(train.sampler, TrainShard) and isinstance(train.sampler.sampler, RandomSampler)
    one = list(random_sampler(9, seed=2))  # the one-process loader's order (seeded with the datamodule's seed)
    assert list(train.sampler) == (one + one[:1])[1::2]
    val = datamodule.val_dataloader()
    assert isinstance(val.sampler, EvalShard) and list(val.sampler) == [1, 3]
    # Lightning puts its own DistributedSampler only where the loader's sampler is not one already.
    assert all(isinstance(loader.sampler, DistributedSampler) for loader in (train, val))
    monkeypatch.setattr(base, "process_group", lambda: None)
    assert isinstance(datamodule.val_dataloader().sampler, SequentialSampler)
