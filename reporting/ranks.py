"""Across tables: average ranks, the Friedman test and the Nemenyi post-hoc (Demšar 2006).

Blocks are the leaderboard's tables (datamodule × model × settings); in each block a row's value is
its mean over the table's common seeds, rows are ranked (1 = best, ties averaged), and a row's
``avg_rank`` is the mean of its ranks. Only rows present with a value in *every* block enter (a
complete block design); the others are listed with ``n_blocks`` = 0 and no rank.
``scipy.stats.friedmanchisquare`` tests whether the rows' ranks differ at all (needs ≥ 3 rows and
≥ 2 blocks); ``scikit_posthocs.posthoc_nemenyi_friedman`` gives the pairwise p-values drawn in the
critical-difference diagram. The Nemenyi critical difference is ``CD = q_α √(k(k+1)/(6N))`` for k
rows and N blocks. Next to it, as Benavoli et al. (JMLR 2016) recommend, every pair of rows gets the
Wilcoxon signed-rank test of its value differences over the blocks, Holm-adjusted over all pairs; its
verdict does not depend on which other rows are in the pool. ``pairwise`` lists both p-values per pair
and marks the pairs on which the two disagree (one calls them different at α, the other not). With
n blocks the smallest two-sided Wilcoxon p is 2/2ⁿ, so it needs ≥ 6 blocks to reject at 0.05.
When ``CD ≥ k − 1`` — the largest possible difference of average ranks — no pair
can ever differ: the summary then says plainly that there are too few blocks to conclude anything.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from metrics.names import higher_is_better
from reporting.leaderboard import Leaderboard
from reporting.metric_names import column


@dataclass(frozen=True)
class AcrossTables:
    """The across-table analysis of one metric."""

    metric: str
    ranks: pd.DataFrame        # loss, loss_params, avg_rank, n_blocks (sorted best first)
    values: pd.DataFrame       # blocks × row labels (means on common seeds), complete rows only
    statistic: float
    p: float
    cd: float
    posthoc: pd.DataFrame | None
    verdict: str
    pairwise: pd.DataFrame | None = None   # a, b, n_blocks, p_wilcoxon, p_wilcoxon_holm, p_nemenyi, disagree

    @property
    def n_blocks(self) -> int:
        return int(len(self.values))

    def friedman(self) -> dict:
        return {"metric": self.metric, "statistic": _none(self.statistic), "p": _none(self.p),
                "n_blocks": self.n_blocks, "n_rows": int(self.values.shape[1]), "cd": _none(self.cd),
                "verdict": self.verdict}

    def disagreements(self) -> list[dict]:
        if self.pairwise is None:
            return []
        rows = self.pairwise[self.pairwise["disagree"]]
        return [{k: (_none(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rows.to_dict("records")]


def across_tables(lb: Leaderboard, metric: str | None = None) -> AcrossTables:
    """Average ranks, Friedman and Nemenyi for ``metric`` (default: the leaderboard's ``rank_by``)."""
    metric = metric or lb.rank_by
    c = column(metric) + "_rank_value"
    t = lb.table
    label = (t["loss"] + "\t" + t["loss_params"]).to_numpy()
    block = (t["datamodule"] + " · " + t["model"] + (" · " + t["settings"]).where(t["settings"] != "", "")).to_numpy()
    wide = pd.DataFrame({"block": block, "label": label, "v": t[c].astype(float)}).pivot_table(
        index="block", columns="label", values="v", aggfunc="first")
    complete = wide.dropna(axis=1, how="any") if len(wide) else wide
    higher = higher_is_better(metric)
    ranked = complete.rank(axis=1, ascending=not higher, method="average")
    avg = ranked.mean(axis=0) if len(ranked) else pd.Series(dtype=float)
    all_labels = sorted(set(label))
    rows = []
    for lab in all_labels:
        loss, params = lab.split("\t", 1)
        ok = lab in complete.columns
        rows.append({"loss": loss, "loss_params": params, "avg_rank": float(avg[lab]) if ok else math.nan,
                     "n_blocks": int(len(complete)) if ok else 0})
    ranks = pd.DataFrame(rows).sort_values(["avg_rank", "loss", "loss_params"], na_position="last").reset_index(drop=True)
    values = complete.rename(columns=lambda s: " ".join(s.split("\t")).strip())
    n, k = values.shape
    statistic = p = cd = math.nan
    posthoc = None
    if k >= 2 and n >= 2:
        q = sps.studentized_range.ppf(lb.confidence, k, np.inf) / math.sqrt(2)
        cd = float(q * math.sqrt(k * (k + 1) / (6 * n)))
    if k >= 3 and n >= 2:
        res = sps.friedmanchisquare(*[values[col].to_numpy() for col in values.columns])
        statistic, p = float(res.statistic), float(res.pvalue)
        import scikit_posthocs as skp

        posthoc = skp.posthoc_nemenyi_friedman(values.to_numpy())  # |rank differences|: direction-free
        posthoc.index = posthoc.columns = list(values.columns)
    verdict = _verdict(n, k, cd, p, lb.alpha, len(all_labels))
    pairwise = _pairwise(values, posthoc, lb.alpha) if k >= 2 and n >= 2 else None
    return AcrossTables(metric, ranks, values, statistic, p, cd, posthoc, verdict, pairwise)


def _pairwise(values: pd.DataFrame, posthoc: pd.DataFrame | None, alpha: float) -> pd.DataFrame:
    """Wilcoxon signed-rank over the blocks for every pair of rows, Holm over the pairs, next to Nemenyi."""
    from reporting.stats import holm

    cols = list(values.columns)
    rows = []
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            d = values[a].to_numpy(dtype=float) - values[b].to_numpy(dtype=float)
            d[np.abs(d) <= 1e-9] = 0.0
            p = 1.0 if not d.any() else float(sps.wilcoxon(d, zero_method="wilcox").pvalue)
            nem = float(posthoc.loc[a, b]) if posthoc is not None else math.nan
            rows.append({"a": a, "b": b, "n_blocks": int(d.size), "p_wilcoxon": p, "p_nemenyi": nem})
    out = pd.DataFrame(rows, columns=["a", "b", "n_blocks", "p_wilcoxon", "p_nemenyi"])
    out["p_wilcoxon_holm"] = holm(out["p_wilcoxon"].to_numpy()) if len(out) else []
    has_nem = out["p_nemenyi"].notna()
    out["disagree"] = has_nem & ((out["p_wilcoxon_holm"] < alpha) != (out["p_nemenyi"] < alpha))
    return out[["a", "b", "n_blocks", "p_wilcoxon", "p_wilcoxon_holm", "p_nemenyi", "disagree"]]


def _verdict(n: int, k: int, cd: float, p: float, alpha: float, n_labels: int) -> str:
    left_out = n_labels - k
    tail = f" ({left_out} row(s) not in every table are left out)" if left_out else ""
    if n < 2 or k < 2:
        return (f"n_blocks = {n}: too few blocks (tables) to compare rows across datasets — "
                f"average ranks need ≥ 2 tables with the same rows{tail}.")
    if k < 3:
        return f"n_blocks = {n}, {k} rows: the Friedman test needs ≥ 3 rows; average ranks are descriptive only{tail}."
    if cd >= k - 1:
        return (f"n_blocks = {n}: too few blocks to conclude anything across datasets — the Nemenyi critical "
                f"difference ({cd:.2f} ranks) exceeds the largest possible difference of average ranks "
                f"(k − 1 = {k - 1}); Friedman p = {p:.3g}. The average ranks describe these {n} tables only{tail}.")
    sig = "differ" if p < alpha else "do not differ detectably"
    return (f"n_blocks = {n}, {k} rows: Friedman χ² p = {p:.3g} — the rows' ranks {sig} at α = {alpha:g}; "
            f"Nemenyi critical difference {cd:.2f} ranks{tail}.")


def _none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
