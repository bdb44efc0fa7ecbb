"""Two-level statistics for a seeds × cases design: every seed of a row is scored on the same test cases.

A row's values form a matrix ``X[s, c]`` (seed s, test case c). The model behind the numbers is a
crossed design, ``X[s, c] = μ + v_s + u_c + e_sc``: a seed effect ``v`` (initialisation, data order), a
case effect ``u`` (some images are harder for every seed and every loss) and noise ``e``.

- **Row value** ``m``: the mean over cases per seed, then the mean over seeds (missing cells, e.g. an
  undefined ``hd95``, are left out of their seed's mean).
- **Interval of m** (``crossed_interval``): ``Var(m) = σ_v²/S + σ_u²/C + σ_e²/(SC)`` is estimated by
  ``s²(seed means)/S + s²(case means)/C`` — unbiased for the two main effects and conservative by
  ``σ_e²/(SC)`` (Owen 2007, "The pigeonhole bootstrap", shows the crossed bootstrap has the same
  bias) — with Welch–Satterthwaite degrees of freedom ``(A + B)² / (A²/(S−1) + B²/(C−1))``, so that 3
  seeds whose spread dominates get t(≈2) quantiles, and 200 cases that dominate get ≈ normal ones.
  A percentile bootstrap over 3 seeds cannot reach beyond the 3 seed means and covers ≈ 75 % when the
  seed effect dominates (benchmarks/results/compare_stats.txt), which is why it is not the interval.
  For **bounded** metrics (scores in [0, 1]) the interval is built on the logit scale (delta method,
  ``SE/(m(1−m))``) and mapped back, so it stays inside (0, 1).
  One seed: the seed term is unknown; the interval is over cases only (the report says so).
- **Paired differences** to the baseline use ``D = X_row − X_base`` on the seeds both rows completed,
  with the two-way ANOVA standard error ``(MS_seed + max(0, MS_case − MS_noise))/(SC)`` (``paired_se``)
  and ``S − 1`` degrees of freedom — the seeds are the replicates of a training recipe, and the case
  effect cancels in the pairing, so the seed term dominates ``D`` (the row interval's rule let Holm's
  family-wise error reach 0.10 there; its conservative SE left the test without power) — and the
  **two-level t test** ``Δ/SE`` on the same df, which agrees with the Δ interval (one seed: the row interval's
  SE and ``C − 1`` df, a statement about that one trained model). The **Wilcoxon signed-rank test** of
  the per-case differences averaged over those seeds treats the cases as the unit and the trained models
  as fixed: a seed-to-seed shift of the whole row moves every case the same way, so with a seed effect
  per (loss, seed) it rejects a true null far too often (benchmarks/results/compare_stats.txt); it
  answers "is this row better than the baseline on this test population, for these trained models". The
  effect is the probability of superiority, the share of cases on which the row beats the baseline (ties
  count half).

Everything is vectorised over leading axes (``(..., S, C)``), which the coverage simulations use.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

EPS = 1e-6  # bounded means are clipped to [EPS, 1 − EPS] before the logit


@dataclass(frozen=True)
class CaseSummary:
    """A row's two-level mean, the std of its seed means, and the interval of the mean."""

    n_seeds: int
    n_cases: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class CasePaired:
    """Row vs baseline on shared seeds and cases: Δ and its interval, the two-level t test's p (agrees
    with the interval), the Wilcoxon p on the case differences averaged over the seeds, its
    rank-biserial r, and the probability of superiority."""

    n_seeds: int
    n_cases: int
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    p_wilcoxon: float
    effect_size: float
    prob_superiority: float


def two_level_mean(x: np.ndarray) -> np.ndarray:
    """Mean over cases (last axis) per seed, then over seeds (second-to-last axis); NaN cells skipped."""
    with np.errstate(invalid="ignore"), _quiet():
        return np.nanmean(np.nanmean(x, axis=-1), axis=-1)


def crossed_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, SE, df)`` of the mean of ``x`` ``(..., S, C)`` (complete cells) under the crossed design."""
    x = np.asarray(x, dtype=np.float64)
    s, c = x.shape[-2], x.shape[-1]
    mean = x.mean(axis=(-2, -1))
    seed_var = x.mean(axis=-1).var(axis=-1, ddof=1) / s if s > 1 else np.zeros_like(mean)
    case_var = x.mean(axis=-2).var(axis=-1, ddof=1) / c if c > 1 else np.zeros_like(mean)
    df = np.where(seed_var >= case_var, max(s - 1, 1), satterthwaite(seed_var, s, case_var, c)) if s > 1 else c - 1
    return mean, np.sqrt(seed_var + case_var), df


def paired_se(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, SE)`` of the mean of paired differences ``d`` ``(..., S, C)`` (complete cells): the two-way
    ANOVA estimate ``(MS_seed + max(0, MS_case − MS_noise)) / (SC)`` — unbiased for
    ``σ²_seed/S + σ²_case/C + σ²_noise/(SC)``; with no case-by-loss effect it is the exact t statistic of
    the S per-seed mean differences."""
    d = np.asarray(d, dtype=np.float64)
    s, c = d.shape[-2], d.shape[-1]
    mean = d.mean(axis=(-2, -1))
    a, b = d.mean(axis=-1), d.mean(axis=-2)
    ms_seed = c * a.var(axis=-1, ddof=1) if s > 1 else np.zeros_like(mean)
    ms_case = s * b.var(axis=-1, ddof=1) if c > 1 else np.zeros_like(mean)
    if s > 1 and c > 1:
        resid = d - a[..., :, None] - b[..., None, :] + mean[..., None, None]
        ms_noise = (resid ** 2).sum(axis=(-2, -1)) / ((s - 1) * (c - 1))
    else:
        ms_noise = np.zeros_like(mean)
    return mean, np.sqrt((ms_seed + np.maximum(0.0, ms_case - ms_noise)) / (s * c))


