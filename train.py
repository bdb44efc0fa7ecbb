"""lossbench's one entry point: ``python train.py [group=option ...] [key=value ...]``.

seed → instantiate datamodule, loss, model, callbacks, loggers, trainer → fit → validate and test
the best checkpoint → write ``metrics.json`` (also when the run fails) → return the optimised metric.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from runtime.builders import (
    build_eval_inferer,
    check_loss_fits_task,
    config_choice,
    fill_from_datamodule,
    instantiate_callbacks,
    instantiate_loggers,
)
from runtime.compile import maybe_compile
from runtime.detection_wiring import wire_detection
from runtime.history import History
from runtime.resolvers import register_resolvers
from runtime.run_record import BEST_EPOCH, HISTORY, is_completed, one_line_error, package_versions, read_record, write_record

log = logging.getLogger("lossbench")

register_resolvers()


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _base_record(cfg: DictConfig) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": None,
        "task": cfg.task,
        "loss": config_choice(cfg, "loss"),
        "datamodule": config_choice(cfg, "datamodule"),
        "model": config_choice(cfg, "model"),
        "seed": cfg.seed,
        "wall_time_s": None,
        "epochs": 0,
        "metrics": {},
        HISTORY: {},
        BEST_EPOCH: None,
        "optimized_metric": cfg.optimized_metric,
        "versions": package_versions(),
    }


def _finish_wandb(failed: bool) -> None:
    """A job must close its W&B run (also on failure) so the next job of a sweep starts its own."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)


def _save_config(cfg: DictConfig) -> None:
    """The fully resolved config of the run, as ``<run dir>/config.yaml``."""
    if rank_zero_only.rank == 0:
        run_dir = Path(cfg.paths.output_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)


def fit_and_test(cfg: DictConfig, record: dict[str, Any]) -> None:
    """Build everything from ``cfg``, fit, evaluate the best checkpoint; fills ``record`` in place."""
    pl.seed_everything(cfg.seed, workers=True)
    check_loss_fits_task(record["loss"], cfg.task)

    datamodule = hydra.utils.instantiate(cfg.datamodule, _convert_="all")
    fill_from_datamodule(cfg, datamodule)
    record.update(wire_detection(cfg, datamodule))  # anchors fitted to the data, step budget
    _save_config(cfg)
    loss = hydra.utils.instantiate(cfg.loss, _convert_="all")
    counts = datamodule.class_pixel_counts() if hasattr(datamodule, "class_pixel_counts") else None
    if counts is not None:
        record["class_pixel_counts"] = [float(c) for c in counts]  # lets compare.py name the rare classes
    if getattr(loss, "requires_class_counts", False):
        loss.set_class_counts(counts)
    if getattr(loss, "class_weights", None) is not None:
        record["class_weights"] = [float(w) for w in loss.class_weights]
    model_kwargs: dict[str, Any] = {"loss": loss}
    inferer = build_eval_inferer(datamodule)
    if inferer is not None and cfg.model.get("inferer", "absent") is None:
        model_kwargs["inferer"] = inferer
    # Plain containers (_convert_="all"): checkpoints then hold no omegaconf objects, which
    # torch.load(weights_only=True) would refuse.
    with open_dict(cfg.model):  # `+model.compile=true` switches torch.compile on; not a module argument
        compile_net = bool(cfg.model.pop("compile", False))
    model = hydra.utils.instantiate(cfg.model, _convert_="all", **model_kwargs)
    if hasattr(model, "net"):
        maybe_compile(model.net, compile_net)

    loggers = instantiate_loggers(cfg.get("logger"))
    callbacks = instantiate_callbacks(cfg.get("callbacks"), has_logger=bool(loggers))
    history = History()
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[*callbacks, history], logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    finally:  # a failed fit keeps its curves as far as it got
        record["epochs"] = trainer.current_epoch
        record.update(history.summary(trainer, cfg.optimized_metric, cfg.optimized_metric_mode))
    checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    record["best_checkpoint"] = best
    metrics: dict[str, float] = {}
    # Validation and test numbers both come from the same (best) weights.
    for stage in (trainer.validate, trainer.test) if cfg.test else (trainer.validate,):
        for results in stage(model, datamodule=datamodule, ckpt_path=best, verbose=False):
            metrics.update({k: float(v) for k, v in results.items() if k.startswith(("val/", "test/"))})
    record["metrics"] = dict(sorted(metrics.items()))
    record["status"] = "completed"


def train(cfg: DictConfig) -> dict[str, Any]:
    """One run. Returns its ``metrics.json`` record; raises on failure outside a multirun."""
    run_dir = Path(cfg.paths.output_dir)
    if cfg.get("resume") and is_completed(run_dir):
        log.info("resume=true: %s already completed, skipped", run_dir)
        return read_record(run_dir)
    _save_config(cfg)

    record = _base_record(cfg)
    started = time.perf_counter()
    failed = True
    try:
        fit_and_test(cfg, record)
        failed = False
    except BaseException as error:
        record["error"] = one_line_error(error)
        if rank_zero_only.rank == 0:
            log.exception("run failed: %s", record["error"])
        if not _is_multirun() or not isinstance(error, Exception):
            raise
    finally:
        record["wall_time_s"] = round(time.perf_counter() - started, 2)
        if rank_zero_only.rank == 0:
            write_record(run_dir, record)
        _finish_wandb(failed)
    return record


def _print_summary(record: dict[str, Any], run_dir: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{record['task']} · loss={record['loss']} · seed={record['seed']} · {record['status']}")
    table.add_column("metric")
    table.add_column("val", justify="right")
    table.add_column("test", justify="right")
    metrics = record.get("metrics", {})
    names = sorted({key.split("/", 1)[1] for key in metrics})
    for name in names:
        cells = [metrics.get(f"{stage}/{name}") for stage in ("val", "test")]
        table.add_row(name, *("-" if v is None or v != v else f"{v:.4f}" for v in cells))
    console = Console()
    console.print(table)
    console.print(f"run dir: {run_dir}")


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    record = train(cfg)
    if rank_zero_only.rank == 0:
        _print_summary(record, cfg.paths.output_dir)
    value = record.get("metrics", {}).get(cfg.optimized_metric)
    return float("nan") if value is None else float(value)


if __name__ == "__main__":
    main()
