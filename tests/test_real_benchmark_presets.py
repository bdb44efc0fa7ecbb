"""The real-data benchmark presets (configs/experiment/real_benchmark*.yaml): they compose for every real
datamodule, pick the task's losses and the dataset's budget, are versioned, are fair by construction
(compare.py's fairness check finds no undeclared difference between their rows), and the GPU preset
runs end to end on CPU at debug size (its dry run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from common.flatten import flatten
from losses import available, build_loss
from reporting.collect import Run
from reporting.fairness import check_fairness
from reporting.grouping import group_runs
from runtime.compose import REPO, compose_config
from runtime.run_record import preset_record
from tests.real_data import HIPPOCAMPUS, real_data

PRESETS = ("real_benchmark_cpu", "real_benchmark")
SEG_LOSSES = ["ce", "weighted_ce", "focal", "dice", "tversky", "generalized_dice", "lovasz", "mcc", "dice_ce",
              "dice_focal", "dice_cldice"]
BOX_LOSSES = ["smooth_l1", "giou", "diou", "ciou", "nwd"]
SEG_DATA = ["dsb2018", "deepcrack", "msd", "drive", "isbi2012", "crackforest", "camvid", "folder", "volume_folder"]
DET_DATA = ["bccd", "voc_detection", "coco", "dsb2018"]
DEV_DATA = {("dsb2018", "segmentation"), ("deepcrack", "segmentation"), ("msd", "segmentation"), ("bccd", "detection")}


def _compose(overrides: list[str], out: Path):
    try:
        return compose_config(overrides, out)
    finally:
        GlobalHydra.instance().clear()


def _data(datamodule: str, task: str) -> list[str]:
    extra = ["datamodule.num_classes=2"] if datamodule == "coco" else []
    return [f"task={task}", f"datamodule={datamodule}", "datamodule.root=/data/x", *extra]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(("datamodule", "task"), [
    pytest.param(d, t, marks=() if (d, t) in DEV_DATA else pytest.mark.slow)  # the datasets of the committed sweep fast
    for d, t in [(d, "segmentation") for d in SEG_DATA] + [(d, "detection") for d in DET_DATA]])
def test_preset_composes_for_every_real_datamodule(preset, datamodule, task, tmp_path):
    cfg = _compose([f"experiment={preset}", *_data(datamodule, task)], tmp_path)
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.task == task
    assert cfg.hydra.runtime.choices.datamodule == datamodule
    assert OmegaConf.to_container(cfg.preset) == {"name": preset, "version": 1}
    assert cfg.real_benchmark.losses[task].split(",") == (SEG_LOSSES if task == "segmentation" else BOX_LOSSES)
    assert cfg.hydra.sweeper.params.seed == ("1,2,3" if preset.endswith("_cpu") else "1,2,3,4,5")
    # the sweep dir names the preset and the dataset; resume=true is left to the command line
    assert Path(cfg.hydra.sweep.dir).name.startswith(f"{preset}_{datamodule}_") and cfg.resume is False
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert trainer["max_epochs"] >= 4 and trainer["check_val_every_n_epoch"] >= 1
    if datamodule in ("msd", "volume_folder"):
        assert cfg.hydra.runtime.choices.model == "unet3d"


@pytest.mark.parametrize(("datamodule", "task", "budget"), [
    ("dsb2018", "segmentation", (6, 20, 1, None, None)),      # 120 steps of 16 instead of the default 320
    ("deepcrack", "segmentation", (10, None, 1, None, None)),  # the datamodule's default
    ("msd", "segmentation", (10, 72, 1, None, None)),         # 720 steps of 2 instead of 1,600
    ("drive", "segmentation", (10, None, 1, None, None)),      # not in the table: its datamodule's default
    ("bccd", "detection", (4, None, 2, None, None)),          # 208 steps: the budget rule off
    ("coco", "detection", (7, None, 4, 600, 4)),              # the real-data detection defaults' rule
])
def test_cpu_preset_budget_per_dataset(datamodule, task, budget, tmp_path):
    cpu = _compose(["experiment=real_benchmark_cpu", *_data(datamodule, task)], tmp_path)
    trainer = OmegaConf.to_container(cpu.trainer, resolve=True)
    visits = OmegaConf.to_container(cpu.detection_budget, resolve=True)["box_visits"]
    assert (trainer["max_epochs"], trainer["limit_train_batches"], trainer["check_val_every_n_epoch"],
            trainer["min_steps"], visits) == budget
    assert trainer["min_epochs"] is None and cpu.callbacks.early_stopping.patience == 100  # equal steps per row


@pytest.mark.parametrize(("datamodule", "task"), [("dsb2018", "segmentation"), ("bccd", "detection")])
def test_gpu_preset_has_the_full_budget_with_early_stopping(datamodule, task, tmp_path):
    gpu = _compose(["experiment=real_benchmark", *_data(datamodule, task)], tmp_path)
    full = OmegaConf.to_container(gpu.trainer, resolve=True)
    assert full["max_epochs"] == (50 if task == "segmentation" else 40)
    assert full["min_epochs"] == full["max_epochs"] // 3 and full["limit_train_batches"] is None
    stopper = gpu.callbacks.early_stopping
    assert (stopper.patience, stopper.min_delta, stopper.monitor) == (8, 0.005, gpu.optimized_metric)


def _preset_runs(preset: str, datamodule: str, task: str, losses: list[str], tmp_path: Path) -> list[Run]:
    """One Run per loss, as a sweep of the preset would record it (resolved config + overrides)."""
    runs = []
    for loss in losses:
        overrides = [f"experiment={preset}", *_data(datamodule, task), f"loss={loss}", "seed=1"]
        cfg = _compose(overrides, tmp_path / loss)
        config = OmegaConf.to_container(cfg, resolve=True)
        del config["hydra"]
        runs.append(Run(path=tmp_path / loss, status="completed", task=task, loss=loss, datamodule=datamodule,
                        model=cfg.hydra.runtime.choices.model, seed=1, error=None, wall_time_s=1.0, metrics={},
                        record={}, config=config, overrides=tuple(overrides)))
    return runs


FAIRNESS_CASES = [("real_benchmark_cpu", "dsb2018", "segmentation"), ("real_benchmark", "bccd", "detection")]
FAIRNESS_SLOW = [("real_benchmark", "dsb2018", "segmentation"), ("real_benchmark_cpu", "msd", "segmentation"),
                 ("real_benchmark", "msd", "segmentation"), ("real_benchmark_cpu", "bccd", "detection")]


@pytest.mark.parametrize(("preset", "datamodule", "task"), FAIRNESS_CASES +
                         [pytest.param(*case, marks=pytest.mark.slow) for case in FAIRNESS_SLOW])
def test_every_row_of_a_preset_differs_only_in_the_loss(preset, datamodule, task, tmp_path):
    losses = SEG_LOSSES if task == "segmentation" else BOX_LOSSES
    runs = _preset_runs(preset, datamodule, task, losses, tmp_path)
    grouping = group_runs(runs)
    assert [sorted(r.loss for r in rows) for rows in grouping.tables.values()] == [sorted(losses)]
    assert check_fairness(grouping) == []
    for run in runs:  # the rule itself, read off the configs: the background is in every loss that has the option
        flags = [v for k, v in flatten(run.config["loss"]).items() if k.endswith("include_background")]
        assert all(flags), f"{run.loss}: include_background {flags}"


def test_the_fairness_check_flags_cldice_with_its_own_defaults_next_to_the_preset(tmp_path):
    runs = _preset_runs("real_benchmark_cpu", "msd", "segmentation", ["dice", "focal", "cldice"], tmp_path)
    found = {d.key: d.values for d in check_fairness(group_runs(runs))}
    assert found["loss.*.include_background"] == {"cldice": "false", "dice": "true", "focal": "true"}
    assert found["loss.*.smooth"] == {"cldice": "1", "dice": "1e-05"}


def test_every_listed_loss_is_registered_for_its_task():
    assert set(SEG_LOSSES) <= set(available("segmentation")) and set(BOX_LOSSES) <= set(available("detection"))


@pytest.mark.parametrize(("mode", "classes", "spatial"), [("binary", 1, (20, 24)), ("multiclass", 3, (10, 12, 8))])
def test_dice_cldice_is_the_published_compound(mode, classes, spatial):
    """0.5 Dice + 0.5 clDice: with one smoothing for both parts it equals cldice(alpha=0.5) with the
    background included; its Dice term is the dice loss exactly (2-D binary and 3-D multiclass)."""
    torch.manual_seed(0)
    logits = torch.randn(2, classes, *spatial)
    target = torch.randint(0, 2 if mode == "binary" else 3, (2, *spatial))
    target[0, :3] = 255
    compound = build_loss("dice_cldice", mode=mode, ignore_index=255,
                          terms={"dice": {"weight": 0.5, "smooth": 1.0},
                                 "cldice": {"weight": 0.5, "alpha": 1.0, "include_background": True}})
    single = build_loss("cldice", mode=mode, ignore_index=255, alpha=0.5, smooth=1.0, include_background=True)
    torch.testing.assert_close(compound(logits, target), single(logits, target))
    default = build_loss("dice_cldice", mode=mode, ignore_index=255)
    default(logits, target)
    torch.testing.assert_close(default.last_terms["dice"], build_loss("dice", mode=mode, ignore_index=255)(logits, target))
    assert default.terms["cldice"].include_background and default.terms["cldice"].smooth == 1.0


def test_a_run_without_a_preset_records_null(run_config):
    assert preset_record(run_config("debug=fast").get("preset")) is None


def test_a_malformed_preset_is_refused_with_what_is_accepted():
    with pytest.raises(ValueError, match=r"preset must be \{name: <non-empty string>, version: <int >= 1>\}.*'1'"):
        preset_record({"name": "real_benchmark_cpu", "version": "1"})


def _multirun(sweep: Path, *overrides: str) -> list[dict]:
    """``train.py -m <overrides>`` at debug size into ``sweep``; the jobs' metrics.json records in job order."""
    cmd = [sys.executable, "train.py", "-m", "debug=fast", "callbacks.progress_bar=null", *overrides,
           f"hydra.sweep.dir={sweep}", "+hydra.callbacks.compare.plots=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "WANDB_MODE": "offline"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(p.read_text()) for p in sorted(sweep.glob("[0-9]*/metrics.json"), key=lambda p: int(p.parent.name))]


@pytest.mark.slow
def test_gpu_preset_dry_run_on_cpu_records_the_preset(tmp_path):
    """`experiment=real_benchmark` at debug size on synthetic data: every job completes, metrics.json
    carries the preset's name and version, and the end-of-sweep report names it."""
    sweep = tmp_path / "sweep"
    records = _multirun(sweep, "experiment=real_benchmark", "datamodule=synthetic_imbalanced", "datamodule.train_size=8",
                        "datamodule.val_size=4", "datamodule.test_size=4", "model.net.encoder_depth=3",
                        "model.net.decoder_channels=[16,16,8]", "trainer.min_epochs=null", "loss=ce,dice_cldice", "seed=1")
    assert [(r["loss"], r["status"], r["preset"]) for r in records] == [
        ("ce", "completed", {"name": "real_benchmark", "version": 1}),
        ("dice_cldice", "completed", {"name": "real_benchmark", "version": 1})]
    assert all(r["epochs"] == 2 for r in records)  # debug=fast's budget, not the preset's 50 epochs
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["presets"] == [{"name": "real_benchmark", "version": 1, "n_runs": 2}]
    assert summary["fairness"] == []


@pytest.mark.slow
@real_data(HIPPOCAMPUS)
def test_cpu_preset_runs_on_real_3d_volumes_at_debug_size(tmp_path):
    """MSD hippocampus through the CPU preset (3-D net, the two losses with the most 3-D-specific code)."""
    sweep = tmp_path / "sweep"
    records = _multirun(sweep, "experiment=real_benchmark_cpu", "datamodule=msd", f"datamodule.root={HIPPOCAMPUS}",
                        "loss=dice_cldice,lovasz", "seed=1")
    assert [(r["loss"], r["status"], r["model"], r["preset"]["name"]) for r in records] == [
        ("dice_cldice", "completed", "unet3d", "real_benchmark_cpu"), ("lovasz", "completed", "unet3d", "real_benchmark_cpu")]
    assert all(0.0 <= r["metrics"]["test/miou"] <= 1.0 for r in records)
    assert json.loads((sweep / "summary.json").read_text())["fairness"] == []
