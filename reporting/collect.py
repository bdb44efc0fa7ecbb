"""Find and read the runs under sweep or run dirs: ``metrics.json`` (its schema is in ``docs/sweeps.md``),
the resolved ``config.yaml`` and Hydra's ``overrides.yaml``.

A run dir that cannot be read — malformed or partial ``metrics.json``, an unknown status, a broken
YAML file, a job that started (``.hydra/`` exists) but never wrote ``metrics.json`` — is skipped and
listed with the reason, so one bad dir never stops the comparison of the others.
YAML is composed by libyaml (C) and turned into Python by a small constructor of our own: plain
scalars are typed as YAML's core schema types them (``null``, ``true``, ints, floats including ``1e-3``),
quoted ones stay strings. That is ~15× PyYAML's pure-Python loader and ~1.5× its C loader, whose
object construction is still Python; it is what makes 2,000 run dirs a few seconds. Every file is
read once.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from runtime.run_record import RECORD_NAME, STATUSES

# The fields a report needs; older records lack some of runtime.run_record.REQUIRED_FIELDS.
_REQUIRED_KEYS = ("status", "task", "loss", "datamodule")
_COMPOSER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


@dataclass(frozen=True)
class Run:
    """One run dir: its ``metrics.json`` record, resolved config and Hydra overrides.

    ``history`` maps a metric key (``val/miou``, ``train/loss``) to its per-epoch values (``None``
    where an epoch did not log it); empty for runs made before the record carried it.
    ``early_stopped`` is ``True``/``False`` when the record says whether early stopping ended the
    run, ``None`` when it does not say.
    """

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
    history: dict[str, list[float | None]] = field(default_factory=dict, repr=False)
    best_epoch: int | None = None
    early_stopped: bool | None = None
    resumes: list[dict[str, Any]] = field(default_factory=list, repr=False)  # restarts from last.ckpt (metrics.json "resumes")

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def metric(self, key: str) -> float:
        """The metric ``key`` as a float; NaN when the run did not record it."""
        value = self.metrics.get(key)
        return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Skipped:
    """A run dir left out of the comparison, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Collection:
    """The readable runs (sorted) and the run dirs that were skipped."""

    runs: list[Run]
    skipped: list[Skipped]


class BadRunDir(ValueError):
    """A run dir whose files cannot be used; the message says which file and why."""


def find_run_dirs(root: Path) -> list[Path]:
    """Run dirs under ``root``: dirs holding ``metrics.json`` or Hydra's ``.hydra/`` (a started job);
    hidden dirs and W&B's local files are not searched."""
    if root.is_file():
        return [root.parent] if root.name == RECORD_NAME else []
    found = {p.parent for p in root.rglob(RECORD_NAME)} | {p.parent for p in root.rglob(".hydra") if p.is_dir()}
    keep = []
    for path in sorted(found):
        parts = path.relative_to(root).parts if path != root else ()
        if any(p.startswith(".") or p == "wandb" for p in parts):
            continue
        keep.append(path)
    return keep


def collect_runs(dirs: Iterable[str | Path]) -> Collection:
    """Read every run under ``dirs``, each run dir once; one task only.

    Raises ``ValueError`` for a missing dir, a dir without any run dir, no readable run at all, or
    runs of different tasks mixed together. Unreadable run dirs are skipped (``Collection.skipped``).
    """
    roots = [Path(d).expanduser().resolve() for d in dirs]
    if not roots:
        raise ValueError("no directories given: pass one or more run or sweep dirs")
    run_dirs: dict[Path, None] = {}
    for root in roots:
        if not root.exists():
            raise ValueError(f"run/sweep dir {str(root)!r} does not exist")
        found = find_run_dirs(root)
        if not found:
            raise ValueError(
                f"no metrics.json found under {str(root)!r}: expected a run dir (holding metrics.json) "
                "or a sweep dir (holding run dirs); has the run started yet?")
        run_dirs.update(dict.fromkeys(found))
    runs, skipped = [], []
    for run_dir in run_dirs:
        try:
            runs.append(read_run(run_dir))
        except BadRunDir as exc:
            skipped.append(Skipped(run_dir, str(exc)))
    if not runs:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5])
        raise ValueError(f"none of the {len(skipped)} run dirs could be read: {reasons}")
    runs.sort(key=lambda r: (r.datamodule, r.model, r.loss, _seed_key(r.seed), str(r.path)))
    _check_single_task(runs)
    return Collection(runs, skipped)


