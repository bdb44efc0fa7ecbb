"""Rank stability: bootstrap ranks against a loop written out by hand, identical output for a fixed
seed, Kendall's τ_b against scipy, and the planner's formulas against a brute-force power."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from reporting.power import plan_cases, plan_seeds, power, variance_components
from reporting.stability import kendall_tau_b, rank_columns, rank_stability, resample_counts, resampled_means


def _sweep(rng, rows=5, seeds=3, cases=40, gap=0.01):
    case = rng.normal(0, 0.1, (1, 1, cases))
    return 0.6 + gap * np.arange(rows)[:, None, None] + case + rng.normal(0, 0.05, (rows, seeds, cases))


def test_resampled_means_equal_the_per_resample_loop():
    rng = np.random.default_rng(0)
    x = _sweep(rng)
    x[1, 0, 3] = np.nan  # a missing cell carries no weight
    g = np.random.default_rng(1)
    sw, cw = resample_counts(g, 50, 3), resample_counts(g, 50, 40)
    fast = resampled_means(x, sw, cw)
    for b in range(50):
        w = sw[b][:, None] * cw[b][None, :]
        for r in range(5):
            ok = np.isfinite(x[r])
            assert fast[r, b] == pytest.approx((np.where(ok, x[r], 0) * w).sum() / (w * ok).sum())
    assert sw.sum(axis=1).tolist() == [3] * 50 and cw.sum(axis=1).tolist() == [40] * 50


def test_rank_stability_is_identical_for_a_fixed_seed_and_orders_clear_gaps():
    x = _sweep(np.random.default_rng(2), gap=0.03)
    labels = [f"l{i}" for i in range(5)]
    a = rank_stability(x, labels, higher=True, n_resamples=1000, seed=(0, 4))
    b = rank_stability(x, labels, higher=True, n_resamples=1000, seed=(0, 4))
    assert a.summary() == b.summary() and (a.counts == b.counts).all()
    assert a.full_rank.tolist() == [5, 4, 3, 2, 1] and a.counts.sum(axis=1).tolist() == [1000] * 5
    assert a.tau_mean > 0.9 and a.p05[4] == 1
    close = rank_stability(_sweep(np.random.default_rng(2), gap=0.0), labels, True, 1000, seed=0)
    assert close.tau_mean < a.tau_mean and (close.p95 - close.p05).max() >= 2  # no gap: ranks wander
    lower = rank_stability(x, labels, higher=False, n_resamples=200, seed=0)
    assert lower.full_rank.tolist() == [1, 2, 3, 4, 5]


def test_ranks_and_kendall_tau_match_scipy():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(6, 40)).round(1)
    assert (rank_columns(v, True) == sps.rankdata(-v, axis=0, method="min")).all()
    ref = rank_columns(v[:, :1], True)[:, 0]
    ranks = rank_columns(v, True)
    taus = kendall_tau_b(ranks, ref)
    assert taus == pytest.approx([sps.kendalltau(ranks[:, b], ref).statistic for b in range(40)])


def test_planner_components_and_sample_sizes():
    rng = np.random.default_rng(4)
    d = 0.02 + rng.normal(0, 0.01, (5, 1)) + rng.normal(0, 0.05, (1, 400)) + rng.normal(0, 0.03, (5, 400))
    s2, c2, e2 = variance_components(d)
    assert math.sqrt(c2) == pytest.approx(0.05, rel=0.1) and math.sqrt(e2) == pytest.approx(0.03, rel=0.05)
    plan = plan_cases([d], delta=0.02, target=0.8, alpha=0.05, n_tests=2)
    comps = (s2, c2, e2)
    for seeds, cases in plan["cases_needed"].items():
        if cases is not None:  # the smallest design with the power: one case fewer falls short
            assert power(0.02, comps, int(seeds), cases, 0.025) >= 0.8 - 1e-9
            assert power(0.02, comps, int(seeds), cases - 1, 0.025) < 0.8 or cases == 2
    n = plan["seeds_needed_at_pilot_cases"]
    assert power(0.02, comps, n, 400, 0.025) >= 0.8 > power(0.02, comps, n - 1, 400, 0.025)
    se = math.sqrt(s2 / 5 + c2 / 400 + e2 / 2000)  # the two-level t test's power: noncentral t, S - 1 df
    crit = sps.t.ppf(1 - 0.0125, 4)
    assert plan["power_at_pilot"] == pytest.approx(sps.nct.sf(crit, 4, 0.02 / se) + sps.nct.cdf(-crit, 4, 0.02 / se))
    seeds = plan_seeds([rng.normal(0.02, 0.02, 3)], delta=0.02, target=0.8, alpha=0.05, n_tests=1)
    n = seeds["seeds_needed_at_pilot_cases"]
    sd = seeds["sigma_seed"]
    nc = 0.02 / (sd / math.sqrt(n))
    crit = sps.t.ppf(0.975, n - 1)
    assert sps.nct.sf(crit, n - 1, nc) >= 0.8 > sps.nct.sf(sps.t.ppf(0.975, n - 2), n - 2, 0.02 / (sd / math.sqrt(n - 1)))
