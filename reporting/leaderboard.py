"""The leaderboard: one row per datamodule × model × loss (× swept variant), statistics over seeds.

Headline metrics are read from the ``test/`` split (``val/`` when no run has test metrics):
segmentation ``miou``, ``dice_fg``, ``iou_rare`` and every ``small_recall/<bucket>``;
detection ``map`` and ``map_small``. ``iou_rare`` is the IoU of the rarest foreground class of the
datamodule's training split when the runs record ``class_pixel_counts``, otherwise of the foreground
class with the lowest mean IoU over all runs of that datamodule (the header says which).
All headline metrics are "higher is better"; ``rank`` orders losses by ``rank_by`` within each
datamodule × model (× variant) group, 1 = best, ties share the smaller rank.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reporting.collect import Run
from reporting.configdiff import inconsistent_keys
from reporting.stats import TESTS, paired_test, summarize

HEADLINE = {
    "segmentation": ("miou", "dice_fg", "iou_rare", "small_recall/*"),
    "detection": ("map", "map_small"),
}
KEY_COLUMNS = ("datamodule", "model", "variant", "loss")
# Overrides that identify a row (or are bookkeeping) rather than a swept variant.
_NOT_VARIANT = {"seed", "loss", "datamodule", "model", "resume", "task", "experiment"}


@dataclass
class Leaderboard:
    """The leaderboard table plus what a reader needs to interpret it."""

    table: pd.DataFrame
    metrics: list[str]
    split: str
    baseline: str
    test: str
    rank_by: str
    confidence: float
    notes: list[str] = field(default_factory=list)


def column(metric: str) -> str:
    """CSV column prefix of a metric name (``small_recall/small`` → ``small_recall_small``)."""
    return metric.replace("/", "_")


def build_leaderboard(runs: list[Run], baseline: str = "ce", test: str = "wilcoxon",
                      metrics: list[str] | None = None, rank_by: str | None = None,
                      confidence: float = 0.95) -> Leaderboard:
    """Aggregate ``runs`` (one task) into a :class:`Leaderboard`.

    ``metrics`` are names without the split prefix (``miou``, ``iou/3``); default: the task's
    headline metrics present in the runs. ``rank_by`` defaults to the first metric.
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    if not runs:
        raise ValueError("no runs to compare")
    completed = [r for r in runs if r.completed]
    if not completed:
        errors = "; ".join(f"{r.path.name} ({r.loss}, seed {r.seed}): {r.error}" for r in runs[:5])
        raise ValueError(f"all {len(runs)} runs failed, nothing to compare; first errors: {errors}")
    split = "test" if any(k.startswith("test/") for r in completed for k in r.metrics) else "val"
    values = _MetricReader(runs, split)
    names = _resolve_metrics(metrics, runs[0].task, completed, split, values)
    notes = list(values.notes) if "iou_rare" in names else []
    rank_by = rank_by or names[0]
    if rank_by not in names:
        raise ValueError(f"rank_by {rank_by!r} is not among the leaderboard metrics {names}")
    variants = _variants(runs)

    groups: dict[tuple[str, str, str, str], list[Run]] = defaultdict(list)
    for r in runs:
        groups[(r.datamodule, r.model, variants[r.path], r.loss)].append(r)
    rows = []
    for key, group in sorted(groups.items()):
        _check_unique_seeds(key, group)
        rows.append(_row(key, group, groups, names, values, baseline, test, confidence))
    notes += _inconsistency_notes(groups)
    table = pd.DataFrame(rows)
    table.insert(4, "rank", _ranks(table, column(rank_by) + "_mean"))
    if not any(variants.values()):
        table = table.drop(columns="variant")
    if baseline not in set(table["loss"]):
        notes.append(f"baseline loss {baseline!r} is not among the runs: no paired tests "
                     f"(choose one with --baseline; losses: {', '.join(sorted(set(table['loss'])))})")
    return Leaderboard(table, names, split, baseline, test, rank_by, confidence, notes)


class _MetricReader:
    """Per-run metric values, including the derived ``iou_rare``."""

    def __init__(self, runs: list[Run], split: str):
        self.split = split
        self.rare: dict[str, int] = {}
        self.notes: list[str] = []
        for dm in sorted({r.datamodule for r in runs}):
            dm_runs = [r for r in runs if r.datamodule == dm]
            found = _rare_class(dm_runs, split)
            if found is not None:
                self.rare[dm], how = found
                self.notes.append(f"{dm}: iou_rare = IoU of class {self.rare[dm]}{_class_name(dm_runs, self.rare[dm])}, {how}")

    def __call__(self, run: Run, metric: str) -> float:
        if metric == "iou_rare":
            k = self.rare.get(run.datamodule)
            return math.nan if k is None else run.metric(f"{self.split}/iou/{k}")
        return run.metric(f"{self.split}/{metric}")


def _rare_class(runs: list[Run], split: str) -> tuple[int, str] | None:
    for r in runs:
        counts = r.record.get("class_pixel_counts")
        if isinstance(counts, list) and len(counts) >= 2:
            fg = np.asarray(counts[1:], dtype=np.float64)
            return int(np.argmin(fg)) + 1, "the rarest foreground class in the training split"
    prefix = f"{split}/iou/"
    per_class: dict[int, list[float]] = defaultdict(list)
    for r in runs:
        if r.completed:
            for k, v in r.metrics.items():
                if k.startswith(prefix) and k[len(prefix):].isdigit() and v is not None:
                    per_class[int(k[len(prefix):])].append(float(v))
    fg = {k: float(np.nanmean(v)) for k, v in per_class.items() if k >= 1 and v}
    if not fg:
        return None
    return min(fg, key=lambda k: (fg[k], k)), "the foreground class with the lowest mean IoU (class pixel counts not recorded)"


