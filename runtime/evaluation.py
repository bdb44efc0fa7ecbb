"""Evaluate a fitted run: validation (and test) metrics of the best checkpoint, and its per-case files."""
from __future__ import annotations

import csv
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

CASE_FILES = {"test": "test_cases.csv", "val": "val_cases.csv"}


@runtime_checkable
class CaseTable(Protocol):
    """A task module that scores every case of its last val/test pass (docs/contracts.md, "Per-case files")."""

    def case_rows(self, stage: str) -> list[dict[str, Any]]: ...


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


def write_case_files(model: pl.LightningModule, run_dir: str | os.PathLike) -> dict[str, str]:
    """The per-case rows of the module's last val and test passes (after :func:`evaluate`: the evaluated
    checkpoint's) as ``run_dir/val_cases.csv`` and ``test_cases.csv``, written by rank 0 (every rank
    holds the gathered rows). Returns ``{split: file name}`` for the files written (``case_files`` in
    metrics.json); a module without per-case rows writes none."""
    if not isinstance(model, CaseTable):
        return {}
    written = {}
    for split, name in CASE_FILES.items():
        rows = model.case_rows(split)
        if not rows:
            continue
        if rank_zero_only.rank == 0:
            write_case_csv(Path(run_dir) / name, rows)
        written[split] = name
    return written


def write_case_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``rows`` as a UTF-8 CSV with a header (columns in first-seen order), atomically (temp file +
    rename). An undefined value (NaN, ±inf, None) is an empty cell; ints stay ints, floats keep
    every digit (``repr``)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".csv.tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_cell(row.get(column)) for column in columns])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)
