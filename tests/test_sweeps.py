"""Real multiruns of ``train.py`` (tiny debug=fast jobs): fail-and-continue, the end-of-sweep comparison,
``resume=true``, the joblib and submitit_local launchers, and offline W&B runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from runtime.compose import REPO

# debug=fast on 8/4/4 images, one epoch, a 3-stage ResNet-18 U-Net: a few seconds per job on CPU.
TINY = ["debug=fast", "datamodule.train_size=8", "datamodule.val_size=4",
        "datamodule.test_size=4", "model.net.encoder_depth=3", "model.net.decoder_channels=[16,16,8]",
        "callbacks.progress_bar=null"]
BCE_ERROR = "ValueError: mode: bce supports 'binary' and 'multilabel', got 'multiclass'"


def multirun(sweep_dir: Path, *overrides: str, env: dict[str, str] | None = None,
             timeout: int = 600, epochs: int = 1) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "train.py", "-m", *TINY, f"trainer.max_epochs={epochs}", f"hydra.sweep.dir={sweep_dir}",
           *overrides]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true",
                "MPLBACKEND": "Agg", **(env or {})}
    done = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"multirun failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def records(sweep_dir: Path) -> dict[int, dict]:
    return {int(p.parent.name): json.loads(p.read_text()) for p in sweep_dir.glob("[0-9]*/metrics.json")}


def snapshot(run_dir: Path) -> dict[str, tuple[int, bytes]]:
    """mtime and bytes of the files a completed run produced (the .hydra/ dir is Hydra's)."""
    files = [run_dir / "metrics.json", run_dir / "config.yaml", *sorted((run_dir / "checkpoints").glob("*.ckpt"))]
    return {str(f.relative_to(run_dir)): (f.stat().st_mtime_ns, f.read_bytes()) for f in files}


@pytest.fixture(scope="module")
def resumed_sweep(tmp_path_factory):
    """3 losses × 2 seeds plus bce (fails on multiclass data), then a resume after deleting job 0's record."""
    sweep_dir = tmp_path_factory.mktemp("sweeps") / "loss_sweep"
    args = ("loss=ce,dice,focal,bce", "seed=1,2")
    first = multirun(sweep_dir, *args)
    state = {"dir": sweep_dir, "first_stdout": first.stdout + first.stderr, "records_1": records(sweep_dir),
             "leaderboard_1": pd.read_csv(sweep_dir / "leaderboard.csv")}
    completed = [n for n, r in state["records_1"].items() if r["status"] == "completed"]
    (sweep_dir / "0" / "metrics.json").unlink()  # job 0 interrupted: its record is missing
    state["kept"] = {n: snapshot(sweep_dir / str(n)) for n in completed if n != 0}
    state["failed_mtimes"] = {n: (sweep_dir / str(n) / "metrics.json").stat().st_mtime_ns
                              for n, r in state["records_1"].items() if r["status"] == "failed"}
    multirun(sweep_dir, *args, "resume=true")
    state["records_2"] = records(sweep_dir)
    return state


def test_failed_job_is_recorded_and_the_sweep_continues(resumed_sweep):
    recs = resumed_sweep["records_1"]
    assert len(recs) == 8
    by_loss = {(r["loss"], r["seed"]): r for r in recs.values()}
    assert {k for k, r in by_loss.items() if r["status"] == "failed"} == {("bce", 1), ("bce", 2)}
    for seed in (1, 2):
        failed = by_loss[("bce", seed)]
        assert failed["error"].startswith(BCE_ERROR) and "\n" not in failed["error"]
        assert failed["wall_time_s"] is not None
    for loss in ("ce", "dice", "focal"):
        assert all(by_loss[(loss, s)]["status"] == "completed" for s in (1, 2))
        assert 0.0 <= by_loss[(loss, 1)]["metrics"]["test/miou"] <= 1.0


def test_sweep_end_writes_the_leaderboard_with_statistics(resumed_sweep):
    lb = resumed_sweep["leaderboard_1"].set_index("loss")
    assert sorted(lb.index) == ["bce", "ce", "dice", "focal"]
    assert list(lb.loc[["ce", "dice", "focal", "bce"], "n_runs"]) == [2, 2, 2, 0]
    assert list(lb.loc[["ce", "dice", "focal", "bce"], "n_failed"]) == [0, 0, 0, 2]
    for loss in ("ce", "dice", "focal"):
        row = lb.loc[loss]
        assert row["miou_std"] >= 0 and row["miou_ci_low"] <= row["miou_mean"] <= row["miou_ci_high"]
    for loss in ("dice", "focal"):
        # Two pairs, paired t by default; Holm over the table's rows never lowers a p-value.
        assert lb.loc[loss, "n_pairs"] == 2 and 0.0 <= lb.loc[loss, "miou_p"] <= lb.loc[loss, "miou_p_holm"] <= 1.0
        assert lb.loc[loss, "miou_delta_ci_low"] <= lb.loc[loss, "miou_delta"] <= lb.loc[loss, "miou_delta_ci_high"]
    assert sorted(lb["rank"].dropna().astype(int)) == [1, 2, 3]
    sweep_dir = resumed_sweep["dir"]
    for name in ("leaderboard.md", "report.html", "seed_strips.png", "predictions_synthetic_imbalanced.png"):
        assert (sweep_dir / name).stat().st_size > 500, name


def test_compare_cli_reproduces_the_sweep_end_leaderboard(resumed_sweep, tmp_path):
    import compare

    sweep_dir = resumed_sweep["dir"]
    assert compare.main([str(sweep_dir), "--out", str(tmp_path), "--no-plots"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "leaderboard.csv"), pd.read_csv(sweep_dir / "leaderboard.csv"))


def test_resume_reruns_exactly_the_missing_and_failed_jobs(resumed_sweep):
    sweep_dir = resumed_sweep["dir"]
    second = resumed_sweep["records_2"]
    assert second[0]["status"] == "completed" and (second[0]["loss"], second[0]["seed"]) == ("ce", 1)
    for n, files in resumed_sweep["kept"].items():
        assert snapshot(sweep_dir / str(n)) == files, f"completed job {n} was touched by the resume"
        assert "already completed, skipped" in (sweep_dir / str(n) / "train.log").read_text()
    for n, mtime in resumed_sweep["failed_mtimes"].items():
        assert (sweep_dir / str(n) / "metrics.json").stat().st_mtime_ns > mtime, f"failed job {n} was not rerun"
        assert second[n]["status"] == "failed"
        assert "already completed, skipped" not in (sweep_dir / str(n) / "train.log").read_text()
    assert len(resumed_sweep["kept"]) + len(resumed_sweep["failed_mtimes"]) + 1 == 8


def test_every_job_of_a_sweep_records_its_history_and_best_epoch(tmp_path):
    sweep_dir = tmp_path / "history"
    multirun(sweep_dir, "loss=ce,dice", "seed=1,2", "hydra.callbacks.compare.enabled=false", epochs=3)
    recs = records(sweep_dir)
    assert sorted((r["loss"], r["seed"]) for r in recs.values()) == [("ce", 1), ("ce", 2), ("dice", 1), ("dice", 2)]
    for rec in recs.values():
        assert rec["status"] == "completed" and rec["epochs"] == 3
        assert {"train/loss", "val/miou"} <= set(rec["history"])
        assert {len(curve) for curve in rec["history"].values()} == {3}
        miou = rec["history"]["val/miou"]
        assert rec["best_epoch"] == miou.index(max(miou))
        assert isinstance(rec["converged"], bool) and rec["early_stopping"]["patience"] == 100


def test_joblib_launcher_runs_two_jobs_in_parallel_with_dataloader_workers(tmp_path):
    sweep_dir = tmp_path / "joblib"
    multirun(sweep_dir, "hydra/launcher=joblib_cpu", "hydra.launcher.n_jobs=2", "loss=ce,dice", "seed=1",
             "datamodule.num_workers=1", "hydra.callbacks.compare.enabled=false")
    recs = records(sweep_dir)
    assert [recs[n]["status"] for n in (0, 1)] == ["completed", "completed"]
    # Job start = Hydra writing its .hydra/ files, end = metrics.json: the two intervals overlap.
    starts = [(sweep_dir / str(n) / ".hydra" / "overrides.yaml").stat().st_mtime for n in (0, 1)]
    ends = [(sweep_dir / str(n) / "metrics.json").stat().st_mtime for n in (0, 1)]
    assert max(starts) < min(ends)


def test_submitit_local_launcher(tmp_path):
    sweep_dir = tmp_path / "submitit"
    multirun(sweep_dir, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "loss=dice", "seed=3",
             "hydra.callbacks.compare.enabled=false")
    rec = records(sweep_dir)[0]
    assert (rec["status"], rec["loss"], rec["seed"]) == ("completed", "dice", 3)
    assert list((sweep_dir / ".submitit").glob("*/*_result.pkl")), "job did not go through submitit"


def _wandb_records(path: Path):
    """Records of a W&B transaction log (``run-*.wandb``: LevelDB-log framing of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos, buf = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7 or data[pos + 6] == 0:  # block trailer / zero padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk of a record
            yield pb.Record.FromString(buf)
            buf = b""


def test_offline_wandb_multirun_gives_one_grouped_tagged_run_per_job(tmp_path):
    sweep_dir = tmp_path / "wandb_sweep"
    multirun(sweep_dir, "logger=wandb", "loss=ce,dice", "seed=1", "hydra.callbacks.compare.enabled=false",
             env={"WANDB_DIR": str(tmp_path / "wandb_dir")})
    for n, loss in enumerate(["ce", "dice"]):
        offline = list((sweep_dir / str(n) / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(offline) == 1, f"job {n}: expected one offline W&B run, found {offline}"
        recs = list(_wandb_records(offline[0]))
        run = next(r.run for r in recs if r.WhichOneof("record_type") == "run")
        assert run.run_group == "wandb_sweep"
        assert list(run.tags) == [loss, "synthetic_imbalanced", "segmentation"]
        assert run.display_name == f"{loss}_synthetic_imbalanced_seed1"
        config = {u.key: json.loads(u.value_json) for r in recs if r.WhichOneof("record_type") == "config"
                  for u in r.config.update}
        assert config["loss_name"] == loss and config["datamodule_name"] == "synthetic_imbalanced"
        assert config["seed"] == 1 and config["trainer.max_epochs"] == 1
        history = [i for r in recs if r.WhichOneof("record_type") == "history" for i in r.history.item]
        assert "val/miou" in {i.key or i.nested_key[0] for i in history}
        counts = [json.loads(i.value_json) for i in history if list(i.nested_key) == ["val/predictions", "count"]]
        assert counts and set(counts) == {4}, "4 prediction panels per validation epoch"
        exits = [r.exit.exit_code for r in recs if r.WhichOneof("record_type") == "exit"]
        assert exits == [0]


@pytest.mark.parametrize("preset,params", [
    ("focal", ["loss.gamma", "loss.alpha"]),
    ("tversky", ["loss.alpha", "loss.beta"]),
    ("dice_focal", ["loss.terms.dice.weight", "loss.terms.focal.weight", "loss.terms.focal.gamma"]),
])
def test_hparams_search_presets_search_existing_loss_keys(preset, params, tmp_path):
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from runtime.compose import compose_config

    try:
        cfg = compose_config([f"hparams_search={preset}"], tmp_path)
    finally:
        GlobalHydra.instance().clear()
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert list(sweeper.params) == params
    for key in params:  # an Optuna override of a key the loss does not have would fail every trial
        assert OmegaConf.select(cfg, key, default="missing") != "missing", key
    assert cfg.optimized_metric == "val/miou"


def test_optuna_search_runs_trials_and_reports_the_best(tmp_path):
    sweep_dir = tmp_path / "optuna"
    multirun(sweep_dir, "hparams_search=focal", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=2")
    recs = records(sweep_dir)
    assert sorted(r["status"] for r in recs.values()) == ["completed", "completed"]
    best = (sweep_dir / "optimization_results.yaml").read_text()
    assert "best_params" in best and "loss.gamma" in best
    assert len(pd.read_csv(sweep_dir / "leaderboard.csv")) == 2  # each trial is its own variant row


def _compose(overrides: list[str], tmp_path: Path):
    from hydra.core.global_hydra import GlobalHydra

    from runtime.compose import compose_config

    try:
        return compose_config(overrides, tmp_path)
    finally:
        GlobalHydra.instance().clear()


def test_benchmark_presets_cover_the_registry_and_the_cpu_variant_is_a_delta(tmp_path):
    from losses import available

    full = _compose(["experiment=loss_benchmark"], tmp_path)
    cpu = _compose(["experiment=loss_benchmark_cpu"], tmp_path)
    for cfg in (full, cpu):
        assert cfg.hydra.mode.name == "MULTIRUN"
        assert cfg.hydra.sweeper.params.loss == full.hydra.sweeper.params.loss
        assert cfg.hydra.sweeper.params.datamodule == "synthetic_imbalanced,synthetic_small"
    losses = full.hydra.sweeper.params.loss.split(",")
    assert sorted(losses) == sorted(set(available("segmentation")) - {"bce", "composite"})
    assert (full.hydra.sweeper.params.seed, cpu.hydra.sweeper.params.seed) == ("1,2,3,4,5", "1,2,3")
    assert (full.trainer.max_epochs, cpu.trainer.max_epochs) == (60, 40)
    assert (full.datamodule.train_size, cpu.datamodule.train_size) == (800, 80)
    assert cpu.model.channels_last is True and full.model.channels_last is False  # a speed switch measured on CPU
    assert cpu.model.net.encoder_depth == 3 and full.model.net.encoder_depth == 4
    # Early stopping may not end a run before a third of the maximum; patience is a fifth of it.
    for cfg in (full, cpu):
        stopper = cfg.callbacks.early_stopping
        assert stopper.min_delta == 0.005 and stopper.monitor == cfg.optimized_metric
        assert cfg.trainer.min_epochs == cfg.trainer.max_epochs // 3
        assert stopper.patience == cfg.trainer.max_epochs // 5

    box = _compose(["experiment=box_loss_benchmark"], tmp_path)
    assert box.task == "detection" and box.hydra.callbacks.compare.baseline == "giou"
    assert sorted(box.hydra.sweeper.params.loss.split(",")) == available("detection")


def test_a_preset_that_sets_multirun_itself_resolves_its_default_sweep_dir(tmp_path):
    """`python train.py experiment=…` (hydra.mode: MULTIRUN in the preset, no hydra.sweep.dir on the
    command line) used to fail with "HydraConfig was not set": paths.root_dir was ${hydra:runtime.cwd}."""
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "experiment=loss_benchmark_cpu", "loss=ce", "datamodule=synthetic_small",
         "seed=1", *TINY, "hydra.callbacks.compare.enabled=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    sweeps = list((tmp_path / "logs" / "segmentation" / "multiruns").glob("loss_benchmark_cpu_*"))
    assert len(sweeps) == 1 and json.loads((sweeps[0] / "0" / "metrics.json").read_text())["status"] == "completed"
