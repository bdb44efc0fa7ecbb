"""Early stopping that respects ``trainer.min_epochs`` without a stale stop.

Lightning's ``EarlyStopping`` sets ``trainer.should_stop`` when ``patience`` checks bring no gain; before
``trainer.min_epochs`` the trainer vetoes that stop, but the flag stays set — so the run ends at
``min_epochs`` even when the monitored metric improved in between (measured: a slow-starting run
improved at epoch 12 and was still stopped at min_epochs = 13). Here a stop that would be vetoed is
not requested at all: the patience count goes on, and the rule is decided afresh at every check, so a
run ends at the first epoch ≥ ``min_epochs`` whose last ``patience`` checks brought no gain.
"""
from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping


class MinEpochsEarlyStopping(EarlyStopping):
    """``pytorch_lightning.callbacks.EarlyStopping`` (same arguments) without the stale stop described above."""

    def _run_early_stopping_check(self, trainer: pl.Trainer) -> None:
        already = trainer.should_stop  # another callback (e.g. max_time) may have asked to stop
        super()._run_early_stopping_check(trainer)
        min_epochs = trainer.fit_loop.min_epochs or 0
        if trainer.should_stop and not already and trainer.current_epoch + 1 < min_epochs:
            trainer.should_stop = False  # would be vetoed, then stick: decide again at the next check
            self.stopped_epoch = 0
