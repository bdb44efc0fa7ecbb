"""compare.py's statistics vs scipy: the exact bootstrap CI of a seed mean against
``scipy.stats.bootstrap`` (percentile, 9 999 resamples), and our paired tests against scipy's.

    python benchmarks/compare_stats.py

Prints, per number of seeds, time per CI (ours / scipy, and their ratio) and the largest CI
difference (both with 9 999 resamples where ours is not exact; ours is exact up to 8 seeds). Absolute times are noise on a shared machine; the ratio is what matters.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporting.stats import EXACT_BOOTSTRAP_MAX_N, bootstrap_ci, paired_test  # noqa: E402


def _best_time(fn, repeat: int = 5, number: int = 20) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'seeds':>5} | {'ours ms':>8} | {'scipy ms':>8} | {'scipy/ours':>10} | {'max |CI diff|':>13} | ours exact?")
    print("-" * 72)
    for n in (3, 5, 10, 20):
        x = rng.normal(0.6, 0.03, size=n)
        bootstrap_ci(x)  # warm the exact-enumeration cache, as a leaderboard with many cells does
        ours = _best_time(lambda: bootstrap_ci(x, n_resamples=9_999))
        ref = lambda: sps.bootstrap((x,), np.mean, method="percentile", n_resamples=9_999,  # noqa: E731
                                    random_state=0).confidence_interval
        theirs = _best_time(ref, number=5)
        ci, ref_ci = bootstrap_ci(x, n_resamples=9_999), ref()
        diff = max(abs(ci[0] - ref_ci.low), abs(ci[1] - ref_ci.high))
        print(f"{n:>5} | {ours * 1e3:8.3f} | {theirs * 1e3:8.3f} | {theirs / ours:10.1f} | {diff:13.5f} | {n <= EXACT_BOOTSTRAP_MAX_N}")

    a, b = rng.normal(0.62, 0.03, 5), rng.normal(0.60, 0.03, 5)
    ours_w, ref_w = paired_test(a, b).p_value, sps.wilcoxon(a, b).pvalue
    ours_t, ref_t = paired_test(a, b, test="t").p_value, sps.ttest_rel(a, b).pvalue
    print(f"\npaired tests, 5 seeds: Wilcoxon p ours {ours_w:.6f} scipy {ref_w:.6f}; "
          f"t p ours {ours_t:.6f} scipy {ref_t:.6f}")


if __name__ == "__main__":
    main()
