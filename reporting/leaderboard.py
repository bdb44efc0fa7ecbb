"""The leaderboard: one row per table × row (see ``reporting.grouping``), statistics over seeds.

Headline metrics are read from the ``test/`` split (``val/`` when no run has test metrics):
segmentation ``miou``, ``dice_fg``, ``iou_rare``, every ``small_recall/<bucket>``, and ``nsd``,
``hd95`` for 3-D runs; detection ``map`` and ``map_small``. ``iou_rare`` is the IoU of one class per
datamodule, the same for every run: the foreground class with the smallest pixel share summed over
all runs' recorded training-split ``class_pixel_counts`` (a note says when single runs disagree),
else the foreground class with the lowest mean IoU over all completed runs.

**Rank** (1 = best; lower-is-better metrics such as ``hd95`` ascending) orders the rows of a table
by the mean of ``rank_by`` over the table's *common seeds*: the seeds every row completed. A row that
failed a seed is marked and cannot outrank another by leaving out its hardest seed. With
``failed_as_worst`` a failed run counts instead as the table's worst completed value of each metric
(for the means, tests and rank alike) and the common seeds are those every row ran.

**Unit** (``<m>_unit``): ``case`` when every completed run of the table has a per-case file with the
metric's column (``reporting.cases``): the row value is the mean over cases per seed, then over seeds,
with the crossed seeds × cases interval, and the test against the baseline is the Wilcoxon
two-level t test of the mean difference (``<m>_p``, for the ``*``) next to the Wilcoxon signed-rank
test of the per-case differences (``<m>_p_wilcoxon``; ``reporting.hierarchical``); else ``seed``: the
per-run statistics of ``reporting.stats``. ``--failed-as-worst`` tables with a failed run use ``seed``.
Every metric gets its rank's bootstrap 5th–95th percentile (``reporting.stability``).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
import numpy as np
import pandas as pd

from metrics.names import bucket_order, higher_is_better, is_bounded, is_nonnegative
from reporting.budget import converged, curve
from reporting.cases import CaseFiles, TableCases, check_split_hashes, read_table_cases
from reporting.collect import Run
from reporting.grouping import Grouping, RowKey, TableKey, group_runs
from reporting.hierarchical import paired_cases, summarize_cases, two_level_mean
from reporting.metric_names import DEFAULT_BASELINE, HEADLINE, column
from reporting.stability import RankStability, rank_stability
from reporting.stats import CI_METHODS, TESTS, holm, paired_test, summarize

RESAMPLES = 2_000

KEY_COLUMNS = ("datamodule", "model", "settings", "loss", "loss_params")


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
    ci_method: str
    failed_as_worst: bool
    grouping: Grouping
    values: "_MetricReader" = field(repr=False)
    notes: list[str] = field(default_factory=list)
    cases: dict[TableKey, "CaseData"] = field(default_factory=dict, repr=False)
    stability: dict[TableKey, RankStability] = field(default_factory=dict, repr=False)
    resamples: int = RESAMPLES
    case_warnings: list[str] = field(default_factory=list)
    _parts: list | None = field(default=None, repr=False)

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    def curve_key(self, run: Run) -> str:
        """History key of the validation curve that stands for ``rank_by``."""
        return self.values.history_key(run, self.rank_by)

    def parts(self) -> list[tuple[TableKey, pd.DataFrame]]:
        """One part per table, in the grouping's order, rows sorted by rank (unranked last); computed once
        (one sort of the whole table, not one mask and sort per table: 300 tables took seconds)."""
        if self._parts is None:
            t = self.table
            order = {tuple(k): i for i, k in enumerate(self.grouping.tables)}
            table_no = np.fromiter((order[k] for k in zip(t["datamodule"], t["model"], t["settings"])),
                                   dtype=np.int64, count=len(t))
            ranked = t.assign(_table=table_no).sort_values(["_table", "rank", "loss", "loss_params"],
                                                           na_position="last", kind="stable")
            bounds = np.searchsorted(ranked["_table"].to_numpy(), np.arange(len(order) + 1))
            ranked = ranked.drop(columns="_table")
            self._parts = [(key, ranked.iloc[bounds[i]:bounds[i + 1]]) for i, key in enumerate(self.grouping.tables)]
        return self._parts

    def runs_of(self, key: TableKey, row: pd.Series) -> list[Run]:
        return self.grouping.tables[key][RowKey(row["loss"], row["loss_params"])]

    def baseline_label(self, part: pd.DataFrame) -> str | None:
        """The label of the part's baseline row (None when the table has none)."""
        labels = set(row_labels(part))
        name = str(part["baseline"].iloc[0]) if len(part) else self.baseline
        return name if name in labels else None


