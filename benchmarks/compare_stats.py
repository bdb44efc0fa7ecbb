"""compare.py's intervals and tests against simulated truth and against the libraries.

    python benchmarks/compare_stats.py

1. Coverage: 2,000 samples of n seeds from a normal distribution; the share of 95 % intervals that
   contain the true mean — compare.py's t interval (default), scipy's BCa bootstrap (the ``--ci bca``
   option; measured here to decide from how many seeds it is offered) and the percentile bootstrap
   compare.py used before (for reference).
   The same for the paired Δ (two losses sharing a per-seed effect).
2. Paired tests: compare.py's p-values against ``scipy.stats.ttest_rel`` / ``wilcoxon``, Holm against
   statsmodels.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporting.stats import holm, paired_test, t_interval  # noqa: E402

N_SIM = 2_000
RESAMPLES = 2_000


def _bootstrap_coverage(x: np.ndarray, truth: float, method: str) -> float:
    res = sps.bootstrap((x,), np.mean, axis=-1, vectorized=True, method=method, n_resamples=RESAMPLES,
                        batch=100, rng=np.random.default_rng(1))
    ci = res.confidence_interval
    return float(((ci.low <= truth) & (truth <= ci.high)).mean())


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"95 % interval coverage over {N_SIM} normal samples (binomial SE ≈ 0.005); bootstrap: {RESAMPLES} resamples")
    print(f"{'seeds':>5} | {'t (mean)':>8} | {'t (Δ)':>6} | {'BCa':>6} | {'percentile (old)':>16}")
    print("-" * 52)
    for n in (3, 5, 10, 20):
        x = rng.normal(0.6, 0.03, size=(N_SIM, n))
        low, high = t_interval(x)
        cov_t = float(((low <= 0.6) & (0.6 <= high)).mean())
        shared = rng.normal(0, 0.05, size=(N_SIM, n))
        d = (0.62 + shared + rng.normal(0, 0.01, (N_SIM, n))) - (0.60 + shared + rng.normal(0, 0.01, (N_SIM, n)))
        dl, dh = t_interval(d)
        cov_d = float(((dl <= 0.02) & (0.02 <= dh)).mean())
        bca = _bootstrap_coverage(x, 0.6, "BCa") if n >= 10 else float("nan")
        pct = _bootstrap_coverage(x, 0.6, "percentile")
        bca_text = f"{bca:6.3f}" if n >= 10 else "   n/a"
        print(f"{n:>5} | {cov_t:8.3f} | {cov_d:6.3f} | {bca_text} | {pct:16.3f}")
    print("(compare.py --ci bca uses BCa from 20 seeds on, the t interval below that.)")

    a, b = rng.normal(0.62, 0.03, 5), rng.normal(0.60, 0.03, 5)
    ours_w, ref_w = paired_test(a, b, "wilcoxon").p_value, sps.wilcoxon(a, b).pvalue
    ours_t, ref_t = paired_test(a, b, "t").p_value, sps.ttest_rel(a, b).pvalue
    print(f"\npaired tests, 5 seeds: Wilcoxon p ours {ours_w:.6f} scipy {ref_w:.6f}; "
          f"t p ours {ours_t:.6f} scipy {ref_t:.6f}")
    from statsmodels.stats.multitest import multipletests

    p = rng.uniform(0, 0.2, 14)
    print(f"Holm over 14 p-values: max |ours - statsmodels| = "
          f"{np.abs(holm(p) - multipletests(p, method='holm')[1]).max():.2e}")


if __name__ == "__main__":
    main()
