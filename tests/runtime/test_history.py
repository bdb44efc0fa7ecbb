"""Budget fields of metrics.json: per-epoch history, best_epoch, early stopping, the convergence rule."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from runtime.history import converged
from train import train

# debug=fast (3 train / 2 val batches of 4 images) on tiny splits with a 3-stage U-Net: seconds per run.
TINY = ("debug=fast", "logger=csv", "datamodule.train_size=12",
        "datamodule.val_size=8", "datamodule.test_size=4", "model.net.encoder_depth=3",
        "model.net.decoder_channels=[16,16,8]")


def _record(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


@pytest.mark.parametrize("curve,mode,expected", [
    ([0.2, 0.5, 0.60, 0.605], "max", True),      # last quarter +0.005 over the earlier best
    ([0.2, 0.4, 0.50, 0.56], "max", False),      # +0.06: still learning
    ([0.2, 0.6, 0.58, 0.50], "max", True),       # peaked before the last quarter
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.70, 0.709], "max", True),  # 9 epochs: last 2 vs first 7
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.69, 0.711], "max", False),
    ([1.0, 0.5, 0.40, 0.398], "min", True),
    ([1.0, 0.5, 0.40, 0.35], "min", False),
    ([0.3, None, math.nan, 0.305], "max", True),  # undefined epochs are skipped
    ([0.5], "max", False),                        # one epoch: nothing to compare
    ([None, None, None, 0.5], "max", False),
])
def test_convergence_rule(curve, mode, expected):
    assert converged(curve, mode) is expected


def test_convergence_rule_tolerance_and_early_stop():
    assert converged([0.2, 0.5, 0.60, 0.64], "max", tol=0.05)
    assert not converged([0.2, 0.5, 0.60, 0.64], "max", tol=0.03)
    assert converged([0.2, 0.4, 0.50, 0.56], "max", stopped_early=True)
    with pytest.raises(ValueError, match="mode must be 'max' or 'min', got 'maximize'"):
        converged([0.1, 0.2], "maximize")


def test_history_has_one_entry_per_epoch_and_ignores_the_sanity_check(run_config):
    cfg = run_config(*TINY, "trainer.max_epochs=3", "trainer.num_sanity_val_steps=2")
    train(cfg)
    record = _record(cfg)
    history = record["history"]
    assert record["status"] == "completed" and record["epochs"] == 3
    assert {"train/loss", "val/miou", "val/dice_fg", "val/loss", "val/small_recall/lt16"} <= set(history)
    assert all(len(curve) == 3 for curve in history.values())
    assert all(v > 0 for v in history["train/loss"])
    miou = history["val/miou"]
    assert record["best_epoch"] == miou.index(max(miou))
    # The evaluated checkpoint is the best epoch's: validating it again gives that epoch's value.
    assert record["metrics"]["val/miou"] == pytest.approx(miou[record["best_epoch"]], abs=1e-6)
    stopper = record["early_stopping"]
    assert stopper == {"monitor": "val/miou", "mode": "max", "patience": 100, "min_delta": 0.0,
                       "min_epochs": 0, "stopped": False, "stopped_epoch": None}
    assert record["converged"] is converged(miou, "max")


def test_early_stopping_waits_for_min_epochs_and_is_recorded(run_config):
    # min_delta 1.0 on an IoU: no epoch can improve, so early stopping asks to stop from epoch 1 on;
    # trainer.min_epochs=3 holds it off until epoch 2 (0-based) has run.
    cfg = run_config(*TINY, "trainer.max_epochs=6", "trainer.min_epochs=3", "callbacks.early_stopping.patience=1",
                     "callbacks.early_stopping.min_delta=1.0")
    train(cfg)
    record = _record(cfg)
    assert record["epochs"] == 3 and len(record["history"]["val/miou"]) == 3
    assert record["early_stopping"] == {"monitor": "val/miou", "mode": "max", "patience": 1, "min_delta": 1.0,
                                        "min_epochs": 3, "stopped": True, "stopped_epoch": 2}
    assert record["converged"] is True


def test_without_checkpoints_the_last_epoch_is_evaluated(run_config):
    cfg = run_config(*TINY, "trainer.max_epochs=2", "callbacks=none")
    train(cfg)
    record = _record(cfg)
    assert record["best_epoch"] == 1 and record["early_stopping"] is None
    assert len(record["history"]["train/loss"]) == 2


def test_failed_run_keeps_the_history_as_far_as_it_got(run_config):
    # lr 1e30 blows the weights up in the first step; the loss is non-finite from the next step on.
    cfg = run_config(*TINY, "trainer.max_epochs=3", "model.optimizer.lr=1e30", "model.optimizer.weight_decay=0")
    with pytest.raises(FloatingPointError):
        train(cfg)
    record = _record(cfg)
    assert record["status"] == "failed" and record["epochs"] == 0
    assert record["history"] == {} and record["best_epoch"] is None and record["converged"] is False


def test_failure_after_an_epoch_keeps_that_epoch(run_config, monkeypatch):
    from models.segmentation import SegmentationModule

    real_step = SegmentationModule.training_step

    def step(self, batch, batch_idx):
        if self.current_epoch == 1 and batch_idx == 1:
            raise RuntimeError("disk full")
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(SegmentationModule, "training_step", step)
    cfg = run_config(*TINY, "trainer.max_epochs=3")
    with pytest.raises(RuntimeError, match="disk full"):
        train(cfg)
    record = _record(cfg)
    assert record["status"] == "failed" and record["epochs"] == 1
    assert [len(v) for v in record["history"].values()] == [1] * len(record["history"])
    assert record["best_epoch"] == 0


def test_fit_resumed_from_a_checkpoint_continues_the_history(run_config):
    first = run_config(*TINY, "trainer.max_epochs=2", subdir="first")
    train(first)
    before = _record(first)["history"]
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    second = run_config(*TINY, "trainer.max_epochs=3", f"ckpt_path={last}", subdir="second")
    train(second)
    after = _record(second)
    assert after["epochs"] == 3
    assert after["history"]["val/miou"][:2] == before["val/miou"]
    assert after["history"]["train/loss"][:2] == before["train/loss"]
    assert len(after["history"]["val/miou"]) == 3


def test_detection_history_has_map_and_map_50(run_config):
    cfg = run_config("task=detection", "debug=fast", "logger=csv", "trainer.max_epochs=2",
                     "trainer.limit_train_batches=2", "datamodule.image_size=64", "datamodule.object_sizes=[4,24]",
                     "datamodule.batch_size=2", "datamodule.train_size=4", "datamodule.val_size=2",
                     "datamodule.test_size=2", "model.detector.fpn_channels=32")
    train(cfg)
    history = _record(cfg)["history"]
    assert {"train/loss", "val/map", "val/map_50"} <= set(history)
    assert all(len(curve) == 2 for curve in history.values())


def test_wall_clock_budget_ends_training_and_the_history_matches(run_config):
    # A 1 s budget: Lightning's Timer ends fitting after the first batch that crosses it.
    cfg = run_config(*TINY, "trainer.max_epochs=50", "trainer.max_time=00:00:00:01")
    train(cfg)
    record = _record(cfg)
    assert record["status"] == "completed" and record["epochs"] < 50
    assert {len(curve) for curve in record["history"].values()} <= {record["epochs"]}
    assert record["early_stopping"]["stopped"] is False and record["early_stopping"]["stopped_epoch"] is None
