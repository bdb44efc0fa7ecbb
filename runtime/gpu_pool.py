"""Hydra callback: run ``jobs_per_gpu`` sweep jobs at once on every visible GPU (``hydra/launcher=gpu_pool``).

A 64² U-Net leaves a large GPU mostly idle and start-up dominates a 150-run loss sweep, so the pool
runs several jobs per GPU. The launcher is Hydra's joblib launcher; this callback

- **on_multirun_start** (the launching process): finds the GPUs (``gpus``, else
  ``CUDA_VISIBLE_DEVICES``, else ``torch.cuda.device_count()``), sets the joblib launcher's
  ``n_jobs`` to ``slots = len(gpus) × jobs_per_gpu``, and appends ``++datamodule.num_workers=W``
  (``W = cpus // slots − 1``: each job's own process keeps one core) plus pinned memory / persistent
  workers where the datamodule has those options, so concurrent jobs split the cores instead of
  oversubscribing them. The appended overrides show in every job's ``.hydra/overrides.yaml``.
- **on_job_start** (each job's worker process): takes a slot and sets ``CUDA_VISIBLE_DEVICES`` to
  the slot's GPU, then ``torch.set_num_threads(cpus // slots)``. Slot ``s`` is on GPU
  ``gpus[s % len(gpus)]`` (so fewer jobs than slots still spread over the GPUs); a job prefers slot
  ``job.num % slots``. A slot is an exclusive ``flock`` on ``<sweep dir>/.gpu_pool/slot-<s>.lock``
  held for the life of the worker process: CUDA reads ``CUDA_VISIBLE_DEVICES`` once per process,
  and joblib reuses its worker processes, so a worker keeps its GPU for every later job it runs.
  At most ``jobs_per_gpu`` processes hold a GPU's slots, whatever order the jobs finish in.

Every assignment is appended to ``<sweep dir>/.gpu_pool/assignments.tsv`` (job number, slot, GPU,
pid, workers, threads). On SLURM (``hydra/launcher=slurm_gpu_pool``) the scheduler pins the GPU
(a GPU shard per job); the callback is configured with ``pin: false`` and only splits workers by
``cpus_per_task``.
"""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)

POOL_DIR = ".gpu_pool"
ASSIGNMENTS = "assignments.tsv"
# The slot this process holds: (pool dir, slot, open lock file). Kept for the process's lifetime.
_held: tuple[Path, int, Any] | None = None


def visible_gpus(gpus: Sequence[int | str] | None = None) -> list[str]:
    """GPU ids to share: ``gpus`` if given, else ``CUDA_VISIBLE_DEVICES``, else every CUDA device."""
    if gpus is not None:
        return [str(g) for g in gpus]
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(k) for k in range(torch.cuda.device_count())]


def gpu_of_slot(slot: int, gpus: Sequence[str]) -> str:
    """Round robin: slots 0, 1, … go to GPUs 0, 1, …, 0, 1, … (``jobs_per_gpu`` slots per GPU)."""
    return gpus[slot % len(gpus)]


