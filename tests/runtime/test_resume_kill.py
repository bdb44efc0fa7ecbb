"""Kill-and-resume of real ``python train.py`` processes: SIGKILL mid-epoch, SIGKILL inside a checkpoint
write, SIGTERM — each resumed with ``resume=true`` to the uninterrupted run's numbers (runtime/checkpointing.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from runtime.checkpointing import KILL_IN_WRITE_ENV
from runtime.compose import REPO

pytestmark = pytest.mark.slow

# 8 training images in 2 batches per epoch, 3 epochs, a 3-stage U-Net; one thread, as in a sweep job.
TINY = ["debug=fast", "logger=csv", "datamodule.train_size=8", "datamodule.val_size=4", "datamodule.test_size=4",
        "model.net.encoder_depth=3", "model.net.decoder_channels=[16,16,8]", "callbacks.progress_bar=null",
        "trainer.max_epochs=3"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "MPLBACKEND": "Agg"}


def start(run_dir: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "train.py", *TINY, f"hydra.run.dir={run_dir}", *extra], cwd=REPO,
                            env={**ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> str:
    output, _ = process.communicate(timeout=timeout)
    return output


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def kill_after_first_checkpoint(process: subprocess.Popen, run_dir: Path, signum: int, timeout: float = 600) -> None:
    """Sends ``signum`` once epoch 0's last.ckpt exists (the run is then somewhere in epoch 1 or later)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + timeout
    while not last.is_file():
        assert process.poll() is None, f"the run ended before its first checkpoint:\n{finish(process)[-3000:]}"
        assert time.monotonic() < deadline, "no last.ckpt in time"
        time.sleep(0.05)
    process.send_signal(signum)


def resume(run_dir: Path) -> dict:
    done = start(run_dir, "resume=true")
    output = finish(done)
    assert done.returncode == 0, output[-3000:]
    return record(run_dir)


def assert_same_run(resumed: dict, clean: dict) -> None:
    assert resumed["status"] == "completed" and resumed["epochs"] == clean["epochs"] == 3
    assert resumed["best_epoch"] == clean["best_epoch"]
    for key, value in clean["metrics"].items():
        assert resumed["metrics"][key] == pytest.approx(value, abs=1e-6, nan_ok=True), key
    for key, curve in clean["history"].items():
        assert resumed["history"][key] == pytest.approx(curve, abs=1e-6, nan_ok=True), key


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("clean") / "run"
    process = start(run_dir)
    output = finish(process)
    assert process.returncode == 0, output[-3000:]
    return record(run_dir)


def test_sigkill_mid_epoch_then_resume(clean, tmp_path):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    kill_after_first_checkpoint(process, run_dir, signal.SIGKILL)
    finish(process)
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()  # killed: nothing recorded
    resumed = resume(run_dir)
    assert_same_run(resumed, clean)
    [entry] = resumed["resumes"]
    assert entry["from_epoch"] >= 1 and entry["reason"] == "resume=true; previous attempt left no metrics.json"


def test_sigkill_inside_a_checkpoint_write_then_resume(clean, tmp_path):
    run_dir = tmp_path / "run"
    # Epoch 0 writes best + last; the third write (epoch 1) is killed after its temp file, before the rename.
    process = start(run_dir, env={KILL_IN_WRITE_ENV: "3"})
    finish(process)
    assert process.returncode == -signal.SIGKILL
    checkpoints = run_dir / "checkpoints"
    assert list(checkpoints.glob(".*.tmp")), "the killed write left no temp file"
    assert torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 0
    resumed = resume(run_dir)
    assert_same_run(resumed, clean)
    assert resumed["resumes"][0]["from_epoch"] == 1
    assert not list(checkpoints.glob(".*.tmp"))


def test_sigterm_stops_records_and_resumes(clean, tmp_path):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    kill_after_first_checkpoint(process, run_dir, signal.SIGTERM)
    output = finish(process)
    stopped = record(run_dir)  # Lightning stops at the next batch; the record is written on the way out
    assert stopped["status"] == "failed" and stopped["error"].startswith("SIGTERMException"), output[-2000:]
    resumed = resume(run_dir)
    assert_same_run(resumed, clean)
    [entry] = resumed["resumes"]
    assert entry["from_epoch"] >= 1 and entry["reason"] == "resume=true; previous attempt: SIGTERMException"
