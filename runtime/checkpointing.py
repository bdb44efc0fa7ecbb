"""Resuming an interrupted run from its ``last.ckpt``: atomic checkpoints, the state they carry, the checks.

An interrupted run (SIGKILL, SIGTERM, a SLURM time limit or preemption, a node failure) leaves
``<run dir>/checkpoints/last.ckpt`` from the end of its last finished epoch. When the run is started
again in the same run dir — ``resume=true`` in a sweep, or SLURM running a requeued job
(``SLURM_RESTART_COUNT`` ≥ 1) — and its ``metrics.json`` is not ``completed``, :func:`resume_from`
hands that checkpoint to ``trainer.fit(ckpt_path=…)``. Lightning restores model, optimiser,
scheduler, epoch/step and the callbacks' state (``ModelCheckpoint``, early stopping, the
:class:`~runtime.history.History` curves); :class:`RngState` adds the global RNG states and the
training loader's sampling generators (its shuffling ``torch.Generator``, a patch sampler's numpy
one), so a resumed run continues with the same random draws and,
on CPU, ends with the same metrics as an uninterrupted one.

Rules:
- checkpoints are written by :class:`AtomicCheckpointIO`: temp file in the same dir, fsync, rename,
  fsync of the dir — a kill leaves the previous complete file, never a half-written one; SIGTERM,
  SIGINT, SIGUSR1/2 arriving during a write are delivered once it is done;
- every checkpoint carries a stamp (``checkpoint["lossbench"]``): the run's resolved config (minus
  :data:`COSMETIC_KEYS`), the package versions and the resumes so far;
- a ``last.ckpt`` that cannot be read or lacks a key Lightning or the stamp needs is *corrupt*: its
  ``checkpoints/`` dir is moved aside to ``checkpoints.corrupt-<time>/``, the run starts from scratch, and
  the log and ``metrics.json``'s ``resumes`` say so (``from_epoch`` 0, ``reason`` with the error);
- a ``last.ckpt`` whose stamped config differs from the run's is refused (``ValueError`` naming each
  differing key); other package versions only warn;
- the resume point is the end of the last finished epoch (``last.ckpt`` is saved at every epoch end):
  a kill or signal mid-epoch costs that partial epoch. Lightning's mid-epoch checkpoints would not
  resume to the same numbers, so none are written.
"""
from __future__ import annotations

import logging
import os
import random
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.distributed import DistributedSamplerWrapper
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.data import DataLoader

from runtime.run_record import RunRecord, one_line_error, package_versions, read_record

log = logging.getLogger("lossbench")

STAMP_KEY = "lossbench"
RESUMES = "resumes"
# Keys that may differ between an interrupted run and its resume without changing its numbers
# (a key and everything below it).
COSMETIC_KEYS = ("hydra", "paths", "logger", "resume", "ckpt_path", "tags", "test", "trainer.default_root_dir",
                 "trainer.max_time", "trainer.enable_progress_bar", "callbacks.progress_bar", "callbacks.lr_monitor",
                 "callbacks.test_predictions", "callbacks.val_predictions", "callbacks.model_checkpoint.dirpath",
                 "datamodule.num_workers", "datamodule.pin_memory", "datamodule.persistent_workers")
# The keys a checkpoint needs to resume fitting (Lightning's and ours).
REQUIRED_KEYS = ("state_dict", "optimizer_states", "lr_schedulers", "loops", "callbacks", "epoch", "global_step",
                 STAMP_KEY)
