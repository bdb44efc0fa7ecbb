"""runtime.early_stopping: a stop vetoed by trainer.min_epochs must not stick."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping
from torch.utils.data import DataLoader, TensorDataset

from runtime.early_stopping import MinEpochsEarlyStopping
from runtime.history import History

# val/score per epoch: a peak at epoch 0, flat, then a real gain at epoch 5, flat again
SCORES = [0.5, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]


class ScriptedScore(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.weight - batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/score", SCORES[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(stopper: EarlyStopping, min_epochs: int) -> tuple[int, History]:
    data = DataLoader(TensorDataset(torch.ones(2, 1)), batch_size=2)
    history = History()
    trainer = pl.Trainer(max_epochs=len(SCORES), min_epochs=min_epochs, callbacks=[stopper, history], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    trainer.fit(ScriptedScore(), data, data)
    return trainer.current_epoch, trainer


def _stopper(cls):
    return cls(monitor="val/score", mode="max", patience=2, min_delta=0.01)


def test_lightning_early_stopping_keeps_a_vetoed_stop_and_cuts_the_run_at_min_epochs():
    # the defect this module exists for: the stop requested at epoch 2 is vetoed, then sticks
    epochs, _ = _fit(_stopper(EarlyStopping), min_epochs=7)
    assert epochs == 7  # ended at min_epochs although epoch 5 brought a gain of 0.4


@pytest.mark.parametrize("min_epochs, expected_epochs", [(7, 8), (0, 3), (4, 4), (6, 8), (10, 10)])
def test_min_epochs_early_stopping_decides_afresh_after_a_veto(min_epochs, expected_epochs):
    stopper = _stopper(MinEpochsEarlyStopping)
    epochs, trainer = _fit(stopper, min_epochs=min_epochs)
    # without min_epochs: stop after epoch 2 (two checks without gain after the peak at epoch 0);
    # min_epochs 4: epochs 1-3 brought no gain, so the stop at the first allowed epoch is right;
    # min_epochs 6 or 7: the gain at epoch 5 resets the count, stop after epoch 7 (5 + patience);
    # min_epochs 10: no stop is possible before 10 epochs, and the count has run out by then
    assert epochs == expected_epochs
    summary = trainer.callbacks[1].summary(trainer, "val/score", "max")
    assert summary["early_stopping"]["stopped"] is True
    assert summary["early_stopping"]["stopped_epoch"] == expected_epochs - 1
    assert summary["converged"] is True
