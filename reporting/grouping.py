"""Which runs are compared with which: tables, rows, and the settings that are ignored.

- A **table** is one datamodule × model × the settings that can change the numbers and differ
  between runs (``model.optimizer.lr=0.001``, ``trainer.max_epochs=30``). Losses are ranked and
  tested against the baseline only inside a table.
- A **row** is one loss plus its settings that differ inside the table (``focal gamma=1``).
- **Cosmetic** keys never split anything: loggers, progress bars, prediction-image and LR-monitor
  callbacks, checkpoint file names, paths, ``hydra.*``, DataLoader workers / pinning / caching,
  ``resume``, ``tags``, ``ckpt_path`` and run names. ``seed`` (and ``*.seed``) is what varies
  *within* a row.
- Values are compared after parsing, so ``1e-3`` == ``0.001`` and ``4`` == ``4.0``.
- A key that differs between runs **made with the same command-line overrides** was not swept: a
  config YAML was edited between runs (e.g. between a sweep and its resume). It does not split the
  table or row; the comparison lists it as a warning, because those numbers are not comparable.
  A key that differs and follows the overrides (``loss.gamma=1,2``, ``experiment=A`` vs ``B``) splits.
"""
from __future__ import annotations

import functools
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from common.flatten import flatten
from reporting.collect import Run, Skipped, parse_scalar

_COSMETIC_PREFIXES = (
    "hydra", "logger", "paths", "extras", "wandb",
    "callbacks.progress_bar", "callbacks.rich_progress_bar", "callbacks.model_summary",
    "callbacks.test_predictions", "callbacks.val_predictions", "callbacks.lr_monitor",
    "callbacks.model_checkpoint.dirpath", "callbacks.model_checkpoint.filename",
    "callbacks.model_checkpoint.save_last", "callbacks.model_checkpoint.auto_insert_metric_name",
)
_COSMETIC_KEYS = {
    "resume", "tags", "ckpt_path", "name", "experiment_name", "task_name", "run_name", "print_config",
    "trainer.default_root_dir", "trainer.log_every_n_steps", "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
}
_COSMETIC_LEAVES = {"num_workers", "pin_memory", "persistent_workers", "prefetch_factor", "cache", "cache_max_gb",
                    "save_dir", "dirpath"}
_COSMETIC_STARTS = tuple(p + "." for p in _COSMETIC_PREFIXES)
ABSENT = "<absent>"


class TableKey(NamedTuple):
    datamodule: str
    model: str
    settings: str  # "key=value key=value" of the splitting settings; "" when none differ

    @property
    def title(self) -> str:
        return " · ".join(p for p in self if p)


class RowKey(NamedTuple):
    loss: str
    loss_params: str  # "gamma=1 alpha=0.25"; "" when no loss setting differs

    @property
    def label(self) -> str:
        return f"{self.loss} {self.loss_params}".strip()


@dataclass
class Grouping:
    """``tables[table][row]`` → the row's runs; ``roles`` says how each differing key was treated."""

    tables: dict[TableKey, dict[RowKey, list[Run]]]
    warnings: list[str] = field(default_factory=list)
    duplicates: list[Skipped] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    varying: dict[str, Counter] = field(default_factory=dict)


def parse_value(text: str) -> Any:
    """An override's value as Hydra would type it: ``1e-3`` → 0.001, ``null`` → None, ``true`` → True."""
    value = parse_scalar(text)
    return value.strip("'\"") if isinstance(value, str) else value


def normalize(value: Any) -> Any:
    """A hashable value that compares equal when the settings are the same (``4`` == ``4.0``)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return _normalize_str(value)
    if isinstance(value, (int, float)):
        f = float(value)
        return int(f) if math.isfinite(f) and f == int(f) else f
    if isinstance(value, (list, tuple)):
        return tuple(normalize(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), normalize(v)) for k, v in value.items()))
    return str(value)


@functools.lru_cache(maxsize=65_536)
def _normalize_str(value: str) -> Any:
    parsed = parse_value(value)
    return value if isinstance(parsed, str) else normalize(parsed)


def show_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ",".join(show_value(v) for v in value) + "]"
    return str(value)


@functools.lru_cache(maxsize=65_536)
def is_cosmetic(key: str) -> bool:
    """Keys that cannot change a run's numbers (see the module docstring)."""
    if key in _COSMETIC_KEYS or key.rsplit(".", 1)[-1] in _COSMETIC_LEAVES:
        return True
    return key in _COSMETIC_PREFIXES or key.startswith(_COSMETIC_STARTS)


