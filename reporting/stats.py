"""Statistics over seeds, built on ``scipy.stats`` and ``statsmodels`` (stated in every table header).

- ``std``: sample standard deviation (ddof=1); NaN for a single value.
- **CI of a row's mean** (default ``t``): Student-t interval ``mean ± t(1-α/2, n-1)·s/√n``. It keeps
  its nominal coverage for normal seed-to-seed noise at any n ≥ 2 (a percentile bootstrap over 3
  seeds is [min, max] and covers 75 %). For **bounded** metrics (scores in [0, 1]) the same interval is
  built on the logit scale (delta method: ``logit(mean) ± t·s/(√n·mean·(1 − mean))``, mapped back), so
  it stays inside (0, 1) — clipping a t interval would not keep its coverage (coverage by simulation in
  benchmarks/results/compare_stats.txt). ``bca``: ``scipy.stats.bootstrap`` BCa, 9 999 seeded
  resamples, used only from ``BCA_MIN_N`` = 20 values, where it covers 94 % of normal samples (at 10
  values it covers 90 %: benchmarks/results/compare_stats.txt); below that the t interval is used and
  the header says so. One value: no interval.
- **Paired comparison** with the baseline on the seeds both completed, ``d = a - b``: ``Δ = mean(d)``
  with the t interval of ``d`` as its CI; p from the paired t-test (``ttest_rel``, effect size
  Cohen's ``d_z = mean(d)/sd(d)``) or the Wilcoxon signed-rank test (exact, zeros dropped, effect
  size the matched-pairs rank-biserial ``r``).
- **Degenerate pairs**. Differences within ``1e-6 × scale`` (scale = max(1, largest |value|)) are
  float32 rounding, not information, and count as 0. Then: all ``d`` = 0 → Δ = 0, CI [0, 0], p = 1,
  effect 0 ("no difference"); every ``d`` equal but not 0 (no spread, the t statistic is undefined)
  → CI [Δ, Δ], p of the exact two-sided sign test ``2·0.5ⁿ`` (what the data can say: n seeds, all
  one way), effect NaN ("no spread"). Never p = 0 or an infinite effect size.
- **Holm**: the step-down adjustment of ``statsmodels.stats.multitest.multipletests(method="holm")``
  (computed here in numpy; tested equal) over the p-values of one
  table (one metric, one datamodule × model × settings); undefined p-values are left out of the family.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

TESTS = ("t", "wilcoxon")
CI_METHODS = ("t", "bca")
BCA_MIN_N = 20
BCA_RESAMPLES = 9_999
REL_TOL = 1e-6


@dataclass(frozen=True)
class Summary:
    """Mean, sample std and CI of the finite values among the inputs; ``method`` = the CI actually used."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    method: str


@dataclass(frozen=True)
class PairedResult:
    """``a`` vs ``b`` on n pairs: Δ = mean(a - b) with its CI, the test's statistic and p, effect size.
    ``degenerate`` is ``"no difference"``, ``"no spread"`` or ``None`` (see the module docstring)."""

    test: str
    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    effect_size: float
    degenerate: str | None = None


def t_interval(x: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Student-t CI of the mean along the last axis (vectorised); zero spread gives ``[mean, mean]``."""
    _check_confidence(confidence)
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    mean = x.mean(axis=-1)
    if n < 2:
        nan = np.full_like(mean, math.nan)
        return nan, nan
    half = _t_quantile(0.5 + confidence / 2, n - 1) * x.std(axis=-1, ddof=1) / math.sqrt(n)
    return mean - half, mean + half


@functools.lru_cache(maxsize=1024)
def _t_quantile(q: float, df: int) -> float:
    return float(sps.t.ppf(q, df))


def logit_t_interval(x: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The t interval of the mean of values in [0, 1] on the logit scale (delta method), along the last axis:
    always inside [0, 1]; zero spread gives ``[mean, mean]``."""
    x = np.asarray(x, dtype=np.float64)
    low, high = t_interval(x, confidence)
    mean = x.mean(axis=-1)
    m = np.clip(mean, 1e-6, 1 - 1e-6)
    half = (high - low) / 2 / (m * (1 - m))
    centre = np.log(m / (1 - m))
    flat = high == low
    return (np.where(flat, mean, 1 / (1 + np.exp(-(centre - half)))),
            np.where(flat, mean, 1 / (1 + np.exp(-(centre + half)))))


def mean_ci(values: Sequence[float], confidence: float = 0.95, method: str = "t",
            seed: int = 0, bounded: bool = False) -> tuple[float, float, str]:
    """CI of the mean of ``values`` (finite numbers) → (low, high, method used); ``bounded``: values in
    [0, 1], the t interval is taken on the logit scale (``t-logit``)."""
    if method not in CI_METHODS:
        raise ValueError(f"ci method must be one of {CI_METHODS}, got {method!r}")
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"values must be a non-empty 1-D sequence of finite numbers, got {values!r}")
    if method == "bca" and x.size >= BCA_MIN_N and np.ptp(x) > 0:
        res = sps.bootstrap((x,), np.mean, method="BCa", confidence_level=confidence, n_resamples=BCA_RESAMPLES,
                            vectorized=True, rng=np.random.default_rng(seed))
        return float(res.confidence_interval.low), float(res.confidence_interval.high), "bca"
    if bounded and x.min() >= 0 and x.max() <= 1:
        low, high = logit_t_interval(x, confidence)
        return float(low), float(high), "t-logit"
    low, high = t_interval(x, confidence)
    return float(low), float(high), "t"


