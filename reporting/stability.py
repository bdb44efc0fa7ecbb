"""Rank stability (challengeR, Wiesenfarth et al. 2021): bootstrap the test cases and seeds, re-rank.

For one table and metric the rows' values on the table's common seeds form ``X[r, s, c]`` (row, seed,
case; a per-run table has one "case", the run's own number). Each of ``B`` resamples draws seed
indices ``(B, S)`` and case indices ``(B, C)`` with replacement — the same indices for every row, because
the cases and seeds are shared — and recomputes every row's mean as a weighted sum (resample counts as
weights: one matrix product, no Python loop per resample). Rows are ranked per resample (1 = best,
ties share the best rank). Reported per row: the rank distribution (the blob plot), its 5th and 95th
percentile; per table: Kendall's τ_b between each resampled ranking and the full-data ranking (mean
and 5–95 %). A fixed seed gives identical output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RankStability:
    """Bootstrap rank distribution of the rows of one table (``counts[r, k]``: resamples with rank k+1)."""

    labels: list[str]
    full_rank: np.ndarray
    counts: np.ndarray
    p05: np.ndarray
    p50: np.ndarray
    p95: np.ndarray
    tau_mean: float
    tau_p05: float
    tau_p95: float
    n_resamples: int
    n_seeds: int
    n_cases: int

    def summary(self) -> dict:
        return {"tau_mean": _none(self.tau_mean), "tau_p05": _none(self.tau_p05), "tau_p95": _none(self.tau_p95),
                "n_resamples": self.n_resamples, "n_seeds": self.n_seeds, "n_cases": self.n_cases,
                "rows": [{"label": lab, "rank": int(k), "rank_p05": int(a), "rank_median": int(m), "rank_p95": int(b)}
                         for lab, k, a, m, b in zip(self.labels, self.full_rank, self.p05, self.p50, self.p95)]}


def resample_counts(rng: np.random.Generator, n_resamples: int, n: int) -> np.ndarray:
    """``(B, n)`` bootstrap counts: how often each of ``n`` items is drawn in each resample."""
    idx = rng.integers(0, n, size=(n_resamples, n))
    flat = idx + n * np.arange(n_resamples)[:, None]
    return np.bincount(flat.ravel(), minlength=n_resamples * n).reshape(n_resamples, n).astype(np.float64)


def resampled_means(x: np.ndarray, seed_w: np.ndarray, case_w: np.ndarray) -> np.ndarray:
    """``(R, B)`` means of ``x`` ``(R, S, C)`` under seed weights ``(B, S)`` and case weights ``(B, C)``;
    missing cells (NaN) carry no weight."""
    ok = np.isfinite(x)
    filled = np.where(ok, x, 0.0)
    num = np.einsum("rsb,bs->rb", filled @ case_w.T, seed_w, optimize=True)
    den = np.einsum("rsb,bs->rb", ok.astype(np.float64) @ case_w.T, seed_w, optimize=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def rank_columns(values: np.ndarray, higher: bool) -> np.ndarray:
    """Ranks (1 = best, ties share the best rank) down axis 0; NaN ranks last. 1 + the number of rows
    strictly better: O(R²·B) comparisons, cheaper than a sort for the few rows of a table."""
    v = np.where(np.isfinite(values), values, -np.inf if higher else np.inf)
    better = v[None, :, :] > v[:, None, :] if higher else v[None, :, :] < v[:, None, :]
    return 1 + better.sum(axis=1)


def kendall_tau_b(ranks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """τ_b between each column of ``ranks`` ``(R, B)`` and ``reference`` ``(R,)``, vectorised over pairs."""
    i, j = np.triu_indices(len(reference), k=1)
    a = np.sign(ranks[i] - ranks[j])            # (P, B)
    b = np.sign(reference[i] - reference[j])    # (P,)
    num = (a * b[:, None]).sum(axis=0)
    den = np.sqrt(np.abs(a).sum(axis=0) * np.abs(b).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, math.nan)


def rank_stability(x: np.ndarray, labels: list[str], higher: bool, n_resamples: int = 2000,
                   seed: int | tuple = 0, tau: bool = True) -> RankStability | None:
    """Bootstrap ranks of the rows of ``x`` ``(R, S, C)`` (see the module docstring); None for < 2 rows.
    ``tau=False`` skips Kendall's τ (NaN) when only the rank percentiles are wanted."""
    x = np.asarray(x, dtype=np.float64)
    r, s, c = x.shape
    if r < 2 or s == 0 or c == 0:
        return None
    rng = np.random.default_rng(seed)
    seed_w = resample_counts(rng, n_resamples, s)
    case_w = resample_counts(rng, n_resamples, c)
    full = rank_columns(resampled_means(x, np.ones((1, s)), np.ones((1, c))), higher)[:, 0]
    ranks = rank_columns(resampled_means(x, seed_w, case_w), higher)
    flat = (ranks - 1) + r * np.arange(r)[:, None]
    counts = np.bincount(flat.ravel(), minlength=r * r).reshape(r, r)
    cum = np.cumsum(counts, axis=1)
    # inverted-CDF percentiles: the smallest rank whose cumulative share reaches q
    p05, p50, p95 = (1 + (cum < q * n_resamples).sum(axis=1) for q in (0.05, 0.5, 0.95))
    finite = kendall_tau_b(ranks, full) if tau else np.array([])
    finite = finite[np.isfinite(finite)]
    t05, t95 = (np.percentile(finite, [5, 95]) if finite.size else (math.nan, math.nan))
    return RankStability(labels, full, counts, p05, p50, p95,
                         float(finite.mean()) if finite.size else math.nan, float(t05), float(t95), n_resamples, s, c)


def _none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 6)