def is_per_run(key: str) -> bool:
    return key == "seed" or key.endswith(".seed")


def _is_loss_key(key: str) -> bool:
    return key == "loss" or key.startswith("loss.")


@dataclass(frozen=True)
class _Settings:
    flat: dict[str, Any]            # normalized, non-cosmetic, non-per-run settings
    table_sig: frozenset            # overrides that may explain a difference of a non-loss key
    row_sig: frozenset              # the same plus the loss's own overrides
    all_flat: dict[str, Any]        # every key (for the config diff), run-dir paths left out


def _settings(run: Run) -> _Settings:
    dirs, under = _run_dirs(run)
    all_flat = {k: normalize(v) for k, v in flatten(run.config).items()
                if not (isinstance(v, str) and (v in dirs or v.startswith(under)))} if run.config else {}
    flat = {k: v for k, v in all_flat.items() if not is_cosmetic(k) and not is_per_run(k)}
    overrides = []
    for o in run.overrides:
        if "=" not in o:
            continue
        key, value = o.split("=", 1)
        key = key.lstrip("+~")
        if is_cosmetic(key) or is_per_run(key):
            continue
        parsed = normalize(parse_value(value)) if not o.startswith("~") else None
        overrides.append((key, parsed))
        if key in all_flat or key in ("loss", "datamodule", "model"):
            continue
        if not any(k.startswith(key + ".") for k in all_flat):  # a group choice's effect is in the config
            flat[key] = parsed
    row_sig = frozenset(overrides)
    table_sig = frozenset((k, v) for k, v in overrides if not _is_loss_key(k))
    return _Settings(flat, table_sig, row_sig, all_flat)


def comparable_settings(run: Run) -> dict[str, Any]:
    """The run's settings that can change its numbers, normalized: config keys that are not cosmetic, not
    per-run and not run paths, plus overrides the config does not show."""
    return _settings(run).flat


def group_runs(runs: list[Run]) -> Grouping:
    """Assign every run to a table and a row (see the module docstring)."""
    settings = {r.path: _settings(r) for r in runs}
    roles: dict[str, str] = {}
    warnings: list[str] = []

    by_dm_model: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for r in runs:
        by_dm_model[(r.datamodule, r.model)].append(r)
    table_of: dict[Path, TableKey] = {}
    for (dm, model), group in sorted(by_dm_model.items()):
        keys = sorted({k for r in group for k in settings[r.path].flat if not _is_loss_key(k)})
        split = _split_keys(keys, group, settings, lambda s: s.table_sig, "table", f"{dm} · {model}",
                            roles, warnings)
        for r in group:
            flat = settings[r.path].flat
            label = " ".join(f"{k}={show_value(flat.get(k, ABSENT))}" for k in split)
            table_of[r.path] = TableKey(dm, model, label)

    tables: dict[TableKey, dict[RowKey, list[Run]]] = defaultdict(lambda: defaultdict(list))
    by_table_loss: dict[tuple[TableKey, str], list[Run]] = defaultdict(list)
    for r in runs:
        by_table_loss[(table_of[r.path], r.loss)].append(r)
    for (table, loss), group in sorted(by_table_loss.items()):
        keys = sorted({k for r in group for k in settings[r.path].flat if _is_loss_key(k) and k != "loss._target_"})
        split = _split_keys(keys, group, settings, lambda s: s.row_sig, "row", f"{table.title} · {loss}",
                            roles, warnings)
        for r in group:
            flat = settings[r.path].flat
            params = " ".join(f"{k.removeprefix('loss.')}={show_value(flat.get(k, ABSENT))}" for k in split)
            tables[table][RowKey(loss, params)].append(r)

    duplicates = _drop_duplicate_seeds(tables)
    varying = _varying(runs, settings)
    for k in varying:
        roles.setdefault(k, "cosmetic" if is_cosmetic(k) else "per-run" if is_per_run(k) else "loss name"
                         if k == "loss._target_" else "same within tables")
    return Grouping({t: dict(rows) for t, rows in sorted(tables.items())}, warnings, duplicates, roles, varying)