def crossed_interval(x: np.ndarray, confidence: float = 0.95,
                     bounded: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, low, high)`` for ``x`` of shape ``(..., S, C)`` without missing cells (module docstring)."""
    mean, se, df = crossed_se(x)
    q = t_quantile(confidence, df)
    if not bounded:
        return mean, mean - q * se, mean + q * se
    m = np.clip(mean, EPS, 1 - EPS)
    centre = np.log(m / (1 - m))
    half = q * se / (m * (1 - m))
    low, high = _expit(centre - half), _expit(centre + half)
    flat = se == 0  # no spread at all: [mean, mean] even at 0 or 1
    return mean, np.where(flat, mean, low), np.where(flat, mean, high)


def satterthwaite(a: np.ndarray, s: int, b: np.ndarray, c: int) -> np.ndarray:
    """Welch–Satterthwaite degrees of freedom of ``a + b`` with ``s − 1`` and ``c − 1`` df."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    den = (a * a / (s - 1) if s > 1 else 0.0) + (b * b / (c - 1) if c > 1 else 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = (a + b) ** 2 / den
    return np.where(np.isfinite(df) & (df > 0), df, max(s - 1, c - 1, 1))


def t_quantile(confidence: float, df: np.ndarray | float) -> np.ndarray:
    return sps.t.ppf(0.5 + confidence / 2, df)


def summarize_cases(x: np.ndarray, confidence: float = 0.95, bounded: bool = False) -> CaseSummary:
    """Two-level summary of one row's ``(S, C)`` matrix (seeds it completed × shared cases).

    Cells missing by the empty-reference policy (NaN) are left out of the mean; the interval then uses
    the cases that are defined for every seed.
    """
    x = np.asarray(x, dtype=np.float64)
    s, c = x.shape
    if s == 0 or c == 0:
        return CaseSummary(s, c, math.nan, math.nan, math.nan, math.nan)
    mean = float(two_level_mean(x))
    seed_means = np.nanmean(x, axis=1) if s else np.array([])
    std = float(seed_means.std(ddof=1)) if s > 1 else math.nan
    full = x[:, np.isfinite(x).all(axis=0)]
    if full.shape[1] < 2:
        return CaseSummary(s, int(np.isfinite(x).any(axis=0).sum()), mean, std, math.nan, math.nan)
    _, low, high = crossed_interval(full, confidence, bounded)
    if np.isnan(x).any():  # centre the interval on the reported mean; its width from the complete cases
        shift = mean - float(full.mean())
        low, high = (np.clip(v + shift, 0, 1) if bounded else v + shift for v in (low, high))
    return CaseSummary(s, int(np.isfinite(x).any(axis=0).sum()), mean, std, float(low), float(high))


def paired_cases(row: np.ndarray, base: np.ndarray, higher: bool, confidence: float = 0.95,
                 tol: float = 1e-6) -> CasePaired:
    """``row`` vs ``base``, both ``(S, C)`` on the same seeds and cases (see the module docstring)."""
    d = np.asarray(row, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    s = d.shape[0]
    keep = np.isfinite(d).all(axis=0)
    d = d[:, keep]
    c = d.shape[1]
    if s == 0 or c == 0:
        return CasePaired(s, c, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    d[np.abs(d) <= tol] = 0.0
    delta = float(d.mean())
    low = high = p_t = math.nan
    if c > 1:
        _, se = paired_se(d) if s > 1 else crossed_se(d)[:2]
        se = 0.0 if float(np.ptp(d)) <= tol else float(se)  # float noise around one constant shift
        df = s - 1 if s > 1 else c - 1
        q = float(t_quantile(confidence, df))
        low, high = delta - q * float(se), delta + q * float(se)
        if se > 0:
            p_t = float(2 * sps.t.sf(abs(delta) / float(se), df))
        else:  # every difference equal: 0 → no difference; else the exact sign test over the cases, never p = 0
            p_t = 1.0 if delta == 0 else min(1.0, 2 * 0.5 ** c)
    per_case = d.mean(axis=0)
    per_case[np.abs(per_case) <= tol] = 0.0
    better = per_case > 0 if higher else per_case < 0
    ps = float((better.sum() + 0.5 * (per_case == 0).sum()) / c)
    if not per_case.any():
        p, r = 1.0, 0.0
    else:
        p = float(sps.wilcoxon(per_case, zero_method="wilcox", alternative="two-sided").pvalue)
        nz = per_case[per_case != 0]
        ranks = sps.rankdata(np.abs(nz))
        r = float((ranks[nz > 0].sum() - ranks[nz < 0].sum()) / ranks.sum())
    return CasePaired(s, c, delta, low, high, p_t, p, r, ps)


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class _quiet:
    """Silence numpy's "mean of empty slice" for all-missing seeds (they come out NaN, as intended)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
