"""``leaderboard.csv`` and ``leaderboard.md``: per table the leaderboard and the tests against the baseline."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reporting.budget import CONVERGE_TOL
from reporting.collect import Skipped
from reporting.leaderboard import Leaderboard, row_labels
from reporting.metric_names import column, higher_is_better
from reporting.ranks import AcrossTables
from reporting.stats import BCA_MIN_N

TEST_NAMES = {"wilcoxon": ("Wilcoxon signed-rank", "rank-biserial r", "r"), "t": ("paired t", "Cohen's d_z", "d_z")}


@dataclass
class Extras:
    """What the report adds to the leaderboard: the across-table analysis, budget τ, skipped dirs."""

    across: AcrossTables | None = None
    taus: list[dict] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def fmt(x: object, digits: int = 3) -> str:
    """A number for a table cell; ``–`` for a missing value."""
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        return f"{x:.{digits}f}"
    return str(x)


def fmt_rank(rank: float) -> str:
    return "–" if rank is None or math.isnan(rank) else str(int(rank))


def fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def metric_cell(row: pd.Series, metric: str) -> str:
    """``mean ± std [ci_low, ci_high]``, with n when it differs from the row's completed runs;
    a single value is shown as ``mean (n=1)``: it has no spread to report."""
    c = column(metric)
    n = int(row[f"{c}_n"])
    if n == 0:
        return "–"
    if n == 1:
        return f"{fmt(row[c + '_mean'])} (n=1)"
    text = f"{fmt(row[c + '_mean'])} ± {fmt(row[c + '_std'])} [{fmt(row[c + '_ci_low'])}, {fmt(row[c + '_ci_high'])}]"
    return text + (f" (n={n})" if n != int(row["n_runs"]) else "")


def test_cell(lb: Leaderboard, row: pd.Series, metric: str) -> str:
    """``Δ [CI]; p, Holm p; effect`` with ``*`` when the Holm-adjusted p is below α."""
    c = column(metric)
    if int(row["n_pairs"]) == 0 or math.isnan(row[f"{c}_delta"]):
        return "–"
    effect = TEST_NAMES[lb.test][2]
    text = (f"{row[f'{c}_delta']:+.3f} [{fmt(row[f'{c}_delta_ci_low'])}, {fmt(row[f'{c}_delta_ci_high'])}]; "
            f"p {fmt_p(row[f'{c}_p'])}, Holm {fmt_p(row[f'{c}_p_holm'])}; {effect} {fmt(row[f'{c}_effect'], 2)}")
    if row[f"{c}_degenerate"]:
        text += f" ({row[f'{c}_degenerate']})"
    return text + (" *" if significant(lb, row, metric) else "")


def significant(lb: Leaderboard, row: pd.Series, metric: str) -> bool:
    p = row[f"{column(metric)}_p_holm"]
    return isinstance(p, float) and not math.isnan(p) and p < lb.alpha


def describe(lb: Leaderboard) -> list[str]:
    """The sentences a reader needs to interpret the numbers (also used by the HTML and LaTeX outputs)."""
    test_name, effect_name, _ = TEST_NAMES[lb.test]
    ci = (f"{lb.confidence:.0%} Student-t interval of the mean" if lb.ci_method == "t" else
          f"{lb.confidence:.0%} BCa bootstrap interval of the mean (9 999 resamples; t interval for rows with "
          f"< {BCA_MIN_N} seeds)")
    directions = [m for m in lb.metrics if not higher_is_better(m)]
    lines = [
        f"Metrics from the `{lb.split}/` split. n = completed runs (seeds) per row; each metric cell is "
        f"mean ± sample std [{ci} over seeds]." + (f" Lower is better for {', '.join(f'`{m}`' for m in directions)}."
                                                    if directions else ""),
        f"Rank by `{lb.rank_by}` (1 = best) on the table's common seeds — those every row completed (`rank_seeds` in "
        "the CSV) — so a row cannot move up by failing its hardest seed; † marks rows with failed runs."
        + (" Failed runs count as the table's worst value of each metric (means, tests and ranks)." if lb.failed_as_worst
           else ""),
        f"Tests against the baseline `{lb.baseline}` on the seeds both completed: Δ = mean paired difference with its "
        f"{lb.confidence:.0%} t interval; p = two-sided {test_name} test; Holm = p adjusted (Holm) over the rows of "
        f"the table, per metric; * = Holm p < {lb.alpha:g}; effect = {effect_name}. \"no spread\": the same Δ on every "
        "seed, p from the exact sign test, no effect size; \"no difference\": Δ = 0 on every seed.",
        f"converged = share of the row's runs whose validation `{lb.rank_by}` curve levelled off (the last quarter of "
        f"the epochs improves the best value by ≤ {CONVERGE_TOL:g}, or early stopping ended the run); "
        "time = mean wall-clock seconds per completed run, which also depends on the machine's load.",
    ]
    pairs = lb.table["n_pairs"].max() if len(lb.table) else 0
    if lb.test == "wilcoxon" and 0 < pairs <= 5:
        lines.append(f"With n ≤ {pairs} pairs the smallest possible two-sided Wilcoxon p is "
                     f"{2 / 2 ** pairs:.4f}; use more seeds (or `--test t`) to resolve small differences.")
    return lines + lb.notes


def warnings(lb: Leaderboard) -> list[str]:
    """Config edits between runs, and a baseline or top row that did not converge."""
    out = list(lb.grouping.warnings)
    unknown = lb.table["converged"].isna().all() if len(lb.table) else True
    for key, part in lb.parts():
        base = lb.baseline_label(part)
        for label, (_, row) in zip(row_labels(part), part.iterrows()):
            share = row["converged"]
            role = [r for r, hit in (("baseline", label == base), ("top-ranked row", row["rank"] == 1)) if hit]
            if role and isinstance(share, float) and not math.isnan(share) and share < 1:
                out.append(f"WARNING {key.title}: the {' and '.join(role)} `{label}` converged in "
                           f"{share:.0%} of its runs — its numbers may still be moving; train longer before "
                           "drawing conclusions from this table")
    if unknown and len(lb.table):
        out.append("Convergence unknown: the runs record no per-epoch history (older runs); "
                   "rerun with the current train.py to get learning curves and the converged column")
    return out


def write_leaderboard(lb: Leaderboard, out_dir: Path, extras: Extras | None = None) -> tuple[Path, Path]:
    """Write ``leaderboard.csv`` and ``leaderboard.md`` into ``out_dir``."""
    csv_path, md_path = out_dir / "leaderboard.csv", out_dir / "leaderboard.md"
    lb.table.to_csv(csv_path, index=False, float_format="%.6g")
    md_path.write_text(leaderboard_markdown(lb, extras or Extras()))
    return csv_path, md_path


def leaderboard_markdown(lb: Leaderboard, extras: Extras) -> str:
    out = [f"# Leaderboard ({len(lb.grouping.tables)} table(s), {lb.table['loss'].nunique()} losses)", ""]
    out += [f"- {line}" for line in describe(lb)] + [""]
    warns = warnings(lb)
    if warns:
        out += ["## Warnings", "", *[f"- {w}" for w in warns], ""]
    if extras.skipped:
        out += [f"## Skipped run dirs ({len(extras.skipped)})", "",
                *[f"- `{s.path}`: {s.reason}" for s in extras.skipped], ""]
    taus = {(t["datamodule"], t["model"], t["settings"]): t for t in extras.taus}
    for key, part in lb.parts():
        out += [f"## {key.title}", "", *table_lines(lb, part), ""]
        out += [f"Tests against `{lb.baseline_label(part) or lb.baseline}`:", "", *test_lines(lb, part), ""]
        tau = taus.get(tuple(key))
        if tau is not None:
            out += [budget_sentence(tau, lb), ""]
    if extras.across is not None:
        out += ["## Across tables", "", extras.across.verdict, "", *rank_lines(extras.across), ""]
    return "\n".join(out)


def budget_sentence(tau: dict, lb: Leaderboard) -> str:
    value = "–" if tau["kendall_tau"] is None else f"{tau['kendall_tau']:.2f}"
    return (f"Budget: Kendall τ between the `{lb.rank_by}` ranking (validation, best so far) at epoch "
            f"{tau['epoch_half']} and at epoch {tau['epoch_final']} = {value} over {tau['n_rows']} rows "
            "(1 = the order was already settled at half the budget); per-epoch ranks in budget.csv.")


def table_lines(lb: Leaderboard, part: pd.DataFrame) -> list[str]:
    header = ["rank", "loss", "n", "failed", *_metric_headers(lb), "converged"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, (_, row) in zip(row_labels(part), part.iterrows()):
        cells = [fmt_rank(row["rank"]), f"`{label}`" + (" †" if row["n_failed"] else ""), str(row["n_runs"]),
                 str(row["n_failed"])]
        for m in lb.metrics:
            cells.append(metric_cell(row, m))
            if m == lb.rank_by:
                cells.append(fmt(row["train_time_s"], 1))
        cells.append(fmt(row["converged"], 2))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _metric_headers(lb: Leaderboard) -> list[str]:
    out = []
    for m in lb.metrics:
        out.append(m + ("" if higher_is_better(m) else " ↓"))
        if m == lb.rank_by:
            out.append("time (s)")
    return out


def test_lines(lb: Leaderboard, part: pd.DataFrame) -> list[str]:
    header = ["loss", *lb.metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base = lb.baseline_label(part)
    for label, (_, row) in zip(row_labels(part), part.iterrows()):
        cells = [f"`{label}`"] + (["baseline"] * len(lb.metrics) if label == base
                                  else [test_cell(lb, row, m) for m in lb.metrics])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def rank_lines(across: AcrossTables) -> list[str]:
    lines = [f"Average rank of `{across.metric}` (1 = best), n_blocks = {across.n_blocks}:", "",
             "| loss | avg rank | n_blocks |", "|---|---|---|"]
    for _, r in across.ranks.iterrows():
        label = f"{r['loss']} {r['loss_params']}".strip()
        lines.append(f"| `{label}` | {fmt(r['avg_rank'], 2)} | {r['n_blocks']} |")
    return lines
