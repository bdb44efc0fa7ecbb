"""RngState carries the numpy generator of a patch sampler (file datasets draw each epoch's training
patches with it), also behind Lightning's DDP sampler wrapper: a resumed run draws the uninterrupted
run's next epoch, not epoch 0's patches again."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from lightning_fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import DataLoader, Dataset

from datamodules.patch_sampler import PatchSampler
from runtime.checkpointing import RngState


class Windows(Dataset):
    """A window ``(image, top, left)`` as a tensor: the batches show which patches were drawn."""

    def __getitem__(self, window: tuple[int, int, int]) -> torch.Tensor:
        return torch.tensor(window)

    def __len__(self) -> int:
        return 0


def trainer(ddp: bool) -> SimpleNamespace:
    """What RngState uses of a trainer whose process just started: a training loader with a fresh sampler."""
    sampler = PatchSampler([(64, 64), (80, 96), (128, 40)], (32, 32), num_patches=12, foreground_share=0.0, seed=3)
    if ddp:  # what Lightning puts in place of a custom sampler under DDP (rank 0 of 2)
        sampler = DistributedSamplerWrapper(sampler, num_replicas=2, rank=0, shuffle=False)
    loader = DataLoader(Windows(), sampler=sampler, batch_size=4)
    return SimpleNamespace(train_dataloader=loader, fit_loop=SimpleNamespace(_data_fetcher=[]))


def epoch(run: SimpleNamespace) -> list[list[int]]:
    return [window for batch in run.train_dataloader for window in batch.tolist()]


@pytest.mark.parametrize("ddp", [False, True], ids=["one process", "DDP wrapper"])
def test_resumed_sampler_draws_the_uninterrupted_next_epoch(ddp):
    first = trainer(ddp)
    saving = RngState()
    saving.setup(first, None, "fit")
    epoch(first)  # epoch 0, then the checkpoint at its end
    state = saving.state_dict()
    assert len(state["sampler_generators"]) == 1
    expected = epoch(first)  # epoch 1 of the uninterrupted run

    restarted = trainer(ddp)  # a new process: its sampler starts from the seed again
    assert epoch(trainer(ddp)) != expected  # what a resume without the sampler's state would draw
    resuming = RngState()
    resuming.setup(restarted, None, "fit")
    resuming.load_state_dict(state)
    resuming.on_train_epoch_start(restarted, None)
    assert epoch(restarted) == expected


def test_checkpoint_without_sampler_states_still_resumes(caplog):
    # Checkpoints written before the sampler generators were saved: resumed, with a warning in the log.
    run = trainer(False)
    resuming = RngState()
    resuming.setup(run, None, "fit")
    state = resuming.state_dict()
    del state["sampler_generators"]
    resuming.load_state_dict(state)
    resuming.on_train_epoch_start(run, None)
    assert len(epoch(run)) == 12
    assert "holds no sampler generator states" in caplog.text