def _class_name(runs: list[Run], k: int) -> str:
    for r in runs:
        names = (r.config.get("datamodule") or {}).get("class_names")
        if isinstance(names, list) and k < len(names):
            return f" ({names[k]})"
    return ""


def _resolve_metrics(metrics: list[str] | None, task: str, completed: list[Run], split: str,
                     values: _MetricReader) -> list[str]:
    present = [k[len(split) + 1:] for r in completed for k in r.metrics if k.startswith(split + "/")]
    if metrics:
        unknown = [m for m in metrics if m != "iou_rare" and m not in present]
        if unknown:
            raise ValueError(f"metrics {unknown} not found in any run's {split}/ metrics; "
                             f"available: {sorted(set(present))}")
        return list(metrics)
    names: list[str] = []
    for pattern in HEADLINE.get(task, ()):
        if pattern.endswith("/*"):
            stem = pattern[:-1]
            names += sorted((m for m in dict.fromkeys(present) if m.startswith(stem)), key=_bucket_order)
        elif pattern == "iou_rare":
            if values.rare:
                names.append(pattern)
        elif pattern in present:
            names.append(pattern)
    if not names:
        raise ValueError(f"none of the headline metrics {HEADLINE.get(task)} of task {task!r} are in the "
                         f"runs' {split}/ metrics; pass --metrics from: {sorted(set(present))}")
    return names


def _bucket_order(metric: str) -> tuple[float, int, str]:
    """Size buckets smallest first: ``lt16`` < ``16-64`` < ``ge64``; unknown names last, by name."""
    bucket = metric.rsplit("/", 1)[-1]
    match = re.fullmatch(r"(lt|ge)?(\d+(?:\.\d+)?)(?:-\d+(?:\.\d+)?)?", bucket)
    if match is None:
        return math.inf, 0, bucket
    return float(match.group(2)), {"lt": 0, None: 1, "ge": 2}[match.group(1)], bucket


def _variants(runs: list[Run]) -> dict[Path, str]:
    """For each run, the overrides that vary across runs and are neither identity nor seed."""
    parsed = {r.path: dict(o.split("=", 1) for o in r.overrides if "=" in o) for r in runs}
    keys = {k.lstrip("+~") for p in parsed.values() for k in p}
    varying = sorted(
        k for k in keys
        if k not in _NOT_VARIANT and not k.startswith("hydra")
        and len({p.get(k, p.get("+" + k)) for p in parsed.values()}) > 1)
    return {path: " ".join(f"{k}={p[k]}" for k in varying if k in p) for path, p in parsed.items()}


def _inconsistency_notes(groups: dict[tuple[str, str, str, str], list[Run]]) -> list[str]:
    by_setting: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for (datamodule, model, variant, _loss), group in groups.items():
        by_setting[(datamodule, model, variant)] += [r for r in group if r.completed]
    notes = []
    for setting, group in sorted(by_setting.items()):
        keys = inconsistent_keys(group)
        if keys:
            shown = ", ".join(f"`{k}`" for k in keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
            notes.append(f"WARNING {' · '.join(s for s in setting if s)}: the runs differ in resolved config beyond "
                         f"loss and seed ({shown}), e.g. a config edited between runs — these numbers are not "
                         "comparable; see the config diff in report.html")
    return notes


def _check_unique_seeds(key: tuple[str, ...], group: list[Run]) -> None:
    by_seed: dict[object, list[Run]] = defaultdict(list)
    for r in group:
        if r.completed and r.seed is not None:
            by_seed[r.seed].append(r)
    for seed, rs in by_seed.items():
        if len(rs) > 1:
            raise ValueError(
                f"seed {seed} of {dict(zip(KEY_COLUMNS, key))} completed more than once: "
                f"{', '.join(repr(str(r.path)) for r in rs)}; pass each sweep once, or sweep dirs that do not overlap")


def _row(key, group, groups, names, values, baseline, test, confidence) -> dict:
    datamodule, model, variant, loss = key
    done = [r for r in group if r.completed]
    row: dict[str, object] = dict(zip(KEY_COLUMNS, key))
    row["n_runs"] = len(done)
    row["n_failed"] = len(group) - len(done)
    row["seeds"] = " ".join(str(s) for s in sorted({r.seed for r in done if r.seed is not None}))
    base = [r for r in groups.get((datamodule, model, variant, baseline), []) if r.completed]
    base_by_seed = {r.seed: r for r in base if r.seed is not None}
    pairs = [(r, base_by_seed[r.seed]) for r in done if r.seed in base_by_seed]
    row["baseline"] = baseline
    row["test"] = test
    row["n_pairs"] = len(pairs) if loss != baseline else 0
    for m in names:
        s = summarize([values(r, m) for r in done], confidence=confidence)
        c = column(m)
        row[f"{c}_mean"], row[f"{c}_std"], row[f"{c}_ci_low"], row[f"{c}_ci_high"] = s.mean, s.std, s.ci_low, s.ci_high
        row[f"{c}_n"] = s.n
        if loss == baseline or not pairs:
            row[f"{c}_delta"] = row[f"{c}_p"] = row[f"{c}_effect"] = math.nan
            continue
        p = paired_test([values(a, m) for a, _ in pairs], [values(b, m) for _, b in pairs], test)
        row[f"{c}_delta"], row[f"{c}_p"], row[f"{c}_effect"] = p.mean_diff, p.p_value, p.effect_size
    return row


def _ranks(table: pd.DataFrame, by: str) -> pd.Series:
    group_cols = [c for c in ("datamodule", "model", "variant") if c in table]
    ranks = table.groupby(group_cols, dropna=False)[by].rank(ascending=False, method="min")
    return ranks.astype("Int64")
