"""Data → model wiring for detection, done once before the model and trainer are built.

- ``anchor_sizes: auto`` (model.detector): the datamodule's training-box statistics
  (``box_statistics()``, :mod:`datamodules.box_stats`) → :func:`models.anchors.fit_to_boxes` (the
  detector's own fit: anchors for RetinaNet, point sizes and centre sampling for FCOS) → explicit
  values in the config. The fit is a
  deterministic function of the training split, so every run on that split (every loss and seed of
  a sweep, with the split seed fixed) gets the same anchors; the fit and its matched share go into
  the run record (``metrics.json``: ``box_statistics``, ``anchor_fit``).
- ``trainer.min_steps``: the training budget in optimiser steps for data sets of any size —
  ``trainer.max_epochs`` is raised until the epochs hold at least that many steps (Lightning alone
  would stop at ``max_epochs``). The scheduler follows (models/detection.py, ``T_max: null``).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Protocol, runtime_checkable

from omegaconf import DictConfig, OmegaConf, open_dict

from datamodules.box_stats import BoxStatistics
from datamodules.contract import LossbenchData
from models.anchors import fit_to_boxes

log = logging.getLogger("lossbench")


@runtime_checkable
class HasBoxStatistics(Protocol):
    def box_statistics(self) -> BoxStatistics: ...


def wire_detection(cfg: DictConfig, datamodule: LossbenchData) -> dict[str, Any]:
    """Resolve ``anchor_sizes: auto`` and ``trainer.min_steps`` in ``cfg``; returns the entries for the
    run record (empty for other tasks)."""
    record: dict[str, Any] = {}
    if cfg.get("task") != "detection":
        return record
    detector = cfg.model.detector
    if detector.get("anchor_sizes") == "auto":
        if not isinstance(datamodule, HasBoxStatistics):
            raise ValueError(f"model.detector.anchor_sizes=auto needs box statistics from the datamodule; "
                             f"{type(datamodule).__name__} has no box_statistics(); give explicit sizes")
        stats = datamodule.box_statistics()
        values, fit = fit_to_boxes(OmegaConf.to_container(detector, resolve=True), stats.boxes)
        with open_dict(cfg):
            for key, value in values.items():
                detector[key] = value
        record["box_statistics"] = stats.summary()
        record["anchor_fit"] = fit.record()
        log.info("box statistics of the training split: %s", record["box_statistics"])
        log.info("anchors fitted to the training boxes: %s", record["anchor_fit"])
    min_steps = cfg.trainer.get("min_steps")
    if min_steps and cfg.trainer.get("max_epochs", -1) not in (None, -1):
        datamodule.setup("fit")
        per_epoch = math.ceil(len(datamodule.train_dataloader()) / int(cfg.trainer.get("accumulate_grad_batches") or 1))
        epochs = max(int(cfg.trainer.max_epochs), math.ceil(int(min_steps) / max(per_epoch, 1)))
        if epochs != cfg.trainer.max_epochs:
            log.info("trainer.min_steps=%d: max_epochs %d -> %d (%d optimiser steps per epoch)",
                     min_steps, cfg.trainer.max_epochs, epochs, per_epoch)
            with open_dict(cfg):
                cfg.trainer.max_epochs = epochs
        record["budget"] = {"min_steps": int(min_steps), "steps_per_epoch": per_epoch, "max_epochs": epochs}
    return record
