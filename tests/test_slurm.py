"""Sweeps on a real single-node SLURM cluster (scripts/slurm_testbed.sh): a 4-job sweep through
``hydra/launcher=slurm``, one job requeued mid-run with ``scontrol requeue`` (it must resume from its
last.ckpt and end with a clean run's numbers), one job that hits its time limit (submitit's signal
handler requeues it, the requeued job resumes). Needs root, slurm-wlm and munge; skips with the reason
otherwise. Starts and stops its own test bed, or uses the one ``SLURM_CONF`` points at when its node is
up (.ci/run starts one)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.compose import REPO

pytestmark = pytest.mark.slow

TESTBED = REPO / "scripts" / "slurm_testbed.sh"
TINY = ["debug=fast", "logger=csv", "datamodule.train_size=8", "datamodule.val_size=4", "datamodule.test_size=4",
        "model.net.encoder_depth=3", "model.net.decoder_channels=[16,16,8]", "callbacks.progress_bar=null",
        "hydra.callbacks.compare.enabled=false"]
LAUNCHER = ["hydra/launcher=slurm", "hydra.launcher.partition=cpu", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=2"]


def running_testbed() -> dict[str, str] | None:
    """The environment for a test bed someone already started (``SLURM_CONF`` set and its node up, as
    .ci/run does); None otherwise."""
    conf = os.environ.get("SLURM_CONF")
    if not conf or not Path(conf).is_file() or shutil.which("sinfo") is None:
        return None
    state = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=os.environ, capture_output=True, text=True)
    return dict(os.environ) if state.returncode == 0 and state.stdout.split()[:1] in (["idle"], ["mix"]) else None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started_by_others = running_testbed()
    if started_by_others is not None:  # reused as it is, left running
        yield {**started_by_others, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "MPLBACKEND": "Agg"}
        return
    missing = [name for name in ("slurmctld", "slurmd", "munged", "sbatch", "scontrol") if shutil.which(name) is None]
    if missing:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} missing): scripts/slurm_testbed.sh install, as root")
    if os.geteuid() != 0:
        pytest.skip("the SLURM test bed starts slurmctld/slurmd/munged as root; this test runs as uid "
                    f"{os.geteuid()}")
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "LOSSBENCH_SLURM_DIR": str(state)}
    started = subprocess.run([str(TESTBED), "start"], env=env, capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        subprocess.run([str(TESTBED), "stop"], env=env, capture_output=True, timeout=120)
        pytest.skip(f"the SLURM daemons did not start: {started.stderr.strip()[-1500:]}")
    job_env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf"), "OMP_NUM_THREADS": "1",
               "WANDB_MODE": "offline", "MPLBACKEND": "Agg"}
    yield job_env
    subprocess.run([str(TESTBED), "stop"], env=env, capture_output=True, timeout=120)


def sweep(env: dict[str, str], sweep_dir: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "train.py", "-m", *TINY, *LAUNCHER, f"hydra.sweep.dir={sweep_dir}",
                             *overrides], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def array_task_id(sweep_dir: Path, job: int, timeout: float = 300) -> str:
    """The SLURM id (``<array>_<task>``) of sweep job ``job`` once submitit has submitted it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folders = [p.name for p in (sweep_dir / ".submitit").glob("[0-9]*") if p.is_dir()]
        if folders:  # "<array>_<task>" for a job array; a one-job sweep is a plain job "<id>"
            return f"{folders[0].split('_')[0]}_{job}" if "_" in folders[0] else folders[0]
        time.sleep(0.5)
    raise AssertionError(f"no submitit job folder under {sweep_dir} after {timeout} s")


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the sweep ended early:\n{process.communicate()[0][-3000:]}"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.2)


def records(sweep_dir: Path) -> dict[int, dict]:
    return {int(p.parent.name): json.loads(p.read_text()) for p in sweep_dir.glob("[0-9]*/metrics.json")}


