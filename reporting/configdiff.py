"""What differs between the runs of a sweep: resolved-config keys that vary, overrides all share."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from common.flatten import flatten
from reporting.collect import Run


@dataclass(frozen=True)
class ConfigDiff:
    """``varying``: flattened key → {value: number of runs}; ``shared_overrides``: in every run."""

    varying: dict[str, Counter]
    shared_overrides: list[str]


def config_diff(runs: list[Run]) -> ConfigDiff:
    """Keys of the resolved configs whose values differ across runs (run-dir paths left out)."""
    flat = [{k: v for k, v in flatten(r.config).items() if not _mentions_run_dir(v, r)} for r in runs]
    keys = sorted({k for f in flat for k in f})
    varying = {}
    for k in keys:
        counts = Counter(str(f[k]) if k in f else "<absent>" for f in flat)
        if len(counts) > 1:
            varying[k] = counts
    shared = set(runs[0].overrides) if runs else set()
    for r in runs[1:]:
        shared &= set(r.overrides)
    return ConfigDiff(varying, sorted(shared))


# Resolved-config keys that legitimately differ between the runs of one leaderboard group.
_PER_RUN_KEYS = {"seed", "resume", "tags", "ckpt_path"}
_PER_RUN_PREFIXES = ("loss.", "logger.", "hydra.")


def inconsistent_keys(runs: list[Run]) -> list[str]:
    """Keys whose resolved values differ across ``runs`` beyond the loss, the seed and run paths.

    Within one datamodule × model × variant group these should not exist: when they do, the runs
    were made from different configs (e.g. a YAML edited between a sweep and its resume) and
    their numbers are not comparable. Runs without a ``config.yaml`` are left out.
    """
    flat = [{k: str(v) for k, v in flatten(r.config).items()
             if not _mentions_run_dir(v, r) and not _per_run(k)} for r in runs if r.config]
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if len({f.get(k, "<absent>") for f in flat}) > 1]


def _per_run(key: str) -> bool:
    return key in _PER_RUN_KEYS or key.endswith(".seed") or key.startswith(_PER_RUN_PREFIXES) or key == "loss"


def _mentions_run_dir(value: Any, run: Run) -> bool:
    """True for a path inside the run's dir: where it is now, or where it was written (moved sweeps)."""
    if not isinstance(value, str):
        return False
    recorded = (run.config.get("paths") or {}).get("output_dir")
    dirs = [str(run.path)] + ([str(recorded)] if recorded else [])
    return any(value == d or value.startswith(d + "/") for d in dirs)
