"""``leaderboard.tex``: one booktabs table per leaderboard table, ready to ``\\input`` into a paper.

Cells are ``mean ± std``; the best mean of each metric is bold (lowest for lower-is-better metrics);
``$^{*}$`` marks a row whose Holm-adjusted paired p against the baseline is below α; a second
table per leaderboard table gives Δ [CI], p, Holm p and the effect size. Needs
``\\usepackage{booktabs}`` and ``\\usepackage{amssymb}`` in the preamble.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from metrics.names import higher_is_better
from reporting.leaderboard import Leaderboard, row_labels
from reporting.markdown import TEST_NAMES, fmt, fmt_p, significant
from reporting.metric_names import column

_ESCAPES = {"\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "<": r"$<$", ">": r"$>$", "·": r"$\cdot$", "±": r"$\pm$", "†": r"$^{\dagger}$"}


def escape(text: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in str(text))


def write_latex(lb: Leaderboard, path: Path) -> Path:
    path.write_text(latex(lb))
    return path


def latex(lb: Leaderboard) -> str:
    test_name, _, effect = TEST_NAMES[lb.test]
    out = [f"% lossbench leaderboard: {lb.split}/ metrics, mean ± std over seeds; best mean bold; "
           f"$^{{*}}$ = Holm-adjusted {test_name} p < {lb.alpha:g} against the baseline.",
           "% Requires \\usepackage{booktabs}.", ""]
    for key, part in lb.parts():
        best = {m: _best(part, m) for m in lb.metrics}
        cols = "l" + "r" * (len(lb.metrics) + 1)
        heads = ["Loss", "$n$", *[escape(m) + ("" if higher_is_better(m) else r" $\downarrow$") for m in lb.metrics]]
        out += [r"\begin{table}[t]", r"\centering\small",
                rf"\caption{{{escape(key.title)}: {lb.split} metrics, mean $\pm$ std over seeds. Bold: best mean. "
                rf"$^{{*}}$: Holm-adjusted {escape(test_name)} $p<{lb.alpha:g}$ vs.\ "
                rf"{escape(lb.baseline_label(part) or lb.baseline)}.}}",
                rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(heads) + r" \\", r"\midrule"]
        for label, (_, row) in zip(row_labels(part), part.iterrows()):
            cells = [escape(label) + (r"$^{\dagger}$" if row["n_failed"] else ""), str(row["n_runs"])]
            for m in lb.metrics:
                c = column(m)
                cell = "--" if int(row[f"{c}_n"]) == 0 else rf"{fmt(row[c + '_mean'])} $\pm$ {fmt(row[c + '_std'])}"
                if best[m] is not None and row[c + "_mean"] == best[m]:
                    cell = rf"\textbf{{{cell}}}"
                if significant(lb, row, m):
                    cell += r"$^{*}$"
                cells.append(cell)
            out.append(" & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        out += _tests_table(lb, key.title, part, effect)
    return "\n".join(out)


def _tests_table(lb: Leaderboard, title: str, part: pd.DataFrame, effect: str) -> list[str]:
    base = lb.baseline_label(part)
    rows = [(label, row) for label, (_, row) in zip(row_labels(part), part.iterrows()) if label != base]
    if base is None or not rows:
        return []
    out = [r"\begin{table}[t]", r"\centering\scriptsize",
           rf"\caption{{{escape(title)}: paired differences to {escape(base)} (same seeds): $\Delta$ "
           rf"[{escape(f'{lb.confidence:.0%}')} t interval], $p$ / Holm $p$, effect size {escape(effect)}"
           + _case_note(part, lb.metrics) + ".}",
           r"\begin{tabular}{l" + "l" * len(lb.metrics) + "}", r"\toprule",
           " & ".join(["Loss", *[escape(m) for m in lb.metrics]]) + r" \\", r"\midrule"]
    for label, row in rows:
        cells = [escape(label)]
        for m in lb.metrics:
            c = column(m)
            if math.isnan(row[f"{c}_delta"]):
                cells.append("--")
                continue
            cells.append(rf"{row[f'{c}_delta']:+.3f} [{fmt(row[f'{c}_delta_ci_low'])}, {fmt(row[f'{c}_delta_ci_high'])}]; "
                         rf"{escape(fmt_p(row[f'{c}_p']))} / {escape(fmt_p(row[f'{c}_p_holm']))}; "
                         rf"{fmt(row[f'{c}_effect'], 2)}" + (r"$^{*}$" if significant(lb, row, m) else ""))
        out.append(" & ".join(cells) + r" \\")
    return out + [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]


def _case_note(part: pd.DataFrame, metrics: list[str]) -> str:
    """Per-case metrics (unit ``case``) are tested differently; say so in the caption."""
    case = [m for m in metrics if (part[column(m) + "_unit"] == "case").any()]
    if not case:
        return ""
    return (r"; per-case metrics (" + escape(", ".join(case)) + r"): seeds $\times$ test cases, $p$ of the two-level "
            r"$t$ test, effect size the rank-biserial $r$ of the per-case differences")


def _best(part: pd.DataFrame, metric: str) -> float | None:
    values = part[column(metric) + "_mean"].astype(float).dropna()
    if values.empty:
        return None
    return float(values.max() if higher_is_better(metric) else values.min())