def row_labels(part: pd.DataFrame) -> list[str]:
    """``loss loss_params`` of each row (``focal gamma=1``)."""
    return [f"{l} {p}".strip() for l, p in zip(part["loss"], part["loss_params"])]


@dataclass
class CaseData:
    """Per-case matrices of one table: ``rows[metric][row] = (seeds, X)`` with ``X`` ``(seeds, cases)``."""

    cases: list[str]
    rows: dict[str, dict[RowKey, tuple[list, np.ndarray]]] = field(default_factory=dict)


def build_leaderboard(runs: list[Run], baseline: str | None = None, test: str = "t",
                      metrics: list[str] | None = None, rank_by: str | None = None,
                      confidence: float = 0.95, ci_method: str = "t", failed_as_worst: bool = False,
                      grouping: Grouping | None = None, resamples: int = RESAMPLES, seed: int = 0) -> Leaderboard:
    """Aggregate ``runs`` (one task) into a :class:`Leaderboard`.

    ``metrics`` are names without the split prefix (``miou``, ``iou/3``); default: the task's
    headline metrics present in the runs. ``rank_by`` defaults to the first metric; ``baseline``
    to ``ce`` (segmentation) or ``giou`` (detection). ``resamples`` bootstrap resamples (seeded by
    ``seed`` and the table's position) give the rank percentiles.
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    if ci_method not in CI_METHODS:
        raise ValueError(f"ci method must be one of {CI_METHODS}, got {ci_method!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not runs:
        raise ValueError("no runs to compare")
    completed = [r for r in runs if r.completed]
    if not completed:
        errors = "; ".join(f"{r.path.name} ({r.loss}, seed {r.seed}): {r.error}" for r in runs[:5])
        raise ValueError(f"all {len(runs)} runs failed, nothing to compare; first errors: {errors}")
    task = runs[0].task
    baseline = baseline or DEFAULT_BASELINE.get(task, "ce")
    split = "test" if any(k.startswith("test/") for r in completed for k in r.metrics) else "val"
    values = _MetricReader(runs, split)
    names = _resolve_metrics(metrics, task, completed, split, values)
    rank_by = rank_by or names[0]
    if rank_by not in names:
        raise ValueError(f"rank_by {rank_by!r} is not among the leaderboard metrics {names}")
    grouping = grouping or group_runs(runs)
    notes = list(values.notes) if "iou_rare" in names else []
    notes += [f"`{m}` is not in metrics.json: each run's value is the mean over its {split} cases of the case "
              f"files' `{m}` column (cases where it is undefined left out)"
              for m in names if m != "iou_rare" and not any(f"{split}/{m}" in r.metrics for r in completed)]

    if resamples < 100:
        raise ValueError(f"resamples must be >= 100 for 5-95 % rank percentiles, got {resamples!r}")
    rows: list[dict] = []
    cases: dict[TableKey, CaseData] = {}
    stability: dict[TableKey, RankStability] = {}
    case_warnings: list[str] = []
    for i, (table_key, table_rows) in enumerate(grouping.tables.items()):
        check_split_hashes([r for rs in table_rows.values() for r in rs], table_key.title)
        tc = _table_cases(table_key, table_rows, values.case_files, failed_as_worst)
        if tc is not None:
            case_warnings += tc.warnings
        part, data, stab = _table(table_key, table_rows, names, values, baseline, test, confidence, ci_method,
                                  rank_by, failed_as_worst, notes, tc, resamples, (seed, i))
        rows += part
        if data is not None:
            cases[table_key] = data
        if stab is not None:
            stability[table_key] = stab
    table = pd.DataFrame(rows)
    if baseline not in set(table["loss"]) and baseline not in set(row_labels(table)):
        notes.append(f"baseline loss {baseline!r} is not among the runs: no paired tests "
                     f"(choose one with --baseline; losses: {', '.join(sorted(set(table['loss'])))})")
    return Leaderboard(table, names, split, baseline, test, rank_by, confidence, ci_method, failed_as_worst,
                       grouping, values, notes, cases, stability, resamples, case_warnings)


def _table_cases(key: TableKey, table_rows: dict[RowKey, list[Run]], files: CaseFiles,
                 failed_as_worst: bool) -> TableCases | None:
    runs = [r for rs in table_rows.values() for r in rs]
    done = [r for r in runs if r.completed]
    if failed_as_worst and len(done) < len(runs):
        return None
    return read_table_cases(done, files, key.title)


class _MetricReader:
    """Per-run metric values, including the derived ``iou_rare`` (one class per datamodule) and the
    case-only metrics (a case-file column ``metrics.json`` does not record: the mean over the run's cases)."""

    def __init__(self, runs: list[Run], split: str):
        self.split = split
        self.rare: dict[str, int] = {}
        self.notes: list[str] = []
        self.case_files = CaseFiles(split)
        by_dm: dict[str, list[Run]] = defaultdict(list)
        for r in runs:
            by_dm[r.datamodule].append(r)
        for dm, dm_runs in sorted(by_dm.items()):
            found = _rare_class(dm_runs, split)
            if found is not None:
                self.rare[dm], how = found
                k = self.rare[dm]
                self.notes.append(f"{dm}: iou_rare = IoU of class {k}{_class_name(dm_runs, k)}, {how}")

    def __call__(self, run: Run, metric: str) -> float:
        key = self.key(run, metric)
        if key in run.metrics:
            return run.metric(key)
        return self.case_files.means(run).get(key.split("/", 1)[1], math.nan) if run.completed else math.nan

    def key(self, run: Run, metric: str) -> str:
        if metric == "iou_rare":
            k = self.rare.get(run.datamodule)
            return f"{self.split}/iou/{k}" if k is not None else f"{self.split}/iou_rare"
        return f"{self.split}/{metric}"

    def history_key(self, run: Run, metric: str) -> str:
        """The validation curve that stands for ``metric``: ``val/<metric>``, else the run's optimised metric."""
        key = "val/" + self.key(run, metric).split("/", 1)[1]
        if key in run.history or not run.history:
            return key
        return str(run.record.get("optimized_metric") or key)


def _rare_class(runs: list[Run], split: str) -> tuple[int, str] | None:
    shares = []
    for r in runs:
        counts = r.record.get("class_pixel_counts")
        if isinstance(counts, list) and len(counts) >= 2 and all(isinstance(c, (int, float)) for c in counts):
            c = np.asarray(counts, dtype=np.float64)
            if c.sum() > 0:
                shares.append(c / c.sum())
    if shares:
        length = min(len(s) for s in shares)
        stack = np.vstack([s[:length] for s in shares])
        mean = stack.mean(axis=0)
        k = int(np.argmin(mean[1:])) + 1
        per_run = np.argmin(stack[:, 1:], axis=1) + 1
        how = (f"the foreground class with the smallest training-split pixel share ({mean[k]:.2%}, mean over runs; "
               f"the most frequent foreground class has {mean[1:].max() / max(mean[k], 1e-12):.0f}× its pixels)")
        if (per_run != k).any():
            others = sorted({int(x) for x in per_run if x != k})
            how += (f"; in {int((per_run != k).sum())} of {len(per_run)} runs class(es) {others} were rarer — "
                    "one class is used for all runs so that they measure the same thing")
        return k, how
    prefix = f"{split}/iou/"
    per_class: dict[int, list[float]] = defaultdict(list)
    for r in runs:
        if r.completed:
            for key, v in r.metrics.items():
                if key.startswith(prefix) and key[len(prefix):].isdigit() and v is not None:
                    per_class[int(key[len(prefix):])].append(float(v))
    fg = {k: float(np.nanmean(v)) for k, v in per_class.items() if k >= 1 and v}
    if not fg:
        return None
    return (min(fg, key=lambda k: (fg[k], k)),
            "the foreground class with the lowest mean IoU over all completed runs (class pixel counts not recorded)")


def _class_name(runs: list[Run], k: int) -> str:
    for r in runs:
        names = (r.config.get("datamodule") or {}).get("class_names")
        if isinstance(names, list) and k < len(names):
            return f" ({names[k]})"
    return ""


def _resolve_metrics(metrics: list[str] | None, task: str, completed: list[Run], split: str,
                     values: _MetricReader) -> list[str]:
    present = list(dict.fromkeys(k[len(split) + 1:] for r in completed for k in r.metrics if k.startswith(split + "/")))
    # case-only metrics: columns every completed run's case file has, recorded nowhere in metrics.json
    in_cases = set.intersection(*(set(values.case_files.means(r)) for r in completed))
    present += sorted(in_cases - set(present))
    if metrics:
        unknown = [m for m in metrics if m != "iou_rare" and m not in present]
        if unknown:
            raise ValueError(f"metrics {unknown} not found in any run's {split}/ metrics or in every run's "
                             f"{split} case file; available: {sorted(present)}")
        return list(metrics)
    names: list[str] = []
    for pattern in HEADLINE.get(task, ()):
        if pattern.endswith("/*"):
            stem = pattern[:-1]
            names += sorted((m for m in present if m.startswith(stem)), key=bucket_order)
        elif pattern == "iou_rare":
            if values.rare:
                names.append(pattern)
        elif pattern in present:
            names.append(pattern)
    if not names:
        raise ValueError(f"none of the headline metrics {HEADLINE.get(task)} of task {task!r} are in the "
                         f"runs' {split}/ metrics; pass --metrics from: {sorted(present)}")
    return names


def _table(table_key: TableKey, table_rows: dict[RowKey, list[Run]], names, values, baseline, test, confidence,
           ci_method, rank_by, failed_as_worst, notes, tc: TableCases | None, resamples: int,
           seed: tuple) -> tuple[list[dict], CaseData | None, RankStability | None]:
    """The rows of one table: summaries, paired tests with Holm, ranks on the common seeds, rank stability."""
    def seeds(runs, done_only=True):
        return {r.seed for r in runs if r.seed is not None and (r.completed or not done_only)}

    # A row without any completed run has nothing to rank; it must not empty the common seeds of the others.
    rows_seeds = [seeds(rs, done_only=not failed_as_worst) for rs in table_rows.values() if any(r.completed for r in rs)]
    common = set.intersection(*rows_seeds) if rows_seeds else set()
    worst = {}
    if failed_as_worst:
        for m in names:
            vals = [values(r, m) for rs in table_rows.values() for r in rs if r.completed]
            vals = [v for v in vals if math.isfinite(v)]
            worst[m] = (min(vals) if higher_is_better(m) else max(vals)) if vals else math.nan

    def value(run: Run, m: str) -> float:
        return values(run, m) if run.completed else worst.get(m, math.nan)

    def used(runs: list[Run]) -> list[Run]:
        return [r for r in runs if r.completed or failed_as_worst]

    base_key = _baseline_row(table_rows, baseline)
    if base_key is None and len(table_rows) > 1:
        notes.append(f"{table_key.title}: no `{baseline}` row, so no paired tests in this table")
    base_by_seed = {r.seed: r for r in used(table_rows[base_key])} if base_key else {}
    data = _case_matrices(table_rows, names, values, tc)

    out = []
    for row_key, runs in table_rows.items():
        done = [r for r in runs if r.completed]
        failed_seeds = sorted(seeds(runs, done_only=False) - seeds(runs), key=_seed_order)
        row: dict[str, object] = dict(zip(KEY_COLUMNS, (*table_key, *row_key)))
        row["n_runs"] = len(done)
        row["n_failed"] = len(runs) - len(done)
        row["n_resumed"] = sum(1 for r in done if r.resumes)  # runs stitched from an interrupted attempt
        row["seeds"] = " ".join(str(s) for s in sorted(seeds(runs), key=_seed_order))
        row["failed_seeds"] = " ".join(str(s) for s in failed_seeds)
        row["rank_seeds"] = len(common)
        row["baseline"] = base_key.label if base_key else baseline
        row["test"] = test
        row["ci_method"] = ci_method
        pairs = [(r, base_by_seed[r.seed]) for r in used(runs) if r.seed in base_by_seed] if row_key != base_key else []
        row["n_pairs"] = len(pairs)
        times = [r.wall_time_s for r in done if r.wall_time_s is not None]
        row["train_time_s"] = float(np.mean(times)) if times else math.nan
        row["converged"] = _converged_share(done, values, rank_by)
        for m in names:
            c = column(m)
            higher, bounded = higher_is_better(m), is_bounded(m)
            per_case = data.rows.get(m) if data is not None else None
            if per_case is not None:
                row_seeds, x = per_case[row_key]
                s = summarize_cases(x, confidence, bounded)
                row[f"{c}_unit"], row[f"{c}_n_cases"] = "case", s.n_cases
                row[f"{c}_mean"], row[f"{c}_std"], row[f"{c}_ci_low"], row[f"{c}_ci_high"] = s.mean, s.std, s.ci_low, s.ci_high
                row[f"{c}_n"] = s.n_seeds
                in_common = [i for i, sd in enumerate(row_seeds) if sd in common]
                row[f"{c}_rank_value"] = float(two_level_mean(x[in_common])) if in_common and common else math.nan
            else:
                s = summarize([value(r, m) for r in used(runs)], confidence=confidence, method=ci_method,
                              bounded=bounded)
                row[f"{c}_unit"], row[f"{c}_n_cases"] = "seed", 0
                row[f"{c}_mean"], row[f"{c}_std"], row[f"{c}_ci_low"], row[f"{c}_ci_high"] = s.mean, s.std, s.ci_low, s.ci_high
                row[f"{c}_n"] = s.n
                finite = [v for v in (value(r, m) for r in used(runs) if r.seed in common) if math.isfinite(v)]
                row[f"{c}_rank_value"] = float(np.mean(finite)) if finite and len(common) else math.nan
            if is_nonnegative(m) and row[f"{c}_ci_low"] < 0:  # a count or distance: floored, coverage unchanged
                row[f"{c}_ci_low"] = 0.0
            empty = {f"{c}_delta": math.nan, f"{c}_delta_ci_low": math.nan, f"{c}_delta_ci_high": math.nan,
                     f"{c}_p": math.nan, f"{c}_effect": math.nan, f"{c}_degenerate": "", f"{c}_p_wilcoxon": math.nan,
                     f"{c}_prob_superiority": math.nan}
            row.update(empty)
            if per_case is not None and base_key is not None and row_key != base_key:
                base_seeds, bx = per_case[base_key]
                shared = [sd for sd in row_seeds if sd in set(base_seeds)]
                if shared:
                    pos_r = [row_seeds.index(sd) for sd in shared]
                    pos_b = [base_seeds.index(sd) for sd in shared]
                    pc = paired_cases(x[pos_r], bx[pos_b], higher, confidence)
                    row.update({f"{c}_delta": pc.delta, f"{c}_delta_ci_low": pc.ci_low, f"{c}_delta_ci_high": pc.ci_high,
                                f"{c}_p": pc.p_value, f"{c}_effect": pc.effect_size, f"{c}_p_wilcoxon": pc.p_wilcoxon,
                                f"{c}_prob_superiority": pc.prob_superiority,
                                f"{c}_degenerate": "no difference" if pc.delta == 0 and pc.p_value == 1 else ""})
            elif pairs:
                a = [value(r, m) for r, _ in pairs]
                b = [value(r, m) for _, r in pairs]
                p = paired_test(a, b, test, confidence)
                row.update({f"{c}_delta": p.mean_diff, f"{c}_delta_ci_low": p.ci_low, f"{c}_delta_ci_high": p.ci_high,
                            f"{c}_p": p.p_value, f"{c}_effect": p.effect_size, f"{c}_degenerate": p.degenerate or "",
                            f"{c}_prob_superiority": _superiority(a, b, higher)})
        out.append(row)
    for m in names:
        c = column(m)
        for src in ("p", "p_wilcoxon"):
            adjusted = holm([r[f"{c}_{src}"] for r in out])
            for r, p in zip(out, adjusted):
                r[f"{c}_{src}_holm"] = float(p)
    rb = column(rank_by) + "_rank_value"
    ranks = pd.Series([r[rb] for r in out], dtype=float).rank(ascending=not higher_is_better(rank_by), method="min")
    for r, k in zip(out, ranks):
        r["rank"] = float(k)
    if not common and len(table_rows) > 1:
        notes.append(f"{table_key.title}: no seed was completed by every row, so the rows are not ranked")
    stab = _rank_percentiles(out, table_rows, names, rank_by, common, data, value, used, resamples, seed)
    return [_ordered(r, names) for r in out], data, stab


def _case_matrices(table_rows: dict[RowKey, list[Run]], names: list[str], values, tc: TableCases | None) -> CaseData | None:
    """Per metric whose column every completed run's case file has: each row's ``(seeds, X[seed, case])``."""
    if tc is None or len(tc.cases) < 2:
        return None
    data = CaseData(tc.cases)
    done = {key: sorted((r for r in runs if r.completed), key=lambda r: _seed_order(r.seed))
            for key, runs in table_rows.items()}
    every = [r for rs in done.values() for r in rs]
    for m in names:
        col = values.key(every[0], m).split("/", 1)[1]
        if any(values.key(r, m).split("/", 1)[1] != col for r in every) or not tc.has(every, col):
            continue
        n = len(tc.cases)
        data.rows[m] = {key: ([r.seed for r in rs],
                              np.stack([tc.values(r, col) for r in rs]) if rs else np.empty((0, n)))
                        for key, rs in done.items()}
    return data if data.rows else None


def _superiority(a: list[float], b: list[float], higher: bool) -> float:
    """Share of pairs where ``a`` beats ``b`` (ties half)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    if not d.size:
        return math.nan
    d[np.abs(d) <= 1e-9] = 0.0
    wins = (d > 0) if higher else (d < 0)
    return float((wins.sum() + 0.5 * (d == 0).sum()) / d.size)


def _rank_percentiles(out: list[dict], table_rows, names, rank_by, common, data: CaseData | None, value, used,
                      resamples: int, seed: tuple) -> RankStability | None:
    """``<m>_rank_p05`` / ``_p95`` for every metric (bootstrap over the common seeds and, for per-case
    metrics, the cases); returns the rank-by metric's full result."""
    keys = list(table_rows)
    common_sorted = sorted(common, key=_seed_order)
    result = None
    for m in names:
        c = column(m)
        for r in out:
            r[f"{c}_rank_p05"] = r[f"{c}_rank_p95"] = math.nan
        if not common_sorted:
            continue
        ranked, mats = [], []
        per_case = data.rows.get(m) if data is not None else None
        for i, key in enumerate(keys):
            if per_case is not None:
                row_seeds, x = per_case[key]
                if not set(common_sorted) <= set(row_seeds):
                    continue
                mats.append(x[[row_seeds.index(sd) for sd in common_sorted]])
            else:
                by_seed = {r.seed: r for r in used(table_rows[key])}
                if not set(common_sorted) <= set(by_seed):
                    continue
                mats.append(np.array([[value(by_seed[sd], m)] for sd in common_sorted]))
            ranked.append(i)
        if len(ranked) < 2:
            continue
        stab = rank_stability(np.stack(mats), [keys[i].label for i in ranked], higher_is_better(m), resamples, seed,
                              tau=m == rank_by)
        for i, a, b in zip(ranked, stab.p05, stab.p95):
            out[i][f"{c}_rank_p05"], out[i][f"{c}_rank_p95"] = float(a), float(b)
        if m == rank_by:
            result = stab
    return result


def _seed_order(seed: object) -> tuple[int, float, str]:
    return (0, float(seed), "") if isinstance(seed, (int, float)) else (1, 0.0, str(seed))


def _ordered(row: dict, names: list[str]) -> dict:
    head = [*KEY_COLUMNS, "rank", "rank_seeds", "n_runs", "n_failed", "n_resumed", "seeds", "failed_seeds", "converged",
            "train_time_s", "baseline", "test", "ci_method", "n_pairs"]
    cols = head + [f"{column(m)}_{s}" for m in names for s in
                   ("unit", "mean", "std", "ci_low", "ci_high", "n", "n_cases", "rank_value", "rank_p05", "rank_p95",
                    "delta", "delta_ci_low", "delta_ci_high", "p", "p_holm", "effect", "degenerate", "p_wilcoxon",
                    "p_wilcoxon_holm", "prob_superiority")]
    return {c: row[c] for c in cols}


def _baseline_row(table_rows: dict[RowKey, list[Run]], baseline: str) -> RowKey | None:
    """The row labelled ``baseline`` (``focal gamma=2``), else the first row of that loss."""
    for key in table_rows:
        if key.label == baseline:
            return key
    return next((key for key in table_rows if key.loss == baseline), None)


def _converged_share(done: list[Run], values: _MetricReader, rank_by: str) -> float:
    flags = []
    for r in done:
        key = values.history_key(r, rank_by)
        flag = converged(curve(r, key), higher_is_better(key), r.early_stopped)
        if flag is not None:
            flags.append(flag)
    return float(np.mean(flags)) if flags else math.nan
