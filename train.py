"""lossbench's one entry point: ``python train.py [group=option ...] [key=value ...]``.

Build the run's parts from the config → fit → validate and test the best checkpoint → the record.
The wiring between parts is in :mod:`runtime.builders`; timing, the failure record, ``config.yaml``,
``metrics.json`` and closing W&B in :func:`runtime.recording.recorded_run`.
"""
from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from runtime.builders import build_run
from runtime.checkpointing import resume_from, resuming
from runtime.evaluation import best_checkpoint, evaluate, write_case_files
from runtime.recording import print_summary, recorded_run
from runtime.resolvers import register_resolvers
from runtime.run_record import RunRecord, is_completed, read_record

log = logging.getLogger("lossbench")
register_resolvers()


def train(cfg: DictConfig) -> RunRecord:
    """One run. Returns its ``metrics.json`` record; raises on failure outside a multirun."""
    if resuming(cfg) and is_completed(cfg.paths.output_dir):
        log.info("resume=true: %s already completed, skipped", cfg.paths.output_dir)
        return read_record(cfg.paths.output_dir)
    with recorded_run(cfg) as record:
        run = build_run(cfg, record)
        ckpt_path = resume_from(cfg, run.trainer, record)  # an interrupted run's last.ckpt, checked
        try:
            run.trainer.fit(run.model, datamodule=run.datamodule, ckpt_path=ckpt_path)
        finally:  # a failed fit keeps its curves as far as it got
            record["epochs"] = run.trainer.current_epoch
            record.update(run.history.summary(run.trainer, cfg.optimized_metric, cfg.optimized_metric_mode))
        record["best_checkpoint"] = best_checkpoint(run.trainer)
        record["metrics"] = evaluate(run.trainer, run.model, run.datamodule, record["best_checkpoint"], cfg.test)
        record["case_files"] = write_case_files(run.model, cfg.paths.output_dir)
        record["status"] = "completed"
    return record


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    record = train(cfg)
    if rank_zero_only.rank == 0:
        print_summary(record, cfg.paths.output_dir)
    value = record["metrics"].get(cfg.optimized_metric)
    return float("nan") if value is None else float(value)


if __name__ == "__main__":
    main()