def read_run(run_dir: Path) -> Run:
    """Read ``run_dir/metrics.json`` and, when present, ``config.yaml`` and ``.hydra/overrides.yaml``.

    Raises :class:`BadRunDir` (a ``ValueError``) naming the file and what is wrong with it.
    """
    path = run_dir / RECORD_NAME
    if not path.is_file():
        raise BadRunDir(f"no {RECORD_NAME} (the job was started but has not finished, or was killed)")
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BadRunDir(f"cannot read {RECORD_NAME}: {exc}") from exc
    if not isinstance(record, dict):
        raise BadRunDir(f"{RECORD_NAME}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in _REQUIRED_KEYS if k not in record]
    if missing:
        raise BadRunDir(f"{RECORD_NAME}: missing keys {missing} (docs/sweeps.md lists the format)")
    if record["status"] not in STATUSES:
        raise BadRunDir(f"{RECORD_NAME}: status {record['status']!r} is not one of {STATUSES}")
    metrics = record.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise BadRunDir(f"{RECORD_NAME}: 'metrics' must be an object of name -> number, got {metrics!r}")
    config = _read_yaml(run_dir / "config.yaml")
    overrides = _read_yaml(run_dir / ".hydra" / "overrides.yaml")
    best_epoch = record.get("best_epoch")
    return Run(
        path=run_dir,
        status=record["status"],
        task=str(record["task"]),
        loss=str(record["loss"]),
        datamodule=str(record["datamodule"]),
        model=str(record.get("model") or "?"),
        seed=record.get("seed"),
        error=record.get("error"),
        wall_time_s=_number(record.get("wall_time_s")),
        metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
        record=record,
        config=config if isinstance(config, dict) else {},
        overrides=tuple(str(o) for o in overrides) if isinstance(overrides, list) else (),
        history=_history(record.get("history")),
        best_epoch=best_epoch if isinstance(best_epoch, int) and not isinstance(best_epoch, bool) else None,
        early_stopped=_early_stopped(record),
        resumes=[r for r in record.get("resumes") or [] if isinstance(r, dict)],
    )


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadRunDir(f"cannot read {path.name}: {exc}") from exc
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        name = f".hydra/{path.name}" if path.parent.name == ".hydra" else path.name
        raise BadRunDir(f"cannot parse {name}: {str(exc).splitlines()[0]}") from exc


def load_yaml(text: bytes | str) -> Any:
    """Parse one YAML document (see the module docstring for the typing of scalars)."""
    node = yaml.compose(text, Loader=_COMPOSER)
    return None if node is None else _construct(node)


def _construct(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {_construct(k): _construct(v) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v) for v in node.value]
    return node.value if node.style else parse_scalar(node.value)


@functools.lru_cache(maxsize=65_536)
def parse_scalar(text: str) -> Any:
    """A plain YAML scalar or a Hydra override value, typed: ``1e-3`` → 0.001, ``null`` → None, ``True`` → True."""
    s = text.strip()
    low = s.lower()
    if low in ("null", "none", "~", ""):
        return None
    if low in ("true", "false"):
        return low == "true"
    if low in (".inf", "+.inf", "-.inf", ".nan"):
        return float(low.replace(".", ""))
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


def _history(value: Any) -> dict[str, list[float | None]]:
    """``{"val/miou": [...], ...}``; keys whose value is not a list of numbers/nulls are left out."""
    if not isinstance(value, dict):
        return {}
    out = {}
    for k, seq in value.items():
        if isinstance(seq, list) and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                                         for v in seq):
            out[str(k)] = [None if v is None else float(v) for v in seq]
    return out


def _early_stopped(record: dict[str, Any]) -> bool | None:
    """``"early_stopped": bool`` or ``"early_stopping": {"stopped": bool, ...}`` in the record."""
    flag = record.get("early_stopped")
    if isinstance(flag, bool):
        return flag
    info = record.get("early_stopping")
    if isinstance(info, dict) and isinstance(info.get("stopped"), bool):
        return info["stopped"]
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _check_single_task(runs: list[Run]) -> None:
    by_task: dict[str, list[Run]] = {}
    for r in runs:
        by_task.setdefault(r.task, []).append(r)
    if len(by_task) > 1:
        parts = "; ".join(f"{task}: {len(rs)} runs, e.g. {str(rs[0].path)!r}" for task, rs in sorted(by_task.items()))
        raise ValueError(f"runs from different tasks mixed ({parts}); compare one task at a time")


def _seed_key(seed: int | None) -> tuple[int, int]:
    return (1, 0) if seed is None else (0, int(seed))
