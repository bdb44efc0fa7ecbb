"""Segmentation LightningModule over segmentation-models-pytorch networks, with any registered loss."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import segmentation_models_pytorch as smp
import torch
from torch import Tensor, nn

from common.names import DATA_MODES
from metrics.cases import CaseRows
from metrics.segmentation import SegmentationMetrics
from models.unused_stages import drop_unused_modules
from models.lightning_base import (check_finite_loss, check_scheduler_interval, finish_case_rows, log_training_loss,
                                   optimizers_from_factories)


def build_smp(
    arch: str,
    encoder_name: str,
    in_channels: int,
    num_classes: int,
    mode: str,
    encoder_weights: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """An smp network (``arch`` as in ``smp.create_model``: unet, fpn, deeplabv3plus, …) with one output
    channel in binary mode and ``num_classes`` otherwise. ``encoder_weights=None``: no download.
    A keyword set to None in ``kwargs`` means "the architecture's default", so one config can drop an
    option that another architecture does not take."""
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    if mode not in DATA_MODES:
        raise ValueError(f"build_smp: mode must be one of {DATA_MODES}, got {mode!r}")
    classes = 1 if mode == "binary" else num_classes
    try:
        net = smp.create_model(
            arch, encoder_name=encoder_name, encoder_weights=encoder_weights,
            in_channels=in_channels, classes=classes, **kwargs,
        )
    except KeyError as error:
        raise ValueError(f"model: arch={arch!r}, encoder_name={encoder_name!r}: {error.args[0]}") from None
    # Encoder stages beyond encoder_depth (built by smp, never run): gone, so DDP needs no
    # find_unused_parameters. A 64x64 probe passes every smp encoder's depth (<= 5 halvings).
    drop_unused_modules(net, torch.zeros(1, in_channels, 64, 64))
    return net


class SegmentationModule(pl.LightningModule):
    """Trains ``net`` with ``loss`` and reports the contract's segmentation metrics for val and test.

    ``net`` maps images (B, C_in, *S) to logits (B, 1 or C, *S). Predictions are ``argmax`` over
    classes (multiclass) or ``sigmoid > 0.5`` (binary). ``optimizer``/``scheduler`` are factories
    (Hydra ``_partial_: true``) called with the parameters / the optimizer. ``inferer(net, images)``,
    when given, replaces ``net(images)`` at val/test/predict time (e.g. sliding-window inference on
    whole images). Each term of a composite loss (``loss.last_terms``) is logged as ``train/loss/<term>``.
    ``surface_tolerance_mm``: 3-D only, adds HD95 and NSD at that tolerance (mm), using the batch's
    ``spacing`` ``(B, 3)`` when the datamodule provides it.

    Each val/test pass also scores every case on its own (:class:`~metrics.segmentation.CaseScores`):
    ``case_rows(stage)`` holds one row per case of the last pass, named by the batch's ``case`` ids.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        num_classes: int,
        mode: str = "multiclass",
        ignore_index: int | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        inferer: Callable[[nn.Module, Tensor], Tensor] | None = None,
        small_object_buckets: Sequence[int] = (16, 64),
        surface_tolerance_mm: float | None = None,
    ) -> None:
        super().__init__()
        if mode not in DATA_MODES:
            raise ValueError(f"SegmentationModule: mode must be one of {DATA_MODES}, got {mode!r}")
        check_scheduler_interval("SegmentationModule", scheduler_interval)
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler", "inferer"])
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.inferer = inferer
        self.mode = mode
        metric_classes = 2 if mode == "binary" else num_classes
        self.val_metrics = SegmentationMetrics(metric_classes, ignore_index, small_object_buckets, surface_tolerance_mm)
        self.test_metrics = SegmentationMetrics(metric_classes, ignore_index, small_object_buckets, surface_tolerance_mm)
        self._cases = {stage: CaseRows(stage) for stage in ("val", "test")}

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def predict_logits(self, images: Tensor) -> Tensor:
        """Logits for evaluation: through the inferer when one is configured."""
        return self.inferer(self.net, images) if self.inferer is not None else self.net(images)

    def logits_to_labels(self, logits: Tensor) -> Tensor:
        if self.mode == "binary":
            return (logits.squeeze(1) > 0).long()
        return logits.argmax(1)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        logits = self.net(batch["image"])
        loss = self.loss(logits, batch["mask"])
        terms = getattr(self.loss, "last_terms", None) or {}
        check_finite_loss(self, loss, terms, batch_idx)
        log_training_loss(self, loss, terms, batch["image"].shape[0])
        return loss

    def _evaluate(self, batch: dict[str, Tensor], metrics: SegmentationMetrics, stage: str) -> None:
        logits = self.predict_logits(batch["image"])
        loss = self.loss(logits, batch["mask"])
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=batch["image"].shape[0], sync_dist=True)
        scores = metrics.update(self.logits_to_labels(logits), batch["mask"], batch.get("spacing"))
        self._cases[stage].add(batch.get("case"), scores.rows())

    def _log_metrics(self, metrics: SegmentationMetrics, stage: str) -> None:
        # A class absent everywhere has NaN scores: logged as such (null in metrics.json), and left
        # out of the means, so the monitored metrics stay finite.
        self.log_dict({f"{stage}/{key}": value.float() for key, value in metrics.compute().items()})
        metrics.reset()
        finish_case_rows(self, self._cases[stage])

    def case_rows(self, stage: str) -> list[dict[str, Any]]:
        """The per-case rows of the last ``stage`` pass (``val`` or ``test``), in loader order."""
        return self._cases[stage].rows

    def on_validation_epoch_start(self) -> None:
        self._cases["val"].reset()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "val")

    def on_test_epoch_start(self) -> None:
        self._cases["test"].reset()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self.logits_to_labels(self.predict_logits(batch["image"]))

    def configure_optimizers(self) -> Any:
        return optimizers_from_factories(self, self.optimizer_factory, self.scheduler_factory, self.scheduler_interval)

