"""``hydra/launcher=gpu_pool`` on CPU: slot → GPU assignment, exclusive slots across processes, the
overrides and n_jobs set at launch, per-process pinning, the SLURM variant, and (slow) a real pooled
sweep whose results equal a sequential sweep's."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from runtime import gpu_pool
from runtime.compose import REPO
from runtime.gpu_pool import GpuPool, acquire_slot, gpu_of_slot, read_assignments, visible_gpus


def hydra_config(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_slots_go_round_robin_over_the_gpus():
    gpus = ["0", "1", "2"]
    by_gpu = {g: [s for s in range(3 * 4) if gpu_of_slot(s, gpus) == g] for g in gpus}
    assert by_gpu == {"0": [0, 3, 6, 9], "1": [1, 4, 7, 10], "2": [2, 5, 8, 11]}  # jobs_per_gpu = 4 each


def test_visible_gpus_order_of_precedence(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_gpus([0, 1]) == ["0", "1"]
    assert visible_gpus() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


HOLDER = """
import sys, time
from pathlib import Path
from runtime.gpu_pool import acquire_slot
pool, me = Path(sys.argv[1]), sys.argv[2]
(pool / f"ready-{me}").touch()
while not (pool / "go").exists():
    time.sleep(0.05)
slot, handle = acquire_slot(pool, 4, 0)
(pool / f"slot-of-{me}").write_text(str(slot))
while not (pool / "release").exists():
    time.sleep(0.05)
"""


def test_concurrent_processes_get_distinct_slots(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holders = [subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), str(k)], env=env) for k in range(4)]
    try:
        deadline = time.time() + 300
        while len(list(tmp_path.glob("ready-*"))) < 4 and time.time() < deadline:
            time.sleep(0.1)
        (tmp_path / "go").touch()  # all four race for slot 0 at once
        while len(list(tmp_path.glob("slot-of-*"))) < 4 and time.time() < deadline:
            time.sleep(0.1)
        slots = sorted(int(p.read_text()) for p in tmp_path.glob("slot-of-*"))
    finally:
        (tmp_path / "release").touch()
        for holder in holders:
            holder.wait(timeout=60)
    assert slots == [0, 1, 2, 3]  # all preferred slot 0; each got its own


def test_a_full_pool_says_why(tmp_path):
    held = [acquire_slot(tmp_path, 2, k) for k in range(2)]
    assert [slot for slot, _ in held] == [0, 1]
    with pytest.raises(RuntimeError, match="all 2 slots .* are held"):
        acquire_slot(tmp_path, 2, 0)
    held[0][1].close()  # a worker process exiting releases its slot
    assert acquire_slot(tmp_path, 2, 1)[0] == 0


def test_launch_sets_n_jobs_and_splits_the_cores():
    cfg = hydra_config("hydra/launcher=gpu_pool", "loss=dice")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and str(cfg.hydra.launcher.batch_size) == "1"
    assert cfg.hydra.callbacks.gpu_pool.jobs_per_gpu == 4
    GpuPool(jobs_per_gpu=2, gpus=[0, 1], cpus=16).on_multirun_start(cfg)
    assert cfg.hydra.launcher.n_jobs == 4
    # 16 cores / 4 concurrent jobs: 4 each, one for the training process, 3 DataLoader workers
    assert list(cfg.hydra.overrides.task) == ["loss=dice", "++datamodule.num_workers=3",
                                              "++datamodule.persistent_workers=true", "++datamodule.pin_memory=true"]
    few = hydra_config("hydra/launcher=gpu_pool")
    GpuPool(jobs_per_gpu=4, gpus=[0], cpus=2).on_multirun_start(few)
    assert list(few.hydra.overrides.task) == ["++datamodule.num_workers=0", "++datamodule.pin_memory=true"]


def test_no_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(RuntimeError, match="no GPU visible.*joblib_cpu"):
        GpuPool().on_multirun_start(hydra_config("hydra/launcher=gpu_pool"))
    with pytest.raises(ValueError, match="jobs_per_gpu must be an int >= 1, got 0"):
        GpuPool(jobs_per_gpu=0)


def test_a_worker_process_keeps_its_gpu_for_later_jobs(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_pool, "_held", None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    threads = torch.get_num_threads()
    cfg = hydra_config("hydra/launcher=gpu_pool", f"hydra.sweep.dir={tmp_path}")
    pool = GpuPool(jobs_per_gpu=2, gpus=[4, 7], cpus=8)
    try:
        for job in (3, 8, 1):
            cfg.hydra.job.num = job
            pool.on_job_start(cfg)
            assert os.environ["CUDA_VISIBLE_DEVICES"] == "7"  # job 3 → slot 3 → GPU 7, kept for jobs 8 and 1
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
        gpu_pool._held[2].close()
    assert [(r["job"], r["slot"], r["gpu"], r["threads"]) for r in read_assignments(tmp_path)] == \
        [(3, 3, "7", 2), (8, 3, "7", 2), (1, 3, "7", 2)]


def test_slurm_variant_leaves_pinning_to_slurm_and_splits_cpus_per_task():
    cfg = hydra_config("hydra/launcher=slurm_gpu_pool", "hydra.launcher.cpus_per_task=6")
    assert cfg.hydra.launcher.gres == "shard:2" and cfg.hydra.launcher.gpus_per_node is None
    options = dict(cfg.hydra.callbacks.gpu_pool)
    assert options["pin"] is False and options["cpus"] == 6
    options.pop("_target_")
    GpuPool(**options).on_multirun_start(cfg)
    assert "++datamodule.num_workers=5" in cfg.hydra.overrides.task
    assert "n_jobs" not in cfg.hydra.launcher


TINY = ["debug=fast", "trainer.max_epochs=1", "datamodule.train_size=8", "datamodule.val_size=4",
        "datamodule.test_size=4", "model.net.encoder_depth=3", "model.net.decoder_channels=[16,16,8]",
        "callbacks.progress_bar=null", "hydra.callbacks.compare.enabled=false", "loss=ce,dice", "seed=1,2"]


def sweep(sweep_dir: Path, *overrides: str) -> dict[int, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "train.py", "-m", *TINY, f"hydra.sweep.dir={sweep_dir}", *overrides],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    return {int(p.parent.name): json.loads(p.read_text()) for p in sweep_dir.glob("[0-9]*/metrics.json")}


@pytest.mark.slow
def test_pooled_sweep_equals_a_sequential_sweep(tmp_path):
    pooled = sweep(tmp_path / "pool", "hydra/launcher=gpu_pool", "hydra.callbacks.gpu_pool.gpus=[0,1]",
                   "hydra.callbacks.gpu_pool.jobs_per_gpu=1", "hydra.callbacks.gpu_pool.cpus=4")
    sequential = sweep(tmp_path / "seq")
    assert sorted(pooled) == sorted(sequential) == [0, 1, 2, 3]
    for job, record in sequential.items():
        assert record["status"] == pooled[job]["status"] == "completed"
        assert pooled[job]["metrics"] == pytest.approx(record["metrics"], rel=1e-5, abs=1e-6), job
    rows = read_assignments(tmp_path / "pool")
    assert sorted(r["job"] for r in rows) == [0, 1, 2, 3]
    assert {r["gpu"] for r in rows} == {"0", "1"}
    assert all(r["workers"] == 1 and r["threads"] == 2 for r in rows)  # 4 cores / 2 slots
    pids_per_gpu = {g: {r["pid"] for r in rows if r["gpu"] == g} for g in ("0", "1")}
    assert all(len(pids) == 1 for pids in pids_per_gpu.values())  # jobs_per_gpu = 1: one process per GPU
