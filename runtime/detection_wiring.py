"""Data → model wiring for detection, done once before the model and trainer are built.

- ``anchor_sizes: auto`` (model.detector): the datamodule's training-box statistics
  (``box_statistics()``, :mod:`datamodules.box_stats`) → :func:`models.anchors.fit_to_boxes` (the
  detector's own fit: anchors for RetinaNet, point sizes and centre sampling for FCOS) → explicit
  values in the config. The fit is a
  deterministic function of the training split, so every run on that split (every loss and seed of
  a sweep, with the split seed fixed) gets the same anchors; the fit and its matched share go into
  the run record (``metrics.json``: ``box_statistics``, ``anchor_fit``).
- the budget (``budget_epochs``): ``trainer.max_epochs`` is raised until the run holds at least
  ``trainer.min_steps`` optimiser steps and each training box has been inside a training input about
  ``detection_budget.box_visits`` times — so the steps scale with the number of boxes and how many of
  them one input holds (a random crop of a large image holds a fraction), not only with the images:
  ``epochs ≥ box_visits · boxes / (images · boxes_per_input)``. Lightning alone would stop at
  ``max_epochs``. The scheduler follows (models/detection.py, ``T_max: null`` / ``total_steps: null``).
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
    min_steps = int(cfg.trainer.get("min_steps") or 0)
    box_visits = float((cfg.get("detection_budget") or {}).get("box_visits") or 0)
    if (min_steps or box_visits) and cfg.trainer.get("max_epochs", -1) not in (None, -1):
        datamodule.setup("fit")
        per_epoch = math.ceil(len(datamodule.train_dataloader()) / int(cfg.trainer.get("accumulate_grad_batches") or 1))
        stats = datamodule.box_statistics() if box_visits and isinstance(datamodule, HasBoxStatistics) else None
        if box_visits and stats is None:
            raise ValueError(f"detection_budget.box_visits={box_visits} needs box statistics from the datamodule; "
                             f"{type(datamodule).__name__} has no box_statistics(); set it to null and use "
                             f"trainer.min_steps or trainer.max_epochs")
        epochs, budget = budget_epochs(int(cfg.trainer.max_epochs), per_epoch, min_steps, box_visits, stats)
        if epochs != cfg.trainer.max_epochs:
            log.info("detection budget (min_steps=%d, box_visits=%s): max_epochs %d -> %d (%d optimiser steps per epoch)",
                     min_steps, box_visits or None, cfg.trainer.max_epochs, epochs, per_epoch)
            with open_dict(cfg):
                cfg.trainer.max_epochs = epochs
        record["budget"] = budget
    return record


def budget_epochs(max_epochs: int, steps_per_epoch: int, min_steps: int = 0, box_visits: float = 0.0,
                  stats: BoxStatistics | None = None) -> tuple[int, dict[str, Any]]:
    """The epochs a detection run trains: the largest of ``max_epochs``, the epochs holding ``min_steps``
    optimiser steps, and the epochs in which each training box is inside a training input about
    ``box_visits`` times (an epoch shows every image once, i.e. ``images · boxes_per_input`` boxes
    of ``len(stats.boxes)``). Returns the epochs and the record for metrics.json (``budget``)."""
    epochs = max(int(max_epochs), math.ceil(min_steps / max(steps_per_epoch, 1)) if min_steps else 0)
    record: dict[str, Any] = {"min_steps": int(min_steps), "steps_per_epoch": int(steps_per_epoch)}
    if box_visits and stats is not None and len(stats.boxes) and stats.images:
        per_epoch = stats.images * stats.boxes_per_input / len(stats.boxes)
        epochs = max(epochs, math.ceil(box_visits / max(per_epoch, 1e-9)))
        record.update(box_visits=float(box_visits), box_visits_per_epoch=round(per_epoch, 4))
    record.update(max_epochs=int(epochs), steps=int(epochs * steps_per_epoch))
    return epochs, record