def acquire_slot(pool_dir: Path, slots: int, preferred: int) -> tuple[int, Any]:
    """An exclusive, non-blocking ``flock`` on the first free ``slot-<s>.lock``, trying ``preferred`` first."""
    pool_dir.mkdir(parents=True, exist_ok=True)
    for offset in range(slots):
        slot = (preferred + offset) % slots
        handle = open(pool_dir / f"slot-{slot}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return slot, handle
    raise RuntimeError(f"gpu_pool: all {slots} slots in {pool_dir} are held by other processes; more concurrent "
                       "jobs than slots (hydra.launcher.n_jobs must equal GPUs × jobs_per_gpu; it is set at launch)")


class GpuPool(Callback):
    """Share the visible GPUs among concurrent sweep jobs; see the module docstring.

    Args:
        jobs_per_gpu: concurrent jobs per GPU (≥ 1).
        gpus: GPU ids to use; null: ``CUDA_VISIBLE_DEVICES`` or every CUDA device.
        cpus: cores to split among the jobs; null: the cores this process may use.
        pin: set ``CUDA_VISIBLE_DEVICES`` per job (false where a scheduler pins GPUs, e.g. SLURM).
        loader_defaults: append pinned memory / persistent workers overrides where the datamodule has them.
    """

    def __init__(self, jobs_per_gpu: int = 4, gpus: Sequence[int | str] | None = None, cpus: int | None = None,
                 pin: bool = True, loader_defaults: bool = True) -> None:
        if int(jobs_per_gpu) < 1:
            raise ValueError(f"gpu_pool: jobs_per_gpu must be an int >= 1, got {jobs_per_gpu!r}")
        if cpus is not None and int(cpus) < 1:
            raise ValueError(f"gpu_pool: cpus must be null or an int >= 1, got {cpus!r}")
        self.jobs_per_gpu = int(jobs_per_gpu)
        self.gpus = None if gpus is None else list(gpus)
        self.cpus = None if cpus is None else int(cpus)
        self.pin = bool(pin)
        self.loader_defaults = bool(loader_defaults)

    def _share(self, gpus: Sequence[str]) -> tuple[int, int]:
        """``(slots, cores per job)``: joblib pool: GPUs × jobs_per_gpu slots sharing this machine's cores;
        scheduler-pinned (``pin: false``): one job per allocation, owning its ``cpus``."""
        cpus = self.cpus if self.cpus is not None else len(os.sched_getaffinity(0))
        if not self.pin:
            return 1, cpus
        slots = max(1, len(gpus)) * self.jobs_per_gpu
        return slots, max(1, cpus // slots)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        gpus = visible_gpus(self.gpus) if self.pin else []
        if self.pin and not gpus:
            raise RuntimeError("gpu_pool: no GPU visible (CUDA_VISIBLE_DEVICES empty and torch sees no CUDA device); "
                               "run CPU sweeps with hydra/launcher=joblib_cpu, or name GPUs with "
                               "hydra.callbacks.gpu_pool.gpus=[0,1]")
        slots, cores = self._share(gpus)
        workers = max(0, cores - 1)  # one core stays with the job's own process
        overrides = [f"++datamodule.num_workers={workers}"]
        datamodule = config.get("datamodule") or {}
        if self.loader_defaults and workers > 0 and "persistent_workers" in datamodule:
            overrides.append("++datamodule.persistent_workers=true")
        if self.loader_defaults and "pin_memory" in datamodule:
            overrides.append("++datamodule.pin_memory=true")
        with read_write(config.hydra), open_dict(config.hydra):
            if self.pin and "n_jobs" in config.hydra.launcher:
                config.hydra.launcher.n_jobs = slots
            config.hydra.overrides.task = list(config.hydra.overrides.task) + overrides
        log.info("gpu_pool: %d slot(s) on GPU(s) %s, %d job(s) per GPU, %d DataLoader worker(s) per job",
                 slots, ",".join(gpus) or "-", self.jobs_per_gpu, workers)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _held
        gpus = visible_gpus(self.gpus) if self.pin else []
        slots, cores = self._share(gpus)
        if self.pin:
            job_num = int(OmegaConf.select(config, "hydra.job.num", default=0) or 0)
            pool_dir = Path(str(config.hydra.sweep.dir)) / POOL_DIR
            if _held is None or _held[0] != pool_dir:
                if _held is not None:
                    _held[2].close()
                slot, handle = acquire_slot(pool_dir, slots, job_num % slots)
                _held = (pool_dir, slot, handle)
                os.environ["CUDA_VISIBLE_DEVICES"] = gpu_of_slot(slot, gpus)
            with open(pool_dir / ASSIGNMENTS, "a") as out:
                out.write(f"{job_num}\t{_held[1]}\t{os.environ['CUDA_VISIBLE_DEVICES']}\t{os.getpid()}\t"
                          f"{OmegaConf.select(config, 'datamodule.num_workers')}\t{cores}\n")
        import torch

        torch.set_num_threads(cores)


def read_assignments(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``<sweep dir>/.gpu_pool/assignments.tsv`` as dicts (job, slot, gpu, pid, workers, threads)."""
    path = Path(sweep_dir) / POOL_DIR / ASSIGNMENTS
    keys = ("job", "slot", "gpu", "pid", "workers", "threads")
    rows = []
    for line in path.read_text().splitlines():
        values = line.split("\t")
        rows.append({k: (v if k == "gpu" else int(v) if v not in ("None", "") else None) for k, v in zip(keys, values)})
    return rows
