"""Statistics against scipy/statsmodels and against simulated truth: intervals keep their coverage,
paired tests and Holm match the libraries, degenerate pairs give finite, documented answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from reporting.stats import BCA_MIN_N, holm, logit_t_interval, mean_ci, paired_test, rank_biserial, summarize, t_interval

N_SIM = 2_000


@pytest.mark.parametrize("n", [3, 5, 10])
def test_mean_interval_covers_the_true_mean_at_its_nominal_level(n):
    # 2,000 normal samples of n seeds: the 95 % interval must contain the true mean ≥ 93 % of the time
    # (binomial SE at 95 % is 0.5 %). The old percentile bootstrap covered 75 % at n = 3.
    x = np.random.default_rng(n).normal(0.6, 0.03, size=(N_SIM, n))
    low, high = t_interval(x, 0.95)
    coverage = float(((low <= 0.6) & (0.6 <= high)).mean())
    assert coverage >= 0.93, coverage
    assert coverage <= 0.97, coverage  # not trivially wide either


@pytest.mark.parametrize("n", [3, 5, 10])
def test_paired_delta_interval_covers_the_true_difference(n):
    rng = np.random.default_rng(100 + n)
    seed_effect = rng.normal(0.0, 0.05, size=(N_SIM, n))  # shared by both losses on a seed: pairing matters
    a = 0.62 + seed_effect + rng.normal(0, 0.01, size=(N_SIM, n))
    b = 0.60 + seed_effect + rng.normal(0, 0.01, size=(N_SIM, n))
    low, high = t_interval(a - b, 0.95)
    coverage = float(((low <= 0.02) & (0.02 <= high)).mean())
    assert 0.93 <= coverage <= 0.97, coverage
    for i in range(5):  # paired_test reports exactly this interval
        res = paired_test(a[i], b[i])
        assert (res.ci_low, res.ci_high) == pytest.approx((low[i], high[i]))


def test_t_interval_matches_scipy_and_single_values_have_none():
    x = [0.61, 0.64, 0.58]
    ref = sps.t.interval(0.9, df=2, loc=np.mean(x), scale=sps.sem(x))
    assert mean_ci(x, 0.9)[:2] == pytest.approx(ref)
    s = summarize([0.60, 0.62, 0.61, 0.63, 0.59, float("nan"), None])
    assert (s.n, s.mean, s.method) == (5, pytest.approx(0.61), "t")
    assert s.std == pytest.approx(math.sqrt(0.001 / 4))
    one = summarize([0.7])
    assert one.n == 1 and one.mean == 0.7 and math.isnan(one.ci_low) and math.isnan(one.std)
    assert summarize([]).n == 0 and summarize([0.5, 0.5]).ci_low == 0.5  # no spread: [mean, mean]


def test_bca_option_is_scipys_bca_from_twenty_values_and_t_below():
    x = np.random.default_rng(0).normal(size=BCA_MIN_N)
    low, high, used = mean_ci(x, method="bca")
    ref = sps.bootstrap((x,), np.mean, method="BCa", n_resamples=9_999, rng=np.random.default_rng(0)).confidence_interval
    assert used == "bca" and (low, high) == pytest.approx((ref.low, ref.high))
    assert mean_ci(x[: BCA_MIN_N - 1], method="bca")[2] == "t"


def test_paired_t_and_wilcoxon_match_scipy():
    a = np.array([0.65, 0.66, 0.64, 0.70, 0.60])
    b = np.array([0.60, 0.62, 0.61, 0.63, 0.59])
    t = paired_test(a, b, "t")
    ref = sps.ttest_rel(a, b)
    d = a - b
    assert (t.statistic, t.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    assert t.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    w = paired_test(a, b, "wilcoxon")
    assert w.p_value == pytest.approx(sps.wilcoxon(a, b).pvalue) and w.p_value == pytest.approx(2 / 32)
    assert w.effect_size == 1.0 and rank_biserial([1, -2, 3, 4, 5]) == pytest.approx(11 / 15)


@pytest.mark.parametrize("test", ["t", "wilcoxon"])
def test_degenerate_pairs_never_give_p_zero_or_infinite_effect(test):
    same = paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7], test)
    assert (same.mean_diff, same.ci_low, same.ci_high, same.p_value, same.effect_size, same.degenerate) == (
        0.0, 0.0, 0.0, 1.0, 0.0, "no difference")
    # A constant shift (zero spread of d): t is undefined; the exact sign test says what 3 seeds can: p = 2/2³.
    shift = paired_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], test)
    assert shift.p_value == pytest.approx(0.25) and math.isnan(shift.effect_size) and shift.degenerate == "no spread"
    assert (shift.ci_low, shift.ci_high) == (1.0, 1.0)
    # Float noise around a constant shift (what made p = 1e-31 and d_z = 1.6e15) is the same case.
    b = np.array([0.3, 0.4, 0.5])
    noisy = paired_test(b + 0.05 + np.array([0, 1e-17, -1e-17]), b, test)
    assert noisy.degenerate == "no spread" and noisy.p_value == pytest.approx(0.25)
    # Noise on equal values counts as no difference.
    assert paired_test(b + np.array([1e-12, 0, -1e-12]), b, test).degenerate == "no difference"
    single = paired_test([1.0, float("nan")], [0.0, 0.0], test)
    assert single.n == 1 and math.isnan(single.p_value)


def test_holm_matches_statsmodels_and_skips_missing_p():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    expected = multipletests(p[np.isfinite(p)], method="holm")[1]
    out = holm(p)
    assert np.isnan(out[3]) and out[np.isfinite(p)] == pytest.approx(expected)
    assert out[:3] == pytest.approx([0.04, 0.09, 0.09])  # by hand: 4·0.01, max(3·0.03, 0.04), 2·0.04 → 0.09
    assert np.isnan(holm([np.nan])).all()


@pytest.mark.parametrize("call,match", [
    (lambda: mean_ci([1, 2], confidence=1.5), "confidence must be in"),
    (lambda: mean_ci([]), "non-empty"),
    (lambda: mean_ci([1, float("nan")]), "finite"),
    (lambda: mean_ci([1, 2], method="percentile"), "ci method must be one of"),
    (lambda: paired_test([1, 2], [1]), "equal length"),
    (lambda: paired_test([1, 2], [1, 2], test="anova"), "test must be one of"),
])
def test_bad_input_is_a_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("mu,sd", [(0.6, 0.03), (0.95, 0.03), (0.05, 0.04)])
def test_bounded_interval_stays_in_0_1_and_keeps_its_coverage(mu, sd):
    # beta-distributed scores of 3 seeds: the logit-scale t interval covers the true mean ≥ 93 % and never
    # leaves [0, 1]; the plain t interval near a bound leaves it most of the time
    k = mu * (1 - mu) / sd ** 2 - 1
    x = np.random.default_rng(int(mu * 100)).beta(mu * k, (1 - mu) * k, size=(N_SIM, 3))
    low, high = logit_t_interval(x)
    assert 0.93 <= float(((low <= mu) & (mu <= high)).mean()) <= 0.97
    assert (low >= 0).all() and (high <= 1).all() and (low <= x.mean(axis=1)).all()
    s = summarize([0.2, 0.9, 0.99], bounded=True)
    assert s.method == "t-logit" and 0 <= s.ci_low < s.mean < s.ci_high <= 1
    assert summarize([12.0, 15.0, 11.0], bounded=True).method == "t"  # not a score: the plain t interval
