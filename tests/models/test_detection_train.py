"""``train.py task=detection`` end to end on the real configs: a few batches of 64×64 images with
RetinaNet and FCOS, metrics.json with the contract's detection keys."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from train import train

TINY = (
    "task=detection", "debug=fast", "logger=csv", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
    "datamodule.image_size=64", "datamodule.object_sizes=[4,24]", "datamodule.batch_size=2",
    "datamodule.train_size=4", "datamodule.val_size=2", "datamodule.test_size=2", "model.detector.fpn_channels=32",
)
KEYS = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100"] + [f"ap/{k}" for k in range(5)]


@pytest.mark.parametrize(("model", "loss"), [("retinanet", "ciou"), ("fcos", "nwd")])
def test_detection_run_writes_contract_metrics(run_config, model: str, loss: str) -> None:
    cfg = run_config(*TINY, f"model={model}", f"loss={loss}")
    assert cfg.optimized_metric == "val/map"
    train(cfg)
    record = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert record["status"] == "completed" and record["task"] == "detection"
    assert (record["model"], record["loss"], record["datamodule"]) == (model, loss, "synthetic_det")
    for stage in ("val", "test"):
        for key in KEYS:
            assert f"{stage}/{key}" in record["metrics"], f"{stage}/{key} missing"
    value = record["metrics"]["test/map"]
    assert value is not None and 0.0 <= value <= 1.0 and not math.isnan(value)
    assert record["metrics"]["test/map_large"] is None  # no object above 96² px² in 64×64 images


def test_task_default_loss_is_ciou_and_loss_override_wins(run_config) -> None:
    assert run_config("task=detection").loss._target_ == "losses.box.CIoULoss"
    cfg = run_config("task=detection", "loss=giou")
    assert cfg.loss._target_ == "losses.box.GIoULoss"
    assert cfg.model._target_ == "models.detection.DetectionModule"
    assert cfg.datamodule._target_ == "datamodules.synthetic_det.SyntheticDetDataModule"
