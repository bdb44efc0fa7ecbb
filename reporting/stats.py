"""Statistics over seeds: summary with a bootstrap confidence interval, and a paired test.

Conventions (used by the leaderboard and stated in its header):

- ``std`` is the sample standard deviation (ddof=1); NaN for a single value.
- The confidence interval is the percentile bootstrap of the mean: with ``F`` the distribution of
  the mean of a resample (n draws with replacement), ``ci = [F⁻¹(α/2), F⁻¹(1-α/2)]`` where
  ``F⁻¹(q) = min{x : F(x) ≥ q}``. For the few seeds of a benchmark (n ≤ 8) ``F`` is computed
  *exactly* by enumerating every multiset of n draws with its multinomial probability, so the
  interval is deterministic and reproducible; above that, ``n_resamples`` seeded Monte Carlo
  resamples with the same quantile definition.
- The paired test compares a loss with the baseline on the same seeds (difference ``d = a - b``):
  Wilcoxon signed-rank (two-sided, exact for small n; zero differences dropped) with the
  matched-pairs rank-biserial correlation ``r = (R⁺ - R⁻) / (R⁺ + R⁻)`` as effect size, or the
  paired t-test (two-sided) with Cohen's ``d_z = mean(d) / std(d)``.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps
from scipy.special import gammaln

TESTS = ("wilcoxon", "t")
EXACT_BOOTSTRAP_MAX_N = 8


@dataclass(frozen=True)
class Summary:
    """Mean, sample std and bootstrap CI of the finite values among the inputs."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PairedResult:
    """A paired comparison ``a`` vs ``b``: n pairs, mean of ``a - b``, p-value and effect size."""

    test: str
    n: int
    mean_diff: float
    statistic: float
    p_value: float
    effect_size: float


def summarize(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 20_000,
              seed: int = 0) -> Summary:
    """Summary of the finite entries of ``values`` (NaNs, e.g. an empty size bucket, are skipped)."""
    x = _finite(values)
    if x.size == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1)) if x.size > 1 else math.nan
    low, high = bootstrap_ci(x, confidence, n_resamples, seed)
    return Summary(int(x.size), float(x.mean()), std, low, high)


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 20_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (exact for n ≤ 8, seeded Monte Carlo above)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"values must be a non-empty 1-D sequence of finite numbers, got {values!r}")
    alpha = 1.0 - confidence
    if x.size <= EXACT_BOOTSTRAP_MAX_N:
        means, probs = _exact_bootstrap_means(x)
    else:
        if n_resamples < 1:
            raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
        probs = np.full(n_resamples, 1.0 / n_resamples)
    return _weighted_quantile(means, probs, alpha / 2), _weighted_quantile(means, probs, 1 - alpha / 2)


def paired_test(a: Sequence[float], b: Sequence[float], test: str = "wilcoxon") -> PairedResult:
    """Two-sided paired test of ``a`` against ``b`` (same seeds, same order); NaN pairs dropped."""
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"a and b must be 1-D and of equal length, got shapes {a_arr.shape} and {b_arr.shape}")
    keep = np.isfinite(a_arr) & np.isfinite(b_arr)
    d = a_arr[keep] - b_arr[keep]
    n = int(d.size)
    if n < 2:
        return PairedResult(test, n, float(d.mean()) if n else math.nan, math.nan, math.nan, math.nan)
    mean_diff = float(d.mean())
    if np.all(d == 0):
        return PairedResult(test, n, 0.0, 0.0, 1.0, 0.0)
    if test == "t":
        sd = float(d.std(ddof=1))
        if sd == 0.0:
            # Identical non-zero differences: the limit of the t-test as the spread vanishes.
            return PairedResult(test, n, mean_diff, math.copysign(math.inf, mean_diff), 0.0,
                                math.copysign(math.inf, mean_diff))
        res = sps.ttest_rel(a_arr[keep], b_arr[keep])
        return PairedResult(test, n, mean_diff, float(res.statistic), float(res.pvalue), mean_diff / sd)
    res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return PairedResult(test, n, mean_diff, float(res.statistic), float(res.pvalue), rank_biserial(d))


def rank_biserial(d: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation of differences ``d`` (zeros dropped), in [-1, 1]."""
    x = np.asarray(d, dtype=np.float64)
    x = x[x != 0]
    if x.size == 0:
        return 0.0
    ranks = sps.rankdata(np.abs(x))
    r_plus, r_minus = ranks[x > 0].sum(), ranks[x < 0].sum()
    return float((r_plus - r_minus) / (r_plus + r_minus))


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
    return x[np.isfinite(x)]


def _exact_bootstrap_means(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every distinct resample (a multiset: how often each value is drawn) with its mean and probability."""
    counts, probs = _multisets(x.size)
    return counts @ x / x.size, probs


@functools.lru_cache(maxsize=EXACT_BOOTSTRAP_MAX_N)
def _multisets(n: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.array(list(itertools.combinations_with_replacement(range(n), n)), dtype=np.int64)
    counts = np.stack([(idx == j).sum(axis=1) for j in range(n)], axis=1)
    log_p = math.lgamma(n + 1) - gammaln(counts + 1).sum(axis=1) - n * math.log(n)
    return counts.astype(np.float64), np.exp(log_p)


def _weighted_quantile(values: np.ndarray, probs: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    cdf = np.cumsum(probs[order])
    # Tolerance for the rounding of the cumulative sum: F(x) = q exactly must select x.
    pos = int(np.searchsorted(cdf, q - 1e-12, side="left"))
    return float(values[order][min(pos, values.size - 1)])
