"""compare.py's intervals and tests against simulated truth and against the libraries.

    python benchmarks/compare_stats.py

1. Coverage: 2,000 samples of n seeds from a normal distribution; the share of 95 % intervals that
   contain the true mean — compare.py's t interval (default), scipy's BCa bootstrap (the ``--ci bca``
   option; measured here to decide from how many seeds it is offered) and the percentile bootstrap
   compare.py used before (for reference).
   The same for the paired Δ (two losses sharing a per-seed effect).
2. Paired tests: compare.py's p-values against ``scipy.stats.ttest_rel`` / ``wilcoxon``, Holm against
   statsmodels.
3. Bounded per-run intervals: the t interval on the logit scale (scores in [0, 1]) on beta-distributed
   seeds, near the middle and near the bounds.
4. Two-level (seeds × cases) intervals on simulated sweeps with a seed effect, a case effect and noise:
   the crossed t interval compare.py uses, the same with plain Satterthwaite df, and the hierarchical
   percentile bootstrap (seeds and cases resampled jointly; 1,000 resamples) it does not use.
5. Family-wise error of Holm over 4 rows with no true difference (3 seeds × 40 cases): the two-level t
   test and the per-case Wilcoxon, with and without a seed effect per (loss, seed).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporting.hierarchical import crossed_interval, crossed_se, paired_se, satterthwaite  # noqa: E402
from reporting.stability import resample_counts, resampled_means  # noqa: E402
from reporting.stats import holm, logit_t_interval, paired_test, t_interval  # noqa: E402

N_SIM = 2_000
RESAMPLES = 2_000
BETAS = ((0.6, 0.03), (0.95, 0.03), (0.3, 0.15), (0.05, 0.04))
SCENARIOS = ((0.01, 0.1, 0.05), (0.03, 0.1, 0.05), (0.04, 0.04, 0.05), (0.05, 0.02, 0.05), (0.0, 0.15, 0.02),
             (0.02, 0.02, 0.1))


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
    bounded_coverage(rng)
    two_level_coverage(rng)
    family_wise_error(rng)


def bounded_coverage(rng: np.random.Generator) -> None:
    print(f"\nper-run interval of a score in [0, 1], t on the logit scale: coverage / share inside [0, 1] "
          f"({N_SIM} beta samples per cell; the plain t interval's share inside [0, 1] in brackets)")
    print(f"{'seeds':>5} | " + " | ".join(f"mean {m:.2f} sd {sd:.2f}" for m, sd in BETAS))
    for n in (2, 3, 5, 10):
        cells = []
        for mu, sd in BETAS:
            k = mu * (1 - mu) / sd ** 2 - 1
            x = rng.beta(mu * k, (1 - mu) * k, size=(N_SIM, n))
            low, high = logit_t_interval(x)
            tl, th = t_interval(x)
            cells.append(f"{((low <= mu) & (mu <= high)).mean():.3f} / {((low >= 0) & (high <= 1)).mean():.2f} "
                         f"({((tl >= 0) & (th <= 1)).mean():.2f})")
        print(f"{n:>5} | " + " | ".join(f"{c:>19}" for c in cells))


def _percentile_bootstrap(x: np.ndarray, rng: np.random.Generator, b: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    sw, cw = resample_counts(rng, b, x.shape[1]), resample_counts(rng, b, x.shape[2])
    means = resampled_means(x, sw, cw)  # (sims, B): every simulated row at once
    return np.percentile(means, 2.5, axis=1), np.percentile(means, 97.5, axis=1)


def two_level_coverage(rng: np.random.Generator) -> None:
    print(f"\ntwo-level interval of a row's mean, 95 % nominal: coverage over {N_SIM} simulated rows "
          "(bootstrap: 500 rows, 1,000 resamples); X = 0.7 + seed + case + noise (sd below)")
    print(f"{'seeds × cases':>13} | {'sd seed, case, noise':>20} | {'compare.py':>10} | {'Satterthwaite':>13} | "
          f"{'percentile bootstrap':>20}")
    for seeds, cases in ((3, 40), (5, 200), (2, 40), (10, 20)):
        for sv, su, se in SCENARIOS:
            x = (0.7 + rng.normal(0, sv, (N_SIM, seeds, 1)) + rng.normal(0, su, (N_SIM, 1, cases))
                 + rng.normal(0, se, (N_SIM, seeds, cases)))
            _, low, high = crossed_interval(x, 0.95, bounded=True)
            ours = ((low <= 0.7) & (0.7 <= high)).mean()
            mean, sd, _ = crossed_se(x)
            a = x.mean(-1).var(-1, ddof=1) / seeds
            b = x.mean(-2).var(-1, ddof=1) / cases
            q = sps.t.ppf(0.975, satterthwaite(a, seeds, b, cases))
            sat = ((mean - q * sd <= 0.7) & (0.7 <= mean + q * sd)).mean()
            bl, bh = _percentile_bootstrap(x[:500], rng)
            boot = ((bl <= 0.7) & (0.7 <= bh)).mean()
            print(f"{f'{seeds} × {cases}':>13} | {f'{sv}, {su}, {se}':>20} | {ours:10.3f} | {sat:13.3f} | {boot:20.3f}")


def family_wise_error(rng: np.random.Generator, n_sim: int = N_SIM) -> None:
    print(f"\nfamily-wise error of Holm (α = 0.05) over 4 rows vs a baseline, no true difference, 3 seeds × 40 "
          f"cases, {n_sim} families:")
    for seed_sd in (0.0, 0.005, 0.01, 0.02, 0.05):
        case = rng.normal(0, 0.1, (n_sim, 1, 1, 40))
        x = 0.6 + case + rng.normal(0, seed_sd, (n_sim, 5, 3, 1)) + rng.normal(0, 0.05, (n_sim, 5, 3, 40))
        d = x[:, 1:] - x[:, :1]
        delta, se = paired_se(d)
        p_t = 2 * sps.t.sf(np.abs(delta) / se, 2)  # compare.py's paired test: S - 1 df
        p_w = sps.wilcoxon(d.mean(axis=2), axis=-1).pvalue
        fwer_t = np.mean([(holm(p) < 0.05).any() for p in p_t])
        fwer_w = np.mean([(holm(p) < 0.05).any() for p in p_w])
        print(f"  seed effect sd {seed_sd:<5} (per loss and seed): two-level t {fwer_t:.3f} · per-case Wilcoxon {fwer_w:.3f}")
    print("  (the per-case Wilcoxon holds the trained models fixed: a seed shift of a whole row is a real difference to it)")


if __name__ == "__main__":
    main()
