"""Find and read the runs under sweep or run dirs: ``metrics.json`` (CONTRACTS section 4) plus configs."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from runtime.run_record import RECORD_NAME

STATUSES = ("completed", "failed")
_REQUIRED_KEYS = ("status", "task", "loss", "datamodule")


@dataclass(frozen=True)
class Run:
    """One run dir: its ``metrics.json`` record, resolved config and Hydra overrides."""

    path: Path
    status: str
    task: str
    loss: str
    datamodule: str
    model: str
    seed: int | None
    error: str | None
    wall_time_s: float | None
    metrics: dict[str, float]
    record: dict[str, Any] = field(repr=False)
    config: dict[str, Any] = field(repr=False)
    overrides: tuple[str, ...] = ()

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def metric(self, key: str) -> float:
        """The metric ``key`` as a float; NaN when the run did not record it."""
        value = self.metrics.get(key)
        return float("nan") if value is None else float(value)


def find_metrics_files(root: Path) -> list[Path]:
    """Every ``metrics.json`` under ``root``, skipping hidden dirs and W&B's local files."""
    if root.is_file():
        return [root] if root.name == RECORD_NAME else []
    found = []
    for path in sorted(root.rglob(RECORD_NAME)):
        parts = path.relative_to(root).parts[:-1]
        if any(p.startswith(".") or p == "wandb" for p in parts):
            continue
        found.append(path)
    return found


def collect_runs(dirs: Iterable[str | Path]) -> list[Run]:
    """Read every run under ``dirs``; one task only, each run dir once.

    Raises ``ValueError`` for a missing dir, a dir without any ``metrics.json``, a malformed
    ``metrics.json`` or runs of different tasks mixed together.
    """
    roots = [Path(d).expanduser().resolve() for d in dirs]
    if not roots:
        raise ValueError("no directories given: pass one or more run or sweep dirs")
    seen: dict[Path, Run] = {}
    for root in roots:
        if not root.exists():
            raise ValueError(f"run/sweep dir {str(root)!r} does not exist")
        files = find_metrics_files(root)
        if not files:
            raise ValueError(
                f"no metrics.json found under {str(root)!r}: expected a run dir (holding metrics.json) "
                "or a sweep dir (holding run dirs); has the run started yet?")
        for f in files:
            seen.setdefault(f.parent, read_run(f.parent))
    runs = sorted(seen.values(), key=lambda r: (r.datamodule, r.model, r.loss, _seed_key(r.seed), str(r.path)))
    _check_single_task(runs)
    return runs


def read_run(run_dir: Path) -> Run:
    """Read ``run_dir/metrics.json`` and, when present, ``config.yaml`` and ``.hydra/overrides.yaml``."""
    path = run_dir / RECORD_NAME
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc}") from exc
    if not isinstance(record, dict):
        raise ValueError(f"{str(path)!r}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in _REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"{str(path)!r}: missing keys {missing} (CONTRACTS section 4 lists the format)")
    if record["status"] not in STATUSES:
        raise ValueError(f"{str(path)!r}: status {record['status']!r} is not one of {STATUSES}")
    metrics = record.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise ValueError(f"{str(path)!r}: 'metrics' must be an object of name -> number, got {metrics!r}")
    config = _read_yaml(run_dir / "config.yaml") or {}
    overrides = _read_yaml(run_dir / ".hydra" / "overrides.yaml") or []
    return Run(
        path=run_dir,
        status=record["status"],
        task=str(record["task"]),
        loss=str(record["loss"]),
        datamodule=str(record["datamodule"]),
        model=str(record.get("model") or "?"),
        seed=record.get("seed"),
        error=record.get("error"),
        wall_time_s=record.get("wall_time_s"),
        metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float)) or v is None},
        record=record,
        config=config if isinstance(config, dict) else {},
        overrides=tuple(str(o) for o in overrides) if isinstance(overrides, list) else (),
    )


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot parse {str(path)!r}: {exc}") from exc


def _check_single_task(runs: list[Run]) -> None:
    by_task: dict[str, list[Run]] = {}
    for r in runs:
        by_task.setdefault(r.task, []).append(r)
    if len(by_task) > 1:
        parts = "; ".join(f"{task}: {len(rs)} runs, e.g. {str(rs[0].path)!r}" for task, rs in sorted(by_task.items()))
        raise ValueError(f"runs from different tasks mixed ({parts}); compare one task at a time")


def _seed_key(seed: int | None) -> tuple[int, int]:
    return (1, 0) if seed is None else (0, int(seed))
