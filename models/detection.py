"""Detection LightningModule over torchvision RetinaNet / FCOS with a registered box-regression loss."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from metrics.cases import CaseRows
from metrics.detection import DetectionMetrics
from models.det_heads import set_box_loss
from models.lightning_base import (check_finite_loss, check_scheduler_interval, finish_case_rows, log_training_loss,
                                   optimizers_from_factories)

Batch = tuple[list[Tensor], list[dict[str, Tensor]]]


class DetectionModule(pl.LightningModule):
    """Trains ``detector`` with ``loss`` as its box-regression loss; reports COCO box metrics.

    ``detector`` is built by :func:`models.det_heads.build_detector` (RetinaNet or FCOS whose heads
    take a pluggable box loss; see that module for how the loss is fed). The training loss is
    ``classification + box_loss_weight * bbox_regression (+ bbox_ctrness for FCOS)``; every term is
    logged as ``train/loss/<term>``. Validation and test log the contract's detection keys
    (``val/map``, ``test/map_small``, ``test/ap/<k>``, …; see :mod:`metrics.detection`), and
    ``case_rows(stage)`` holds one row per image of the last pass (:func:`metrics.detection.image_scores`),
    named by the targets' ``case`` ids.

    Batches are ``(images, targets)`` as in docs/architecture.md: a list of ``(3, H, W)`` float
    images in [0, 1] and a list of ``{"boxes": (K, 4) xyxy px, "labels": (K,) in [1, num_classes]}``.
    ``optimizer``/``scheduler`` are factories (Hydra ``_partial_: true``) called with the
    parameters / the optimizer. A scheduler length left null (``T_max: null``, ``total_steps:
    null``) follows the run: its optimiser steps (``trainer.estimated_stepping_batches``) with
    ``scheduler_interval: step``, its epochs with ``epoch`` — so a budget stated in steps, epochs or
    a minimum number of steps gets one full schedule.
    """

    def __init__(
        self,
        detector: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        num_classes: int,
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        box_loss_weight: float = 1.0,
        metrics_backend: str = "auto",
    ) -> None:
        super().__init__()
        check_scheduler_interval("DetectionModule", scheduler_interval)
        if not box_loss_weight > 0:
            raise ValueError(f"DetectionModule: box_loss_weight must be > 0, got {box_loss_weight!r}")
        self.save_hyperparameters(ignore=["detector", "loss", "optimizer", "scheduler"])
        set_box_loss(detector, loss)
        self.detector = detector
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.box_loss_weight = float(box_loss_weight)
        self.val_metrics = DetectionMetrics(num_classes, metrics_backend)
        self.test_metrics = DetectionMetrics(num_classes, metrics_backend)
        self._cases = {stage: CaseRows(stage) for stage in ("val", "test")}

    @property
    def net(self) -> nn.Module:
        """The network, under the name :class:`SegmentationModule` gives its own: code acting on
        a task module's network (``runtime.builders.instantiate_model``'s speed switches) needs
        no per-task branch."""
        return self.detector

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        """Detections per image: ``boxes`` (xyxy, input pixels), ``scores``, ``labels`` in [1, K]."""
        detections = self.detector(images)
        # Logit column 0 exists only so that labels can index from 1; it is never a class.
        return [{key: value[d["labels"] > 0] for key, value in d.items()} for d in detections]

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        images, targets = batch
        terms = self.detector(images, targets)
        weights = {"bbox_regression": self.box_loss_weight}
        loss = sum(weights.get(name, 1.0) * value for name, value in terms.items())
        check_finite_loss(self, loss, terms, batch_idx)
        log_training_loss(self, loss, terms, len(images))
        return loss

    def _evaluate(self, batch: Batch, metrics: DetectionMetrics, stage: str) -> None:
        images, targets = batch
        rows = metrics.update(self(images), targets)
        cases = [t["case"] for t in targets] if all("case" in t for t in targets) else None
        self._cases[stage].add(cases, rows)

    def case_rows(self, stage: str) -> list[dict[str, Any]]:
        """The per-image rows of the last ``stage`` pass (``val`` or ``test``), in loader order."""
        return self._cases[stage].rows

    def on_validation_epoch_start(self) -> None:
        self._cases["val"].reset()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "val")

    def on_test_epoch_start(self) -> None:
        self._cases["test"].reset()

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> list[dict[str, Tensor]]:
        return self(batch[0])

    def _log_metrics(self, metrics: DetectionMetrics, stage: str) -> None:
        self.log_dict({f"{stage}/{key}": value.to(self.device) for key, value in metrics.compute().items()})
        metrics.reset()
        finish_case_rows(self, self._cases[stage])

    def configure_optimizers(self) -> Any:
        scheduler = self.scheduler_factory
        if scheduler is not None:
            length = (int(self.trainer.estimated_stepping_batches) if self.scheduler_interval == "step"
                      else int(self.trainer.max_epochs))
            scheduler = follow_run_length(scheduler, length)
        return optimizers_from_factories(self, self.optimizer_factory, scheduler, self.scheduler_interval)


RUN_LENGTH_KEYS = ("T_max", "total_steps")


def follow_run_length(factory: Callable[..., Any], length: int) -> Callable[..., Any]:
    """``factory`` with its null length argument (one of ``RUN_LENGTH_KEYS``) set to ``length``."""
    keywords = getattr(factory, "keywords", {})
    unset = [key for key in RUN_LENGTH_KEYS if key in keywords and keywords[key] is None]
    if not unset:
        return factory
    if length < 1:
        raise ValueError(f"DetectionModule: scheduler {unset[0]}: null follows the run's length, but the trainer "
                         f"states none ({length}); set trainer.max_epochs or trainer.max_steps")
    return partial(factory, **{unset[0]: length})
