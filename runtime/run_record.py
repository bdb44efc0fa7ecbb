"""The per-run ``metrics.json`` record: its schema (the one place that defines it), a typed builder,
atomic writing and reading. docs/contracts.md ("metrics.json") explains every field to users."""
from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, NotRequired, Sequence, TypedDict

RECORD_NAME = "metrics.json"
STATUSES = ("completed", "failed")


class RunRecord(TypedDict):
    """One run's ``metrics.json``. A run's record starts ``failed`` (:func:`new_record`) and becomes
    ``completed`` only after evaluation; it is written also when the run fails."""

    status: Literal["completed", "failed"]
    error: str | None                      # "Type: first line of the message" of a failed run
    task: str                              # segmentation | detection
    loss: str                              # the config-group choices of the run
    datamodule: str
    model: str
    seed: int
    wall_time_s: float | None
    epochs: int                            # epochs trained
    metrics: dict[str, float | None]       # val/… and test/… of the best checkpoint; undefined → null
    history: dict[str, list[float | None]]  # one value per epoch run, per logged metric (runtime/history.py)
    best_epoch: int | None                 # 0-based epoch of the evaluated checkpoint
    optimized_metric: str
    preset: dict[str, Any] | None          # the experiment preset's {name, version}; null when none
    versions: dict[str, str]               # packages that decide the numbers, plus Python
    # Filled as the run gets there:
    best_checkpoint: NotRequired[str | None]          # the evaluated checkpoint (None: final weights)
    class_pixel_counts: NotRequired[list[float]]      # segmentation: training pixels per class
    split: NotRequired[dict[str, Any]]                # public datasets: {name, hash, counts, missing, unlisted} of the split used
    class_weights: NotRequired[list[float]]           # a loss with class weights: the weights used
    early_stopping: NotRequired[dict[str, Any]]       # monitor, mode, patience, min_delta, min_epochs, stopped, stopped_epoch
    converged: NotRequired[bool]                      # the validation curve levelled off (:func:`converged`)
    box_statistics: NotRequired[dict[str, Any]]       # detection with anchor_sizes: auto: the training boxes' sizes
    anchor_fit: NotRequired[dict[str, Any]]           # detection with anchor_sizes: auto (runtime/detection_wiring.py)
    budget: NotRequired[dict[str, Any]]               # detection: min_steps / box_visits and the epochs they asked for
    resumes: NotRequired[list[dict[str, Any]]]        # restarts from last.ckpt: from_epoch, from_step, at, reason (runtime/checkpointing.py)
    case_files: NotRequired[dict[str, str]]           # per-case tables of the evaluated checkpoint: {"test": "test_cases.csv", "val": "val_cases.csv"}


# The fields every record has, in the order they are written (what a reader may rely on).
REQUIRED_FIELDS = ("status", "error", "task", "loss", "datamodule", "model", "seed", "wall_time_s", "epochs",
                   "metrics", "history", "best_epoch", "optimized_metric", "preset", "versions")
# Budget fields: per-epoch curves, the evaluated checkpoint's epoch, the early-stopping settings and
# outcome, and whether the run's validation curve had levelled off (``converged`` below).
HISTORY = "history"
BEST_EPOCH = "best_epoch"
EARLY_STOPPING = "early_stopping"
CONVERGED = "converged"
CONVERGED_TOL = 0.01


def new_record(*, task: str, loss: str, datamodule: str, model: str, seed: int, optimized_metric: str,
               preset: dict[str, Any] | None = None) -> RunRecord:
    """A run's record at its start: ``failed`` with no error yet, no metrics, the package versions.
    ``preset``: the versioned benchmark preset the run belongs to (``{"name": ..., "version": ...}``)."""
    return RunRecord(status="failed", error=None, task=task, loss=loss, datamodule=datamodule, model=model,
                     seed=seed, wall_time_s=None, epochs=0, metrics={}, history={}, best_epoch=None,
                     optimized_metric=optimized_metric, preset=preset, versions=package_versions())


def preset_record(preset: Any) -> dict[str, Any] | None:
    """The record's ``preset`` from the config's ``preset`` node (a mapping, or None without a preset):
    ``{"name": str, "version": int}``, extra keys dropped.

    Raises:
        ValueError: ``preset`` is not a mapping with a non-empty ``name`` and an integer ``version`` >= 1.
    """
    if preset is None:
        return None
    name = preset.get("name") if hasattr(preset, "get") else None
    version = preset.get("version") if hasattr(preset, "get") else None
    if not isinstance(name, str) or not name or isinstance(version, bool) or not isinstance(version, int) \
            or version < 1:
        raise ValueError(f"preset must be {{name: <non-empty string>, version: <int >= 1>}} (set by the "
                         f"experiment config), got {preset!r}")
    return {"name": name, "version": version}


_VERSIONED_PACKAGES = (
    "torch",
    "torchvision",
    "pytorch-lightning",
    "hydra-core",
    "segmentation-models-pytorch",
    "torchmetrics",
    "numpy",
)


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a run's numbers (plus Python's)."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name.replace("-", "_")] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name.replace("-", "_")] = "not installed"
    return versions


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: a metric that is undefined (e.g. IoU of an absent class) is stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_record(run_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write ``record`` as ``run_dir/metrics.json`` atomically: temp file in the same dir, then rename."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / RECORD_NAME
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".metrics.", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(_json_safe(record), handle, indent=2, sort_keys=False, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_record(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's record, or None when the run dir has no readable ``metrics.json``."""
    path = Path(run_dir) / RECORD_NAME
    try:
        with open(path) as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_completed(run_dir: str | os.PathLike) -> bool:
    record = read_record(run_dir)
    return record is not None and record.get("status") == "completed"


def converged(curve: Sequence[float | None], mode: str, tol: float = CONVERGED_TOL, *,
              stopped_early: bool = False) -> bool:
    """Whether a validation curve (one value per epoch) has levelled off — lossbench's one definition,
    used for the run record and the report alike.

    A run converged if early stopping fired, or if the best value of the last quarter of the epochs
    (``max(1, n // 4)`` epochs) is within ``tol`` of the best value before that quarter:
    improves on it by at most ``tol`` (``mode="max"``, metrics that are fractions: absolute,
    ``best_last <= best_before + tol``; ``mode="min"``, e.g. HD95 in mm: relative,
    ``best_last >= best_before - tol * |best_before|``). A last quarter that is worse than the earlier best counts as levelled off: the curve
    peaked before it. Missing values (``None``/NaN, e.g. a metric undefined at an epoch) are skipped;
    a curve with fewer than 2 epochs, or with no finite value on either side, has not converged.

    >>> converged([0.2, 0.5, 0.60, 0.605], "max")
    True
    >>> converged([0.2, 0.4, 0.50, 0.56], "max")
    False
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if stopped_early:
        return True
    n = len(curve)
    if n < 2:
        return False
    tail = max(1, n // 4)

    def finite(values: Sequence[float | None]) -> list[float]:
        return [float(v) for v in values if v is not None and math.isfinite(float(v))]

    before, last = finite(curve[: n - tail]), finite(curve[n - tail:])
    if not before or not last:
        return False
    if mode == "max":
        return max(last) <= max(before) + tol
    return min(last) >= min(before) - tol * abs(min(before))


def one_line_error(error: BaseException) -> str:
    """``Type: first line of the message`` — what metrics.json keeps of a failure. Hydra's
    ``InstantiationException`` is unwrapped to the error it wraps, whose message says what was wrong."""
    from hydra.errors import InstantiationException

    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
