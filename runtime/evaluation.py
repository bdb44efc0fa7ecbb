"""Evaluate a fitted run: validation (and test) metrics of the best checkpoint."""
from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """The path of the checkpoint the ``ModelCheckpoint`` callback judged best; None without one
    (then evaluation uses the final weights)."""
    checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    return checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None


def evaluate(trainer: pl.Trainer, model: pl.LightningModule, datamodule: pl.LightningDataModule, checkpoint: str | None,
             test: bool) -> dict[str, float]:
    """``val/…`` (and with ``test``, ``test/…``) metrics of ``checkpoint``, sorted by name. Validation
    and test numbers both come from the same weights."""
    metrics: dict[str, float] = {}
    for stage in (trainer.validate, trainer.test) if test else (trainer.validate,):
        for results in stage(model, datamodule=datamodule, ckpt_path=checkpoint, verbose=False):
            metrics.update({k: float(v) for k, v in results.items() if k.startswith(("val/", "test/"))})
    return dict(sorted(metrics.items()))
