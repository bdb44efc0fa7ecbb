"""Statistics on hand-made numbers: exact bootstrap CIs, std, Wilcoxon / t p-values and effect sizes."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from reporting.stats import bootstrap_ci, paired_test, rank_biserial, summarize


def test_exact_bootstrap_ci_of_a_two_level_sample_is_the_binomial_quantile():
    # Resampling [0,0,0,0,1]: the mean is K/5 with K ~ Binomial(5, 0.2); P(K=0)=0.328 ≥ 0.025,
    # P(K≤2)=0.942 < 0.975 ≤ P(K≤3)=0.993 → CI [0, 0.6].
    assert bootstrap_ci([0, 0, 0, 0, 1]) == (0.0, 0.6)
    assert bootstrap_ci([0, 1]) == (0.0, 1.0)


@pytest.mark.parametrize("n,k", [(3, 1), (5, 2), (7, 3), (8, 1), (8, 5)])
def test_exact_bootstrap_matches_binomial_inverse_cdf(n, k):
    values = [1.0] * k + [0.0] * (n - k)
    dist = sps.binom(n, k / n)
    assert bootstrap_ci(values) == pytest.approx((dist.ppf(0.025) / n, dist.ppf(0.975) / n), abs=1e-12)
    assert bootstrap_ci(values, confidence=0.8) == pytest.approx((dist.ppf(0.1) / n, dist.ppf(0.9) / n), abs=1e-12)


def test_monte_carlo_bootstrap_above_eight_values_is_seeded_and_agrees_with_scipy():
    x = np.random.default_rng(3).normal(size=30)  # n > 8: Monte Carlo
    ours = bootstrap_ci(x, n_resamples=20_000, seed=0)
    assert ours == bootstrap_ci(x, n_resamples=20_000, seed=0)
    ref = sps.bootstrap((x,), np.mean, method="percentile", n_resamples=20_000, random_state=1).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high), abs=0.02)


def test_summarize_mean_sample_std_and_nan_skipping():
    s = summarize([0.60, 0.62, 0.61, 0.63, 0.59, float("nan"), None])
    assert (s.n, s.mean) == (5, pytest.approx(0.61))
    assert s.std == pytest.approx(math.sqrt(0.001 / 4))  # squared deviations sum to 0.001, ddof=1
    assert (s.ci_low, s.ci_high) == pytest.approx((0.598, 0.622))
    one = summarize([0.7])
    assert (one.n, one.mean, one.ci_low, one.ci_high) == (1, 0.7, 0.7, 0.7) and math.isnan(one.std)
    assert summarize([]).n == 0 and math.isnan(summarize([float("nan")]).mean)


def test_wilcoxon_exact_p_values_and_rank_biserial():
    all_up = paired_test([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert (all_up.n, all_up.mean_diff, all_up.p_value, all_up.effect_size) == (5, 3.0, pytest.approx(2 / 32), 1.0)
    # d = [1,-2,3,4,5]: W- = 2; subsets of {1..5} with rank sum ≤ 2 are {}, {1}, {2} → p = 2·3/32.
    one_down = paired_test([1, -2, 3, 4, 5], [0] * 5)
    assert one_down.p_value == pytest.approx(6 / 32)
    assert one_down.effect_size == pytest.approx((13 - 2) / 15)
    assert rank_biserial([-1, -2, 0]) == -1.0


def test_paired_t_p_value_and_cohens_dz():
    res = paired_test([1.0, 2.0, 3.0, 4.0, 5.0], [0.0] * 5, test="t")
    sd = math.sqrt(2.5)
    t = 3.0 / (sd / math.sqrt(5))
    assert res.statistic == pytest.approx(t)
    assert res.p_value == pytest.approx(2 * sps.t.sf(t, df=4)) and res.p_value == pytest.approx(0.013236, abs=1e-6)
    assert res.effect_size == pytest.approx(3.0 / sd)


def test_degenerate_pairs():
    same = paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert (same.p_value, same.effect_size, same.mean_diff) == (1.0, 0.0, 0.0)
    constant_shift = paired_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], test="t")
    assert constant_shift.p_value == 0.0 and constant_shift.effect_size == math.inf
    single = paired_test([1.0, float("nan")], [0.0, 0.0])
    assert single.n == 1 and math.isnan(single.p_value)


@pytest.mark.parametrize("call,match", [
    (lambda: bootstrap_ci([1, 2], confidence=1.5), "confidence must be in"),
    (lambda: bootstrap_ci([]), "non-empty"),
    (lambda: bootstrap_ci([1, float("nan")]), "finite"),
    (lambda: paired_test([1, 2], [1]), "equal length"),
    (lambda: paired_test([1, 2], [1, 2], test="anova"), "test must be one of"),
])
def test_bad_input_is_a_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
