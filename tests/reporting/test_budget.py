"""Convergence rule, rank by epoch and Kendall τ on hand-made curves."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from reporting.budget import budget_rows, carried_best, converged, nanmean0, running_best


@pytest.mark.parametrize("values,expected", [
    ([0.1, 0.3, 0.5, 0.6, 0.6, 0.605, 0.6, 0.6], True),    # last 2 epochs improve the best by 0.005 ≤ 0.01
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], False),     # still climbing
    ([0.5, 0.6, 0.55], True),                              # E = 3: last epoch vs the best of the first two
    ([0.5, 0.62], False),
    ([0.5], None),                                         # one epoch: cannot tell
    ([0.5, None, None, None], False),                      # the end of the curve is missing (NaN metric)
])
def test_convergence_rule(values, expected):
    arr = np.array([math.nan if v is None else v for v in values])
    assert converged(arr, higher=True) is expected


def test_early_stopping_counts_as_converged_and_lower_is_better_uses_a_relative_tolerance():
    assert converged(np.array([0.1, 0.2, 0.3, 0.9]), True, early_stopped=True) is True
    assert converged(None, True) is None
    assert converged(np.array([20.0, 10.0, 9.0, 8.95]), higher=False) is True   # 0.05 mm ≤ 1 % of 9 mm
    assert converged(np.array([20.0, 10.0, 9.0, 7.0]), higher=False) is False


def test_rank_by_epoch_uses_the_best_so_far_and_kendall_tau_matches_scipy():
    # a: fast then flat; b: slow starter that overtakes; c: steady middle; d stopped early after 2 epochs.
    rows = {("a", ""): [np.array([0.5, 0.6, 0.6, 0.6])],
            ("b", ""): [np.array([0.1, 0.3, 0.5, 0.7]), np.array([0.1, 0.3, 0.6, 0.7])],
            ("c", ""): [np.array([0.3, 0.4, 0.5, 0.55])],
            ("d", "x=1"): [np.array([0.2, 0.45])]}
    out, tau = budget_rows({"datamodule": "dm", "model": "m", "settings": ""}, rows, higher=True)
    by = {(r["loss"], r["epoch"]): r for r in out}
    assert by[("b", 3)]["mean"] == pytest.approx(0.55) and by[("d", 4)]["mean"] == pytest.approx(0.45)
    assert [by[(k, 2)]["rank"] for k in "abcd"] == [1, 4, 3, 2]
    assert [by[(k, 4)]["rank"] for k in "abcd"] == [2, 1, 3, 4]
    ref = sps.kendalltau([1, 4, 3, 2], [2, 1, 3, 4])
    assert (tau["epoch_half"], tau["epoch_final"], tau["n_rows"]) == (2, 4, 4)
    assert tau["kendall_tau"] == pytest.approx(ref.statistic) and tau["p"] == pytest.approx(ref.pvalue)
    assert by[("d", 1)]["loss_params"] == "x=1"
    assert list(running_best(np.array([math.nan, 0.2, 0.1, 0.3]), True)[1:]) == [0.2, 0.2, 0.3]


def test_csv_fallback_leaves_out_the_final_evaluation_of_the_best_checkpoint(tmp_path):
    from reporting.budget import curve
    from reporting.collect import read_run

    from .conftest import seg_metrics, write_run

    run_dir = write_run(tmp_path / "0", loss="ce", seed=1, metrics=seg_metrics(0.5, 0.2), curves=False)
    (run_dir / "csv").mkdir()
    # 3 epochs of fitting, then trainer.validate(best checkpoint) logs once more under epoch 3
    (run_dir / "csv" / "metrics.csv").write_text("epoch,step,val/miou\n0,9,0.1\n1,19,0.3\n2,29,0.5\n3,29,0.5\n")
    values = curve(read_run(run_dir), "val/miou")
    assert list(values) == [0.1, 0.3, 0.5]
    assert converged(values, True) is False


def test_carried_best_keeps_every_seed_at_every_epoch():
    """The learning-curve mean must not jump when a seed stops early: a stopped run keeps its best."""
    curves = [np.array([0.2, 0.6, 0.5]), np.array([0.1, 0.3, 0.4, 0.7, 0.65]), np.array([float("nan"), 0.2])]
    stack = carried_best(curves, higher=True)
    assert stack.shape == (3, 5)
    np.testing.assert_allclose(stack[0], [0.2, 0.6, 0.6, 0.6, 0.6])  # stopped after 3 epochs at its best 0.6
    np.testing.assert_allclose(stack[1], [0.1, 0.3, 0.4, 0.7, 0.7])
    np.testing.assert_allclose(stack[2], [np.nan, 0.2, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(nanmean0(stack)[-1], (0.6 + 0.7 + 0.2) / 3)  # all three seeds count at the end
    lower = carried_best([np.array([5.0, 3.0, 4.0])], higher=False, epochs=4)
    np.testing.assert_allclose(lower[0], [5.0, 3.0, 3.0, 3.0])
