"""The cross-cutting part of a run, in one wrapper: the record, timing, the failure, W&B, the config.

``with recorded_run(cfg) as record:`` hands the body a fresh :class:`~runtime.run_record.RunRecord`
and, however the body ends, stores the wall time, writes ``config.yaml`` and ``metrics.json`` into
the run dir (rank 0) and closes the W&B run. A failure is recorded as ``status: failed`` with its
first line; inside a multirun an ``Exception`` then ends only this job (the sweep goes on), anywhere
else — and for ``KeyboardInterrupt`` — it propagates.
"""
from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pytorch_lightning.utilities import rank_zero_only

from runtime.builders import config_choice
from runtime.run_record import RunRecord, new_record, one_line_error, preset_record, write_record

log = logging.getLogger("lossbench")
CONFIG_NAME = "config.yaml"


@contextmanager
def recorded_run(cfg: DictConfig) -> Iterator[RunRecord]:
    """See the module docstring."""
    record = new_record(task=cfg.task, loss=config_choice(cfg, "loss"), datamodule=config_choice(cfg, "datamodule"),
                        model=config_choice(cfg, "model"), seed=cfg.seed, optimized_metric=cfg.optimized_metric,
                        preset=preset_record(cfg.get("preset")))
    started = time.perf_counter()
    failed = True
    try:
        yield record
        failed = False
    except BaseException as error:
        record["error"] = one_line_error(error)
        if rank_zero_only.rank == 0:
            log.exception("run failed: %s", record["error"])
        if not is_multirun() or not isinstance(error, Exception):
            raise
    finally:
        record["wall_time_s"] = round(time.perf_counter() - started, 2)
        if rank_zero_only.rank == 0:
            run_dir = Path(cfg.paths.output_dir)
            write_record(run_dir, record)
            save_config(cfg, run_dir)
        finish_wandb(failed)


def save_config(cfg: DictConfig, run_dir: Path) -> None:
    """The fully resolved config as ``<run dir>/config.yaml``. Written once, when the run ends, so it
    holds what the datamodule filled in (``in_channels: null`` → 3); Hydra's ``.hydra/config.yaml``
    has the composed config from the start. ``write_record`` has made ``run_dir`` already."""
    try:
        OmegaConf.save(cfg, run_dir / CONFIG_NAME, resolve=True)
    except OmegaConfBaseException as error:  # e.g. a `???` the run never got; the record says why
        log.warning("config.yaml not written: the config does not resolve (%s)", one_line_error(error))


def is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def finish_wandb(failed: bool) -> None:
    """A job must close its W&B run (also on failure) so the next job of a sweep starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)


def print_summary(record: RunRecord, run_dir: str) -> None:
    """The run's val/test metrics as a table on the console."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{record['task']} · loss={record['loss']} · seed={record['seed']} · {record['status']}")
    table.add_column("metric")
    table.add_column("val", justify="right")
    table.add_column("test", justify="right")
    metrics = record.get("metrics", {})
    for name in sorted({key.split("/", 1)[1] for key in metrics}):
        cells = [metrics.get(f"{stage}/{name}") for stage in ("val", "test")]
        table.add_row(name, *("-" if v is None or v != v else f"{v:.4f}" for v in cells))
    console = Console()
    console.print(table)
    console.print(f"run dir: {run_dir}")