def summarize(values: Sequence[float | None], confidence: float = 0.95, method: str = "t",
              bounded: bool = False) -> Summary:
    """Summary of the finite entries of ``values`` (NaNs, e.g. an empty size bucket, are skipped)."""
    x = _finite(values)
    if x.size == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, method)
    std = float(x.std(ddof=1)) if x.size > 1 else math.nan
    low, high, used = mean_ci(x, confidence, method, bounded=bounded)
    return Summary(int(x.size), float(x.mean()), std, low, high, used)


def paired_test(a: Sequence[float], b: Sequence[float], test: str = "t", confidence: float = 0.95) -> PairedResult:
    """Two-sided paired test of ``a`` against ``b`` (same seeds, same order); NaN pairs dropped."""
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"a and b must be 1-D and of equal length, got shapes {a_arr.shape} and {b_arr.shape}")
    keep = np.isfinite(a_arr) & np.isfinite(b_arr)
    a_arr, b_arr = a_arr[keep], b_arr[keep]
    n = int(a_arr.size)
    if n == 0:
        return PairedResult(test, 0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    d = a_arr - b_arr
    tol = REL_TOL * max(1.0, float(np.abs(a_arr).max()), float(np.abs(b_arr).max()))
    d[np.abs(d) <= tol] = 0.0
    mean_diff = float(d.mean())
    if n < 2:
        return PairedResult(test, n, mean_diff, math.nan, math.nan, math.nan, math.nan, math.nan)
    if not d.any():
        return PairedResult(test, n, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, "no difference")
    if float(np.ptp(d)) <= tol:
        k = int((d > 0).sum())
        p = float(sps.binomtest(k, n, 0.5).pvalue)
        return PairedResult(test, n, mean_diff, mean_diff, mean_diff, math.nan, p, math.nan, "no spread")
    low, high = t_interval(d, confidence)
    if test == "t":
        res = sps.ttest_1samp(d, 0.0)
        return PairedResult(test, n, mean_diff, float(low), float(high), float(res.statistic), float(res.pvalue),
                            mean_diff / float(d.std(ddof=1)))
    res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return PairedResult(test, n, mean_diff, float(low), float(high), float(res.statistic), float(res.pvalue),
                        rank_biserial(d))


def rank_biserial(d: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation of differences ``d`` (zeros dropped), in [-1, 1]."""
    x = np.asarray(d, dtype=np.float64)
    x = x[x != 0]
    if x.size == 0:
        return 0.0
    ranks = sps.rankdata(np.abs(x))
    r_plus, r_minus = ranks[x > 0].sum(), ranks[x < 0].sum()
    return float((r_plus - r_minus) / (r_plus + r_minus))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values; NaN entries stay NaN and are not part of the family.

    ``p_(i)·(m − i + 1)`` in ascending order, made monotone and capped at 1 — what
    ``statsmodels.stats.multitest.multipletests(method="holm")`` returns (tested against it), without its
    ``gc.collect()`` on every call, which cost 0.2 s per call in a large process.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, math.nan)
    ok = np.isfinite(p)
    if ok.any():
        q = p[ok]
        order = np.argsort(q, kind="stable")
        m = q.size
        adjusted = np.minimum(1.0, np.maximum.accumulate(q[order] * (m - np.arange(m))))
        result = np.empty(m)
        result[order] = adjusted
        out[ok] = result
    return out


def _finite(values: Sequence[float | None]) -> np.ndarray:
    x = np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
    return x[np.isfinite(x)]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
