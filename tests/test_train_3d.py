"""train.py on volumes: tiny synthetic_3d and NIfTI-folder runs with the 3-D metric keys, the 3-D preset, and
(slow) the default runs' quality and a 2-loss multirun compared by compare.py."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from runtime.compose import REPO, compose_config
from train import train

sys.path.insert(0, str(REPO / "tests" / "datamodules"))
from mri_like import write_mri_like_folder  # noqa: E402

TINY_3D = ("debug=fast", "logger=csv", "model=unet3d", "model.net.filters=[4,8,16]", "datamodule.patch_size=[16,16,8]",
           "datamodule.patches_per_epoch=4", "datamodule.batch_size=2", "callbacks.progress_bar=null")
TINY_SYNTHETIC = ("datamodule=synthetic_3d", "datamodule.volume_size=[24,24,16]", "datamodule.train_size=2",
                  "datamodule.val_size=1", "datamodule.test_size=2", "datamodule.eval_batch_size=2")
KEYS_3D = ["miou", "dice_fg", "dice/1", "iou/3", "hd95", "hd95/1", "nsd", "nsd/3", "object_recall",
           "small_recall/lt32", "small_recall/ge256"]


def test_tiny_synthetic_3d_run_writes_the_3d_metric_keys(run_config):
    cfg = run_config(*TINY_3D, *TINY_SYNTHETIC, "loss=dice_ce")
    record = train(cfg)
    on_disk = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert on_disk["status"] == "completed" and on_disk["model"] == "unet3d" and on_disk["datamodule"] == "synthetic_3d"
    for stage in ("val", "test"):
        for key in KEYS_3D:
            assert f"{stage}/{key}" in on_disk["metrics"], f"{stage}/{key} missing"
    metrics = record["metrics"]
    assert 0 <= metrics["test/dice_fg"] <= 1 and 0 <= metrics["test/nsd"] <= 1
    diagonal = math.sqrt(24**2 + 24**2 + 16**2)
    assert 0 <= metrics["test/hd95"] <= diagonal + 1e-6  # mm at 1 mm spacing
    assert len(on_disk["class_pixel_counts"]) == 4
    # the saved example predictions are 2-D slices of the volumes (what compare.py draws)
    import numpy as np

    saved = np.load(Path(cfg.paths.output_dir) / "test_predictions.npz")
    assert saved["image"].shape == (2, 1, 24, 24) and saved["prediction"].shape == (2, 24, 24)


def test_tiny_volume_folder_run_uses_spacing_and_dataset_json(run_config, tmp_path):
    root = write_mri_like_folder(tmp_path / "Task01", cases=6, seed=1, shape=(20, 20, 8))
    cfg = run_config(*TINY_3D, "datamodule=volume_folder", f"datamodule.root={root}", "loss=dice",
                     "datamodule.split_fractions=[0.5,0.25,0.25]")
    record = train(cfg)
    assert record["status"] == "completed"
    assert cfg.datamodule.num_classes == 3 and cfg.datamodule.in_channels == 1  # filled from dataset.json
    assert "test/hd95/2" in record["metrics"] and "test/nsd/1" in record["metrics"]


@pytest.mark.parametrize("datamodule", [["datamodule=synthetic_3d"], ["datamodule=volume_folder", "datamodule.root=/data"]])
def test_a_3d_datamodule_picks_the_3d_net_unless_model_says_otherwise(tmp_path, datamodule):
    picked = compose_config(datamodule, tmp_path)
    assert picked.hydra.runtime.choices["model"] == "unet3d"
    assert picked.model.net._target_ == "models.unet3d.build_unet3d"
    chosen = compose_config([*datamodule, "model=unet"], tmp_path)
    assert chosen.hydra.runtime.choices["model"] == "unet"  # the command line wins
    plain = compose_config([], tmp_path)
    assert plain.hydra.runtime.choices["model"] == "unet"  # 2-D data keeps the 2-D default


def test_loss_benchmark_3d_preset_lists_registered_losses(tmp_path):
    from losses import available

    cfg = compose_config(["experiment=loss_benchmark_3d"], tmp_path)
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.hydra.runtime.choices["datamodule"] == "synthetic_3d"
    assert cfg.hydra.runtime.choices["model"] == "unet3d"
    losses = cfg.hydra.sweeper.params.loss.split(",")
    assert len(losses) == 9 and set(losses) <= set(available("segmentation"))
    assert cfg.hydra.sweeper.params.seed == "1,2,3"


def _train_cli(tmp_path: Path, *overrides: str, multirun: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MPLBACKEND": "Agg", "WANDB_MODE": "offline"}
    cmd = [sys.executable, "train.py", *(["-m"] if multirun else []), *overrides, "callbacks.progress_bar=null"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.mark.slow
def test_3d_multirun_of_two_losses_is_compared(tmp_path):
    sweep_dir = tmp_path / "sweep3d"
    _train_cli(tmp_path, *TINY_3D, *TINY_SYNTHETIC, "loss=dice_ce,focal_tversky", "seed=1",
               f"hydra.sweep.dir={sweep_dir}", "hydra.callbacks.compare.baseline=dice_ce", multirun=True)
    board = pd.read_csv(sweep_dir / "leaderboard.csv")
    assert sorted(board["loss"]) == ["dice_ce", "focal_tversky"]
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "compare.py", str(sweep_dir), "--out", str(out), "--baseline", "dice_ce",
                           "--metrics", "dice_fg", "hd95", "nsd"], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr[-3000:]
    board = pd.read_csv(out / "leaderboard.csv")
    assert {"dice_fg_mean", "hd95_mean", "nsd_mean"} <= set(board.columns)


@pytest.mark.slow
def test_default_synthetic_3d_run_beats_chance(tmp_path):
    run_dir = tmp_path / "run"
    _train_cli(tmp_path, "datamodule=synthetic_3d", "model=unet3d", "loss=dice_ce", f"hydra.run.dir={run_dir}")
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert metrics["test/dice_fg"] > 0.5  # chance (random labels at the class shares) is below 0.03
    assert metrics["test/dice/1"] > 0.8


@pytest.mark.slow
def test_mri_like_decathlon_folder_reaches_dice_070_with_defaults(tmp_path):
    root = write_mri_like_folder(tmp_path / "Task_MRILike", cases=30, seed=0)
    run_dir = tmp_path / "run"
    _train_cli(tmp_path, "datamodule=volume_folder", f"datamodule.root={root}", "model=unet3d", "loss=dice_ce",
               f"hydra.run.dir={run_dir}")
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert metrics["test/dice_fg"] >= 0.70


def test_saved_example_slices_keep_one_shape_when_volumes_differ():
    import torch

    from runtime.callbacks import _FirstImages

    class Identity:
        def predict_logits(self, images):
            return images

        def logits_to_labels(self, logits):
            return logits[:, 0].long()

    first = _FirstImages(num_images=4)
    for size in (6, 8, 6):  # whole volumes of different in-plane sizes, one per batch
        first.add(Identity(), {"image": torch.zeros(1, 1, size, size, 4), "mask": torch.zeros(1, size, size, 4)})
    arrays = first.arrays()
    assert arrays["image"].shape == (2, 1, 6, 6) and arrays["mask"].shape == (2, 6, 6)
