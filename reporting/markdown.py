"""``leaderboard.csv`` and ``leaderboard.md``: per table the leaderboard and the tests against the baseline."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from metrics.names import higher_is_better
from reporting.budget import CONVERGE_TOL
from reporting.collect import Skipped
from reporting.leaderboard import Leaderboard, row_labels
from reporting.metric_names import column
from reporting.ranks import AcrossTables
from reporting.stats import BCA_MIN_N

TEST_NAMES = {"wilcoxon": ("Wilcoxon signed-rank", "rank-biserial r", "r"), "t": ("paired t", "Cohen's d_z", "d_z")}


@dataclass
class Extras:
    """What the report adds to the leaderboard: the across-table analysis, budget τ, skipped dirs, the
    settings that differ between rows besides the loss."""

    across: AcrossTables | None = None
    taus: list[dict] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    plans: list[dict] | None = None
    plan_options: dict = field(default_factory=dict)
    fairness: list[dict] = field(default_factory=list)   # reporting.fairness.Difference.as_dict() per difference


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
    case = row.get(f"{c}_unit") == "case"
    if n == 1 and not case:
        return f"{fmt(row[c + '_mean'])} (n=1)"
    std = "" if n == 1 else f" ± {fmt(row[c + '_std'])}"
    ci = "" if _nan(row[c + "_ci_low"]) else f" [{fmt(row[c + '_ci_low'])}, {fmt(row[c + '_ci_high'])}]"
    text = f"{fmt(row[c + '_mean'])}{std}{ci}"
    if case:
        return text + f" ({n}×{int(row[c + '_n_cases'])})"
    return text + (f" (n={n})" if n != int(row["n_runs"]) else "")


def _nan(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def rank_cell(row: pd.Series, metric: str) -> str:
    """``rank (p05–p95)``: the rank and its bootstrap 5–95 % range."""
    c = column(metric)
    rank = fmt_rank(row["rank"])
    lo, hi = row.get(f"{c}_rank_p05"), row.get(f"{c}_rank_p95")
    if rank == "–" or _nan(lo):
        return rank
    return f"{rank} ({int(lo)}–{int(hi)})" if lo != hi else f"{rank} ({int(lo)})"


def test_cell(lb: Leaderboard, row: pd.Series, metric: str) -> str:
    """``Δ [CI]; p, Holm p; effect`` with ``*`` when the Holm-adjusted p is below α."""
    c = column(metric)
    if math.isnan(row[f"{c}_delta"]):
        return "–"
    if row.get(f"{c}_unit") == "case":
        text = (f"{row[f'{c}_delta']:+.3f} [{fmt(row[f'{c}_delta_ci_low'])}, {fmt(row[f'{c}_delta_ci_high'])}]; "
                f"p {fmt_p(row[f'{c}_p'])}, Holm {fmt_p(row[f'{c}_p_holm'])}; Wilcoxon (cases) p "
                f"{fmt_p(row[f'{c}_p_wilcoxon'])}, Holm {fmt_p(row[f'{c}_p_wilcoxon_holm'])}; "
                f"PS {fmt(row[f'{c}_prob_superiority'], 2)}")
        return text + (" *" if significant(lb, row, metric) else "")
    if int(row["n_pairs"]) == 0:
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
    ci = (f"{lb.confidence:.0%} Student-t interval of the mean (logit scale for scores in [0, 1])" if lb.ci_method == "t" else
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
    units = {str(u) for m in lb.metrics for u in lb.table[column(m) + "_unit"]} if len(lb.table) else set()
    if "case" in units:
        lines.append(
            "Unit `case` (cells marked S×C: seeds × test cases): the row value is the mean over the test cases per "
            "seed, then over the seeds; the interval is the crossed seeds × cases t interval (seed and case "
            "variance, Welch–Satterthwaite df; on the logit scale for scores in [0, 1]); Δ = mean per-case "
            "difference on the shared seeds with the same interval; p = the two-level t test of Δ (seed and case "
            "variance; agrees with the interval; it sets the *); Wilcoxon (cases) = two-sided Wilcoxon "
            "signed-rank test of the per-case differences averaged over the shared seeds (unit: case; it holds the "
            "trained models fixed, so it ignores seed-to-seed variation); Holm over the rows for each; PS = "
            "probability of superiority, the share of test cases on which the row beats the baseline (ties half). "
            "docs/statistics.md has the methods and their coverage.")
    if "seed" in units:
        lines.append("Unit `seed` (no per-case files): one number per run, the statistics above; for scores in "
                     "[0, 1] the t interval is taken on the logit scale, so it stays inside [0, 1].")
    lines.append(f"Rank column: rank (bootstrap 5–95 % range of the rank over {lb.resamples} resamples of the "
                 "common seeds and, for unit `case`, the test cases); `<m>_rank_p05/p95` in the CSV.")
    pairs = lb.table["n_pairs"].max() if len(lb.table) else 0
    if lb.test == "wilcoxon" and 0 < pairs <= 5:
        lines.append(f"With n ≤ {pairs} pairs the smallest possible two-sided Wilcoxon p is "
                     f"{2 / 2 ** pairs:.4f}; use more seeds (or `--test t`) to resolve small differences.")
    return lines + lb.notes


def warnings(lb: Leaderboard) -> list[str]:
    """Config edits between runs, and a baseline or top row that did not converge."""
    out = list(lb.grouping.warnings) + list(lb.case_warnings)
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
    resumed = lb.table["n_resumed"].sum() if "n_resumed" in lb.table and len(lb.table) else 0
    if resumed:
        out.append(f"{int(resumed)} completed run(s) (↻, `n_resumed` in leaderboard.csv) resumed from a checkpoint "
                   "after an interruption (metrics.json `resumes`: from which epoch, when, why); on CPU a resumed "
                   "run equals an uninterrupted one, on GPU it may differ by non-deterministic kernels")
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
        if key in lb.stability:
            out += [stability_sentence(lb, key), ""]
    if extras.across is not None:
        out += ["## Across tables", "", extras.across.verdict, "", *rank_lines(extras.across), "",
                *pairwise_lines(extras.across, lb.alpha), ""]
    if extras.plans is not None:
        out += ["## Planning", "", *plan_lines(extras), ""]
    return "\n".join(out)


def stability_sentence(lb: Leaderboard, key) -> str:
    st = lb.stability[key]
    what = f"{st.n_seeds} common seed(s) × {st.n_cases} test cases" if st.n_cases > 1 else f"{st.n_seeds} common seeds"
    return (f"Rank stability of `{lb.rank_by}` ({st.n_resamples} bootstrap resamples of {what}): Kendall τ of the "
            f"resampled rankings to the full one {fmt(st.tau_mean, 2)} (5–95 %: {fmt(st.tau_p05, 2)} to "
            f"{fmt(st.tau_p95, 2)}; 1 = the order never changes).")


def pairwise_lines(across: AcrossTables, alpha: float) -> list[str]:
    pw = across.pairwise
    if pw is None or not len(pw):
        return []
    sig_w = int((pw["p_wilcoxon_holm"] < alpha).sum())
    sig_n = int((pw["p_nemenyi"] < alpha).sum()) if pw["p_nemenyi"].notna().any() else None
    lines = [f"Pairwise Wilcoxon signed-rank tests over the {across.n_blocks} tables (Holm over {len(pw)} pairs): "
             f"{sig_w} pair(s) differ at α = {alpha:g}" + (f"; Nemenyi: {sig_n}" if sig_n is not None else "")
             + f". With {across.n_blocks} tables the smallest Wilcoxon p is {2 / 2 ** across.n_blocks:.3g}."]
    dis = pw[pw["disagree"]]
    if len(dis):
        lines += ["", f"Pairs on which the two disagree ({len(dis)}):", "",
                  "| pair | Wilcoxon Holm p | Nemenyi p |", "|---|---|---|"]
        lines += [f"| `{r.a}` vs `{r.b}` | {fmt_p(r.p_wilcoxon_holm)} | {fmt_p(r.p_nemenyi)} |"
                  for r in dis.head(30).itertuples()]
    return lines


def plan_lines(extras: Extras) -> list[str]:
    from reporting.power import plan_sentence

    if not extras.plans:
        return ["No table has a baseline row with paired runs to plan from."]
    opts = extras.plan_options
    return [f"- {plan_sentence(p['title'], p, opts['delta'], opts['power'])}" for p in extras.plans]


def budget_sentence(tau: dict, lb: Leaderboard) -> str:
    value = "–" if tau["kendall_tau"] is None else f"{tau['kendall_tau']:.2f}"
    return (f"Budget: Kendall τ between the `{lb.rank_by}` ranking (validation, best so far) at epoch "
            f"{tau['epoch_half']} and at epoch {tau['epoch_final']} = {value} over {tau['n_rows']} rows "
            "(1 = the order was already settled at half the budget); per-epoch ranks in budget.csv.")


def table_lines(lb: Leaderboard, part: pd.DataFrame) -> list[str]:
    header = ["rank", "loss", "n", "failed", *_metric_headers(lb), "converged"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, (_, row) in zip(row_labels(part), part.iterrows()):
        marks = (" †" if row["n_failed"] else "") + (" ↻" if row.get("n_resumed") else "")
        cells = [rank_cell(row, lb.rank_by), f"`{label}`" + marks, str(row["n_runs"]),
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