def _split_keys(keys: list[str], group: list[Run], settings: dict, signature: Callable, role: str, where: str,
                roles: dict[str, str], warnings: list[str]) -> list[str]:
    """The keys that split ``group`` (recorded under ``role``); keys edited mid-sweep become warnings."""
    split, edited = _classify(keys, group, settings, signature)
    roles.update({k: role for k in split})
    roles.update({k: "edited" for k in edited})
    warnings.extend(_edited_warning(where, k, counts) for k, counts in edited.items())
    return split


def _classify(keys, group, settings, signature) -> tuple[list[str], dict[str, Counter]]:
    """Differing keys → (keys that follow the overrides: split, {edited key: value counts})."""
    split, edited = [], {}
    for k in keys:
        values = [settings[r.path].flat.get(k, ABSENT) for r in group]
        if len(set(values)) < 2:
            continue
        by_sig: dict[frozenset, set] = defaultdict(set)
        for r, v in zip(group, values):
            by_sig[signature(settings[r.path])].add(v)
        if any(len(vs) > 1 for vs in by_sig.values()):
            edited[k] = Counter(show_value(v) for v in values)
        else:
            split.append(k)
    return split, edited


def _edited_warning(where: str, key: str, counts: Counter) -> str:
    values = ", ".join(f"{v} ×{n}" for v, n in sorted(counts.items()))
    return (f"WARNING {where}: `{key}` differs between runs made with the same overrides ({values}) — a config "
            "edited between runs? They are compared together, but their numbers are not comparable.")


def _drop_duplicate_seeds(tables) -> list[Skipped]:
    """A seed completed twice in one row (overlapping sweep dirs): keep the first run dir, skip the rest."""
    skipped = []
    for table, rows in tables.items():
        for row, group in rows.items():
            kept: dict[object, Run] = {}
            keep = []
            for r in sorted(group, key=lambda r: str(r.path)):
                if r.completed and r.seed is not None and r.seed in kept:
                    skipped.append(Skipped(r.path, f"duplicate: seed {r.seed} of `{row.label}` in {table.title} "
                                                   f"also completed in {kept[r.seed].path}; that one is used"))
                    continue
                if r.completed and r.seed is not None:
                    kept[r.seed] = r
                keep.append(r)
            group[:] = keep
    return skipped


def _varying(runs: list[Run], settings: dict[Path, _Settings]) -> dict[str, Counter]:
    flats = [settings[r.path].all_flat for r in runs if r.config]
    keys = sorted({k for f in flats for k in f})
    out = {}
    for k in keys:
        values = [f.get(k, ABSENT) for f in flats]
        if len(set(values)) > 1:
            out[k] = Counter(show_value(v) for v in values)
    return out


def shared_overrides(runs: list[Run]) -> list[str]:
    """Overrides that every run was started with."""
    shared = set(runs[0].overrides) if runs else set()
    for r in runs[1:]:
        shared &= set(r.overrides)
    return sorted(shared)


def _run_dirs(run: Run) -> tuple[set[str], tuple[str, ...]]:
    """The run's dir where it is now and where it was written (moved sweeps), and the same with a
    trailing ``/``: config values equal to or under them are run paths, which differ by design."""
    recorded = (run.config.get("paths") or {}).get("output_dir")
    dirs = {str(run.path)} | ({str(recorded)} if recorded else set())
    return dirs, tuple(d + "/" for d in dirs)
