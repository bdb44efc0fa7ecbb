"""Per-epoch learning curves of a run, for the ``metrics.json`` budget fields.

``History`` is a Lightning callback that keeps, for every training epoch that finished, the epoch's
validation metrics (every logged ``val/*`` scalar: the optimised metric, the task's headline metrics
such as ``val/miou``/``val/dice_fg``/``val/small_recall/*`` or ``val/map``/``val/map_50``, per-class
scores, ``val/loss``) and the epoch's mean training loss (``train/loss``). ``History.summary`` turns
that into the record's ``history``, ``best_epoch``, ``early_stopping`` and ``converged`` fields.

Conventions:
- one entry per training epoch run, 0-based, so ``len(history[key]) == record["epochs"]``; an epoch
  without validation (``check_val_every_n_epoch > 1``) or a metric undefined at an epoch holds ``None``;
- Lightning's sanity-check validation and the evaluation of the best checkpoint after fitting
  (``trainer.validate``/``trainer.test``) add nothing;
- the curves travel in the checkpoint (``state_dict``), so fitting resumed from ``ckpt_path``
  continues them instead of starting again at epoch 0;
- ``best_epoch`` is the epoch of the checkpoint that was evaluated: ``ModelCheckpoint`` keeps the
  first epoch with a strictly better finite monitored value, and so does ``best_epoch`` here.
"""
from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn

from runtime.run_record import BEST_EPOCH, CONVERGED, EARLY_STOPPING, HISTORY, converged

__all__ = ["History", "converged"]

TRAIN_LOSS = "train/loss"


def _scalar(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor with more than one element
        return None
    return number if math.isfinite(number) else None


class History(pl.Callback):
    """Collects one row of metrics per finished training epoch (see the module docstring)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float | None]] = []
        self._val: dict[str, float | None] = {}

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs after Lightning has reduced the epoch's logged values into callback_metrics.
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        self._val = {k: _scalar(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        # Logged with on_step and on_epoch: the epoch mean is "<key>_epoch".
        loss = metrics.get(f"{TRAIN_LOSS}_epoch", metrics.get(TRAIN_LOSS))
        self.rows.append({**self._val, TRAIN_LOSS: _scalar(loss)})
        self._val = {}

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(row) for row in state_dict.get("rows", [])]

    @property
    def curves(self) -> dict[str, list[float | None]]:
        """``{metric: [value per epoch]}``, ``train/loss`` first, then the validation keys sorted."""
        keys = sorted({k for row in self.rows for k in row}, key=lambda k: (k != TRAIN_LOSS, k))
        return {key: [row.get(key) for row in self.rows] for key in keys}

    def best_epoch(self, monitor: str, mode: str) -> int | None:
        """0-based epoch of the first strictly best finite ``monitor`` value (``ModelCheckpoint``'s rule)."""
        best: int | None = None
        for epoch, row in enumerate(self.rows):
            value = row.get(monitor)
            if value is None:
                continue
            if best is None or (value > self.rows[best][monitor] if mode == "max" else value < self.rows[best][monitor]):
                best = epoch
        return best

    def summary(self, trainer: pl.Trainer, monitor: str, mode: str) -> dict[str, Any]:
        """The record's budget fields, as far as fitting got.

        ``best_epoch``: the epoch of the best checkpoint when a ``ModelCheckpoint`` monitors, else the
        last epoch (the final weights are evaluated). ``early_stopping``: the callback's settings, ``stopped``
        (whether it ended training) and ``stopped_epoch`` (that epoch, else ``None``), or ``None`` without
        the callback. ``converged``: ``converged(history[monitor], mode)`` or early stopping fired.
        """
        epochs = len(self.rows)
        checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor), None)
        if checkpoint is not None:
            best = self.best_epoch(checkpoint.monitor, checkpoint.mode)
        else:
            best = epochs - 1 if epochs else None
        stopper = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
        early_stopping = None
        if stopper is not None:
            # stopped_epoch is also set when the stop was vetoed by trainer.min_epochs; it counts only
            # when it is the epoch training actually ended at.
            fired = epochs > 0 and stopper.stopped_epoch == epochs - 1 and stopper.wait_count >= stopper.patience
            early_stopping = {
                "monitor": stopper.monitor,
                "mode": stopper.mode,
                "patience": stopper.patience,
                "min_delta": abs(float(stopper.min_delta)),
                "min_epochs": trainer.fit_loop.min_epochs or 0,
                "stopped": fired,
                "stopped_epoch": epochs - 1 if fired else None,
            }
        stopped_early = early_stopping is not None and early_stopping["stopped_epoch"] is not None
        return {
            HISTORY: self.curves,
            BEST_EPOCH: best,
            EARLY_STOPPING: early_stopping,
            CONVERGED: converged([row.get(monitor) for row in self.rows], mode, stopped_early=stopped_early),
        }
