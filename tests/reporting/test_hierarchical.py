"""Two-level (seeds × cases) statistics against simulated truth: interval coverage, intervals inside
[0, 1], Holm's family-wise error under the null, and the paired per-case tests against scipy."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from reporting.hierarchical import crossed_interval, paired_cases, paired_se, summarize_cases
from reporting.stats import holm

N_SIM = 2_000


def simulate(rng, n_sim, seeds, cases, mu=0.7, seed_sd=0.02, case_sd=0.1, noise_sd=0.05):
    """``X[sim, seed, case] = μ + seed effect + case effect + noise``: the crossed design of a sweep."""
    return (mu + rng.normal(0, seed_sd, (n_sim, seeds, 1)) + rng.normal(0, case_sd, (n_sim, 1, cases))
            + rng.normal(0, noise_sd, (n_sim, seeds, cases)))


@pytest.mark.parametrize("seeds,cases", [(3, 40), (5, 200)])
@pytest.mark.parametrize("seed_sd,case_sd,noise_sd", [(0.02, 0.1, 0.05), (0.04, 0.04, 0.05), (0.0, 0.15, 0.02)])
def test_interval_covers_the_true_mean(seeds, cases, seed_sd, case_sd, noise_sd):
    # 2,000 simulated rows per setting (binomial SE of the coverage ≈ 0.005): ≥ 0.93 at nominal 0.95,
    # and not trivially wide (≤ 0.99); the seed-dominated setting is the hard one at 3 seeds.
    rng = np.random.default_rng(seeds * 1000 + int(seed_sd * 100))
    x = simulate(rng, N_SIM, seeds, cases, 0.7, seed_sd, case_sd, noise_sd)
    _, low, high = crossed_interval(x, 0.95, bounded=True)
    coverage = float(((low <= 0.7) & (0.7 <= high)).mean())
    assert 0.93 <= coverage <= 0.99, coverage


def test_bounded_intervals_stay_inside_0_1_and_centre_on_the_mean():
    rng = np.random.default_rng(1)
    x = np.clip(simulate(rng, 500, 3, 40, mu=0.97, seed_sd=0.03, case_sd=0.05), 0, 1)
    mean, low, high = crossed_interval(x, 0.95, bounded=True)
    assert (low >= 0).all() and (high <= 1).all() and (low <= mean).all() and (mean <= high).all()
    _, tl, th = crossed_interval(x, 0.95, bounded=False)
    assert (th > 1).any()  # the plain t interval would have left the range
    s = summarize_cases(np.ones((3, 10)), bounded=True)  # every case perfect: no spread, [1, 1]
    assert (s.mean, s.ci_low, s.ci_high) == (1.0, 1.0, 1.0)
    two = summarize_cases(np.array([[0.1, 0.9], [0.2, 0.95]]), bounded=True)
    assert 0 <= two.ci_low < two.mean < two.ci_high <= 1


def _null_family(rng, n_sim, rows, seeds, cases, seed_sd):
    """p-values of ``rows`` losses vs a baseline, none better: a case effect shared by all, a seed effect per
    (loss, seed), noise. Vectorised as :func:`paired_cases` computes them (checked on a few families)."""
    case = rng.normal(0, 0.1, (n_sim, 1, 1, cases))
    x = 0.6 + case + rng.normal(0, seed_sd, (n_sim, rows + 1, seeds, 1)) + rng.normal(0, 0.05, (n_sim, rows + 1, seeds, cases))
    d = x[:, 1:] - x[:, :1]
    delta, se = paired_se(d)
    p_t = 2 * sps.t.sf(np.abs(delta) / se, seeds - 1)
    p_w = sps.wilcoxon(d.mean(axis=2), axis=-1).pvalue
    for i in range(3):
        ref = paired_cases(x[i, 1], x[i, 0], higher=True)
        assert (ref.p_value, ref.p_wilcoxon) == pytest.approx((p_t[i, 0], p_w[i, 0]))
    return p_t, p_w


def _fwer(p):
    return float(np.mean([(holm(row) < 0.05).any() for row in p]))


def test_holm_keeps_the_family_wise_error_under_the_null():
    # 4 losses vs a baseline, none better, 3 seeds × 40 cases, 2,000 families: Holm over the two-level t p
    # rejects any true null in ≤ 5 % of the families (+ 2 binomial SE), with or without a seed effect.
    # The per-case Wilcoxon holds too when there is no seed shift — its stated assumption.
    rng = np.random.default_rng(7)
    for sd in (0.01, 0.03):
        p_t, p_w = _null_family(rng, N_SIM, 4, 3, 40, seed_sd=sd)
        assert _fwer(p_t) <= 0.06, (sd, _fwer(p_t))
    p_t0, p_w0 = _null_family(rng, N_SIM, 4, 3, 40, seed_sd=0.0)
    assert _fwer(p_t0) <= 0.06 and _fwer(p_w0) <= 0.06, (_fwer(p_t0), _fwer(p_w0))
    assert _fwer(p_w) > 0.2  # documented: a seed shift per (loss, seed) is a real difference to the per-case test


def test_holm_equals_statsmodels_on_random_families():
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 17):  # few calls: statsmodels runs gc.collect() on each
        p = rng.uniform(0, 0.2, n) ** rng.uniform(0.5, 3, n)
        assert holm(p) == pytest.approx(multipletests(p, method="holm")[1], abs=1e-12)


def test_paired_cases_against_scipy_and_by_hand():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 0.8, (3, 30))
    row = base + 0.02 + rng.normal(0, 0.03, (3, 30))
    res = paired_cases(row, base, higher=True)
    d = (row - base).mean(axis=0)
    assert res.delta == pytest.approx(d.mean()) and res.p_wilcoxon == pytest.approx(sps.wilcoxon(d).pvalue)
    assert res.prob_superiority == pytest.approx((d > 0).mean())
    assert res.ci_low < res.delta < res.ci_high and (res.p_value < 0.05) == (res.ci_low > 0)
    lower = paired_cases(row, base, higher=False)  # distances: beating the baseline means being smaller
    assert lower.prob_superiority == pytest.approx(1 - res.prob_superiority)
    same = paired_cases(base, base, higher=True)
    assert (same.delta, same.p_value, same.p_wilcoxon, same.prob_superiority) == (0.0, 1.0, 1.0, 0.5)
    shift = paired_cases(base + 0.1, base, higher=True)  # the same Δ everywhere: sign test, never p = 0
    assert shift.p_value == pytest.approx(2 * 0.5 ** 30) and shift.prob_superiority == 1.0