# Test hook: a process started with this variable set to n kills itself (SIGKILL) during its n-th
# checkpoint write, after the temp file is complete and before the rename.
KILL_IN_WRITE_ENV = "LOSSBENCH_TEST_KILL_IN_CHECKPOINT_WRITE"
# Handled only after a checkpoint write has finished (SIGKILL cannot wait).
DEFERRED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2")
                         if hasattr(signal, name))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` checkpoint IO, written atomically and stamped with ``stamp()``."""

    def __init__(self, stamp: Callable[[], dict[str, Any]]) -> None:
        self.stamp = stamp
        self.writes = 0

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"storage_options is not supported by {type(self).__name__}, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writes += 1
        # The scheduler's signals wait until the file is in place: a Python handler that raises inside
        # torch.save (submitit's requeue handler calls sys.exit) would surface as a RuntimeError of
        # torch's writer and end the job as failed instead of requeued.
        with _deferred_signals():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    torch.save({**checkpoint, STAMP_KEY: self.stamp()}, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                if os.environ.get(KILL_IN_WRITE_ENV) == str(self.writes):
                    os.kill(os.getpid(), signal.SIGKILL)
                os.replace(tmp, path)
                _fsync_dir(path.parent)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise


@contextmanager
def _deferred_signals() -> Iterator[None]:
    """Holds back the Python handlers of :data:`DEFERRED_SIGNALS` (main thread only) and raises the
    signals that arrived once the body is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    originals = {s: signal.getsignal(s) for s in DEFERRED_SIGNALS}
    originals = {s: h for s, h in originals.items() if h is not None}  # None: a handler Python cannot restore
    for signum in originals:
        signal.signal(signum, lambda received, frame: pending.append(received))
    try:
        yield
    finally:
        for signum, handler in originals.items():
            signal.signal(signum, handler)
        for signum in pending:
            signal.raise_signal(signum)


def _fsync_dir(directory: Path) -> None:
    """Makes a rename in ``directory`` durable (POSIX; a no-op where dirs cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RngState(pl.Callback):
    """Carries the global RNG states (torch, CUDA, numpy, Python) and the training loaders' sampling
    generators in the checkpoint and puts them back at the first training epoch after a resume — the
    point where the uninterrupted run drew its next numbers. The sampling generators are the
    ``torch.Generator`` that shuffles a loader and the numpy ``Generator`` of a sampler that draws its
    own epochs (:class:`~datamodules.patch_sampler.PatchSampler`), also behind Lightning's DDP sampler
    wrapper. Exact with ``num_workers=0`` or non-persistent workers (persistent workers keep RNG states
    of their own)."""

    def __init__(self) -> None:
        self._trainer: pl.Trainer | None = None
        self._pending: dict[str, Any] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def _samplers(self) -> list[Any]:
        """The training loaders and every sampler behind them, each object once."""
        loaders = self._trainer.train_dataloader if self._trainer is not None else None
        if loaders is None:
            return []
        if isinstance(loaders, Mapping):
            loaders = list(loaders.values())
        elif not isinstance(loaders, (list, tuple)):
            loaders = [loaders]
        found: dict[int, Any] = {}
        todo = list(loaders)
        while todo:
            owner = todo.pop(0)
            if owner is None or id(owner) in found:
                continue
            found[id(owner)] = owner
            todo += [getattr(owner, "sampler", None), getattr(owner, "batch_sampler", None)]
            if isinstance(owner, DistributedSamplerWrapper):
                todo.append(owner.dataset._sampler)  # the wrapped sampler (private attribute; the DDP test guards it)
        return list(found.values())

    def _generators(self) -> list[torch.Generator]:
        found = {id(g): g for g in (getattr(s, "generator", None) for s in self._samplers())
                 if isinstance(g, torch.Generator)}
        return list(found.values())

    def _numpy_generators(self) -> list[np.random.Generator]:
        found = {id(g): g for s in self._samplers() if not isinstance(s, DataLoader)
                 for g in getattr(s, "__dict__", {}).values() if isinstance(g, np.random.Generator)}
        return list(found.values())

    def state_dict(self) -> dict[str, Any]:
        return {"rng": _rng_states(), "loader_generators": [g.get_state() for g in self._generators()],
                "sampler_generators": [g.bit_generator.state for g in self._numpy_generators()]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is None:
            return
        _set_rng_states(self._pending["rng"])
        for kind, generators, saved in (
                ("torch", self._generators(), self._pending["loader_generators"]),
                ("sampler", self._numpy_generators(), self._pending.get("sampler_generators"))):
            if saved is None:  # a checkpoint from before samplers' generators were saved (2026-12-04)
                if generators:
                    log.warning("the checkpoint holds no sampler generator states: the resumed run draws "
                                "other training patches than an uninterrupted one would")
                continue
            if len(generators) != len(saved):
                raise RuntimeError(f"the checkpoint holds {len(saved)} {kind} generator state(s) of the training "
                                   f"loaders, the training loaders now have {len(generators)}: the data setup changed")
            for generator, state in zip(generators, saved):
                if kind == "torch":
                    generator.set_state(state)
                else:
                    generator.bit_generator.state = state
        self._pending = None
        # Lightning made this epoch's batch iterator when fitting started, before this first hook after
        # the resume; the uninterrupted run makes it after ``on_train_epoch_start`` (every epoch > 0).
        # Make it again from the restored state (private API; the resume tests guard it).
        iter(trainer.fit_loop._data_fetcher)


def _rng_states() -> dict[str, Any]:
    """The global RNG states as tensors and plain Python values, so that checkpoints still load with
    ``torch.load(weights_only=True)`` (as Lightning loads the best checkpoint for evaluation)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
            "python": random.getstate()}


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))


def slurm_restart_count() -> int:
    """How often SLURM has requeued this job (``SLURM_RESTART_COUNT``; 0 outside SLURM)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def resuming(cfg: DictConfig) -> bool:
    """Whether this start continues an earlier one in the same run dir: ``resume=true`` or a requeued SLURM job."""
    return bool(cfg.get("resume")) or slurm_restart_count() > 0


def stamped_config(cfg: DictConfig) -> dict[str, Any]:
    """``cfg`` flattened to ``{"a.b": resolved value}``, without :data:`COSMETIC_KEYS`; a value that does
    not resolve (e.g. an interpolation to a ``???`` the run never needed) is kept as written."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if prefix in COSMETIC_KEYS:
            return
        if isinstance(value, dict) and value:
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
            return
        try:
            node = OmegaConf.select(cfg, prefix, throw_on_missing=False)
            resolved = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        except Exception:
            resolved = value
        flat[prefix] = resolved

    walk("", OmegaConf.to_container(cfg, resolve=False))
    return flat


def config_differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``key: checkpoint <a>, now <b>`` for every key whose value differs or that only one side has."""
    missing = object()
    lines = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key, missing), now.get(key, missing)
        if a != b:
            lines.append(f"{key}: checkpoint {'(absent)' if a is missing else repr(a)}, "
                         f"now {'(absent)' if b is missing else repr(b)}")
    return lines


def versions() -> dict[str, str]:
    """lossbench's version and those of the packages that decide the numbers."""
    try:
        own = metadata.version("lossbench")
    except metadata.PackageNotFoundError:
        own = "not installed"
    return {"lossbench": own, **package_versions()}


def last_checkpoint(trainer: pl.Trainer) -> Path | None:
    """Where the ``ModelCheckpoint`` callback keeps ``last.ckpt``; None without one that saves it."""
    callback = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.save_last), None)
    if callback is None or callback.dirpath is None:
        return None
    return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"


def resume_from(cfg: DictConfig, trainer: pl.Trainer, record: RunRecord) -> str | None:
    """Makes ``trainer``'s checkpoints resumable and returns the checkpoint to fit from.

    ``cfg.ckpt_path`` when given; else, when :func:`resuming`, the run dir's checked ``last.ckpt``
    (module docstring) with an entry appended to ``record["resumes"]``; else None (from scratch).
    """
    config, now_versions = stamped_config(cfg), versions()
    trainer.strategy.checkpoint_io = AtomicCheckpointIO(
        lambda: {"config": config, "versions": now_versions, RESUMES: list(record.get(RESUMES, []))})
    trainer.callbacks.insert(0, RngState())  # before ModelCheckpoint, which Lightning keeps last
    environment = trainer._accelerator_connector.cluster_environment
    if isinstance(environment, SLURMEnvironment):
        # Requeueing is submitit's (docs/sweeps.md); Lightning's own would write a mid-epoch checkpoint.
        environment.auto_requeue = False
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    path = last_checkpoint(trainer)
    if not resuming(cfg) or path is None or not path.is_file():
        return None
    for leftover in path.parent.glob(".*.tmp"):  # a write that was killed before its rename
        leftover.unlink(missing_ok=True)
    trigger = f"SLURM requeue {slurm_restart_count()}" if slurm_restart_count() else "resume=true"
    previous = read_record(cfg.paths.output_dir)
    before = (f"previous attempt: {previous.get('error') or previous.get('status')}" if previous
              else "previous attempt left no metrics.json")
    try:
        checkpoint = _load_checked(path)
    except CorruptCheckpoint as error:
        moved = _move_aside(path.parent)
        reason = f"{trigger}; {path.name} unusable ({error}); moved to {moved.name}/, restarted from scratch"
        log.warning("%s: %s", path, reason)
        _add_resume(record, [], from_epoch=0, from_step=0, reason=reason)
        return None
    stamp = checkpoint[STAMP_KEY]
    differences = config_differences(stamp.get("config", {}), config)
    if differences:
        raise ValueError(f"{path} was written by a run with another config; refusing to resume from it. "
                         f"Differing keys: {'; '.join(differences)}. Delete {path.parent} to start this run "
                         "again from scratch, or run the new config in another run dir.")
    changed = {k: (v, now_versions.get(k)) for k, v in stamp.get("versions", {}).items() if now_versions.get(k) != v}
    if changed:
        log.warning("resuming %s written with other versions: %s", path,
                    ", ".join(f"{k} {a} → now {b}" for k, (a, b) in sorted(changed.items())))
    epochs_done = int(checkpoint["epoch"]) + 1
    _add_resume(record, stamp.get(RESUMES, []), from_epoch=epochs_done, from_step=int(checkpoint["global_step"]),
                reason=f"{trigger}; {before}")
    log.info("resuming %s at epoch %d (step %d)", path, epochs_done, int(checkpoint["global_step"]))
    return str(path)


class CorruptCheckpoint(Exception):
    """A checkpoint that cannot be unpickled or lacks a key resuming needs."""


def _load_checked(path: Path) -> dict[str, Any]:
    try:  # mmap: the tensors stay on disk (Lightning reads the file again to restore), only the keys are checked
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as error:  # truncated zip, bad pickle, EOF, ...: all mean the same here
        raise CorruptCheckpoint(f"cannot be read: {one_line_error(error)}") from error
    if not isinstance(checkpoint, dict):
        raise CorruptCheckpoint(f"holds a {type(checkpoint).__name__}, not a checkpoint dict")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CorruptCheckpoint(f"lacks {', '.join(missing)}")
    return checkpoint


@rank_zero_only
def _move_aside_rank0(directory: Path, target: Path) -> None:
    directory.rename(target)


def _move_aside(directory: Path) -> Path:
    target = directory.with_name(f"{directory.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    _move_aside_rank0(directory, target)
    return target


def _add_resume(record: RunRecord, earlier: list[dict[str, Any]], *, from_epoch: int, from_step: int,
                reason: str) -> None:
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record[RESUMES] = [*earlier, {"from_epoch": from_epoch, "from_step": from_step, "at": at, "reason": reason}]
