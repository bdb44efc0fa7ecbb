"""``leaderboard.md``: the leaderboard as Markdown tables, one per datamodule × model (× variant)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from reporting.leaderboard import Leaderboard, column

TEST_NAMES = {"wilcoxon": ("Wilcoxon signed-rank", "rank-biserial r"), "t": ("paired t", "Cohen's d_z")}


def fmt(x: object, digits: int = 3) -> str:
    """A number for a table cell; ``–`` for a missing value."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA:
        return "–"
    if isinstance(x, float):
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        return f"{x:.{digits}f}"
    return str(x)


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


def describe(lb: Leaderboard) -> list[str]:
    """The sentences a reader needs to interpret the numbers (also used by the HTML report)."""
    test_name, effect_name = TEST_NAMES[lb.test]
    lines = [
        f"Metrics from the `{lb.split}/` split. n = completed runs (seeds) per row; each metric cell is "
        f"mean ± sample std [{lb.confidence:.0%} percentile-bootstrap CI of the mean over seeds].",
        f"Δ = mean paired difference to the baseline `{lb.baseline}` on the seeds both completed; "
        f"p = two-sided {test_name} test; effect = {effect_name}. Rank by `{lb.rank_by}` (1 = best).",
    ]
    pairs = lb.table["n_pairs"].max() if len(lb.table) else 0
    if lb.test == "wilcoxon" and 0 < pairs <= 5:
        lines.append(f"With n ≤ {pairs} pairs the smallest possible two-sided Wilcoxon p is "
                     f"{2 / 2 ** pairs:.4f}; use more seeds (or `--test t`) to resolve small differences.")
    return lines + lb.notes


def write_leaderboard(lb: Leaderboard, out_dir: Path) -> tuple[Path, Path]:
    """Write ``leaderboard.csv`` and ``leaderboard.md`` into ``out_dir``."""
    csv_path, md_path = out_dir / "leaderboard.csv", out_dir / "leaderboard.md"
    lb.table.to_csv(csv_path, index=False, float_format="%.6g")
    md_path.write_text(leaderboard_markdown(lb))
    return csv_path, md_path


def leaderboard_markdown(lb: Leaderboard) -> str:
    out = [f"# Leaderboard ({lb.table['datamodule'].nunique()} datamodule(s), {lb.table['loss'].nunique()} losses)", ""]
    out += [f"- {line}" for line in describe(lb)] + [""]
    for title, part in grouped(lb.table):
        out += [f"## {title}", "", *table_lines(lb, part), ""]
    return "\n".join(out)


def grouped(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The table split by datamodule × model (× variant), each part sorted by rank."""
    cols = [c for c in ("datamodule", "model", "variant") if c in table]
    parts = []
    for key, part in table.groupby(cols, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        title = " · ".join(str(k) for k in key if isinstance(k, str) and k)
        parts.append((title, part.sort_values(["rank", "loss"], na_position="last")))
    return parts


def table_lines(lb: Leaderboard, part: pd.DataFrame) -> list[str]:
    rb = column(lb.rank_by)
    header = ["rank", "loss", "n", "failed", *lb.metrics, f"Δ {lb.rank_by} vs {lb.baseline}", "p", "effect"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in part.iterrows():
        cells = [fmt(row["rank"]), f"`{row['loss']}`", str(row["n_runs"]), str(row["n_failed"])]
        cells += [metric_cell(row, m) for m in lb.metrics]
        cells += [fmt(row[f"{rb}_delta"], 4), fmt(row[f"{rb}_p"], 4), fmt(row[f"{rb}_effect"], 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