def clean_run(env: dict[str, str], run_dir: Path, *overrides: str) -> dict:
    done = subprocess.run([sys.executable, "train.py", *TINY, f"hydra.run.dir={run_dir}", *overrides], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


def assert_same_metrics(resumed: dict, clean: dict) -> None:
    assert resumed["status"] == "completed" and resumed["epochs"] == clean["epochs"]
    for key, value in clean["metrics"].items():
        assert resumed["metrics"][key] == pytest.approx(value, abs=1e-6, nan_ok=True), key


def test_sweep_with_a_requeued_job_resumes_it_from_its_checkpoint(cluster, tmp_path):
    sweep_dir = tmp_path / "sweep"
    # 30 tiny epochs (~0.3 s each): the requeue below lands while the job still has ~29 epochs to go. With 4
    # epochs and a 1 s pause the job could end first on a fast machine, and requeueing a finished job
    # tests nothing (a red CI run, 2026-12-04).
    epochs = "trainer.max_epochs=30"
    process = sweep(cluster, sweep_dir, "loss=ce,dice", "seed=1,2", epochs)
    job_id = array_task_id(sweep_dir, 1)  # loss=ce seed=2
    wait_for(sweep_dir / "1" / "checkpoints" / "last.ckpt", process)  # written atomically: complete once seen
    assert job_state(cluster, job_id) == "RUNNING", job_state(cluster, job_id)
    requeued = subprocess.run(["scontrol", "requeue", job_id], env=cluster, capture_output=True, text=True)
    assert requeued.returncode == 0, requeued.stderr
    record_now = json.loads(path.read_text()) if (path := sweep_dir / "1" / "metrics.json").exists() else {}
    assert record_now.get("status") != "completed", "job 1 ended before the requeue reached it"
    output, _ = process.communicate(timeout=1200)
    assert process.returncode == 0, output[-4000:]
    recs = records(sweep_dir)
    assert sorted(recs) == [0, 1, 2, 3] and all(r["status"] == "completed" for r in recs.values()), recs
    assert [("resumes" in recs[n]) for n in (0, 2, 3)] == [False, False, False]
    [entry] = recs[1]["resumes"]
    assert entry["from_epoch"] >= 1, entry  # from its checkpoint, not from epoch 0
    assert entry["reason"].startswith("SLURM requeue 1; previous attempt: SIGTERMException"), entry
    clean = clean_run(cluster, tmp_path / "clean", "loss=ce", "seed=2", epochs)
    assert_same_metrics(recs[1], clean)


def job_state(env: dict[str, str], job_id: str) -> str:
    """SLURM's state of job ``job_id`` (``squeue %T``: PENDING, RUNNING, COMPLETING, ...)."""
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def elapsed_minutes(env: dict[str, str], job_id: str) -> int:
    """Whole minutes job ``job_id`` has run (``squeue %M``: ``[D-][H:]M:SS``)."""
    shown = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%M"], env=env, capture_output=True, text=True,
                           check=True).stdout.strip()
    days, _, clock = shown.rpartition("-")
    parts = [int(x) for x in clock.split(":")]
    hours, minutes = (parts[0], parts[1]) if len(parts) == 3 else (0, parts[0])
    return (int(days or 0) * 24 + hours) * 60 + minutes


def set_time_limit(env: dict[str, str], job_id: str, minutes: int) -> None:
    done = subprocess.run(["scontrol", "update", f"JobId={job_id}", f"TimeLimit={minutes}"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def submitit_logs(sweep_dir: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (sweep_dir / ".submitit").glob("*/*_log.err"))


def test_job_at_its_time_limit_requeues_itself_and_resumes(cluster, tmp_path):
    sweep_dir = tmp_path / "timeout"
    # A 60-minute job whose limit is cut to "now + 1 minute" once its first last.ckpt exists: SLURM sends
    # the warning signal (signal_delay_s=60, so at once), submitit requeues the job and exits it. The
    # requeued job gets its 60 minutes back and must resume from the checkpoint to the end.
    process = sweep(cluster, sweep_dir, "loss=ce", "seed=1", "trainer.max_epochs=60", "datamodule.train_size=48",
                    "trainer.limit_train_batches=12", "hydra.launcher.timeout_min=60",
                    "hydra.launcher.signal_delay_s=60", "hydra.launcher.max_num_timeout=2")
    job_id = array_task_id(sweep_dir, 0)
    wait_for(sweep_dir / "0" / "checkpoints" / "last.ckpt", process)
    set_time_limit(cluster, job_id, elapsed_minutes(cluster, job_id) + 1)
    deadline = time.monotonic() + 600
    while "Restarts=1" not in subprocess.run(["scontrol", "show", "job", job_id], env=cluster, capture_output=True,
                                             text=True).stdout:
        assert process.poll() is None, f"the sweep ended before a requeue:\n{process.communicate()[0][-3000:]}"
        assert time.monotonic() < deadline, f"no requeue within 600 s:\n{submitit_logs(sweep_dir)[-3000:]}"
        time.sleep(1.0)
    set_time_limit(cluster, job_id, 60)
    output, _ = process.communicate(timeout=1800)
    assert process.returncode == 0, output[-4000:]
    logs = submitit_logs(sweep_dir)
    # submitit calls it "preempted", not "timed-out": it judges by the timeout_min it asked for (60).
    assert "Caught signal SIGUSR2" in logs, logs[-3000:]
    assert "SLURM auto-requeueing enabled" not in logs  # Lightning's requeue handler stays off
    record = records(sweep_dir)[0]
    assert record["status"] == "completed" and record["epochs"] == 60
    [entry] = record["resumes"]
    assert entry["from_epoch"] >= 1, entry  # from the checkpoint, not from epoch 0
    assert entry["reason"].startswith("SLURM requeue 1; previous attempt: SystemExit"), entry
