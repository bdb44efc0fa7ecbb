"""Across tables: average ranks by hand, Friedman against scipy, Nemenyi against scikit-posthocs,
and the plain "too few blocks" verdict."""
from __future__ import annotations

import numpy as np
import pytest
import scikit_posthocs as skp
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from reporting.collect import collect_runs
from reporting.leaderboard import build_leaderboard
from reporting.ranks import across_tables

from .conftest import seg_metrics, write_run

# Mean mIoU per (datamodule, loss); one seed each, so the means are these numbers.
MEANS = {"d1": {"ce": 0.50, "dice": 0.60, "focal": 0.55, "lovasz": 0.58},
         "d2": {"ce": 0.40, "dice": 0.45, "focal": 0.42, "lovasz": 0.47},
         "d3": {"ce": 0.70, "dice": 0.72, "focal": 0.69, "lovasz": 0.71},
         "d4": {"ce": 0.30, "dice": 0.36, "focal": 0.31, "lovasz": 0.35},
         "d5": {"ce": 0.20, "dice": 0.26, "focal": 0.22, "lovasz": 0.21},
         "d6": {"ce": 0.10, "dice": 0.19, "focal": 0.12, "lovasz": 0.18}}


def _sweep(root, datasets, extra_loss_in=None):
    i = 0
    for dm in datasets:
        for loss, v in MEANS[dm].items():
            write_run(root / str(i), loss=loss, seed=1, datamodule=dm, metrics=seg_metrics(v, 0.2), curves=False)
            i += 1
        if dm == extra_loss_in:
            write_run(root / str(i), loss="mcc", seed=1, datamodule=dm, metrics=seg_metrics(0.99, 0.2), curves=False)
            i += 1
    return build_leaderboard(collect_runs([root]).runs)


def test_average_ranks_friedman_and_nemenyi_against_the_libraries(tmp_path):
    lb = _sweep(tmp_path, list(MEANS), extra_loss_in="d1")
    across = across_tables(lb)
    losses = ["ce", "dice", "focal", "lovasz"]
    matrix = np.array([[MEANS[dm][l] for l in losses] for dm in MEANS])
    ranks = sps.rankdata(-matrix, axis=1).mean(axis=0)
    got = across.ranks.set_index("loss")
    assert [got.loc[l, "avg_rank"] for l in losses] == pytest.approx(list(ranks))
    assert got.loc["dice", "n_blocks"] == 6 and got.loc["mcc", "n_blocks"] == 0  # mcc is in one table only
    ref = sps.friedmanchisquare(*matrix.T)
    assert (across.statistic, across.p) == pytest.approx((ref.statistic, ref.pvalue))
    nemenyi = skp.posthoc_nemenyi_friedman(matrix)
    assert across.posthoc.to_numpy() == pytest.approx(nemenyi.to_numpy())
    assert across.cd == pytest.approx(2.569 * np.sqrt(4 * 5 / 36), abs=2e-3)  # Demšar's q_0.05 for k = 4
    summary = across.friedman()
    assert summary["n_blocks"] == 6 and summary["metric"] == "miou" and summary["p"] == pytest.approx(ref.pvalue)
    assert "n_blocks = 6, 4 rows" in across.verdict and "1 row(s) not in every table are left out" in across.verdict


def test_pairwise_wilcoxon_with_holm_next_to_nemenyi_and_their_disagreements(tmp_path):
    across = across_tables(_sweep(tmp_path, list(MEANS)))
    pw = across.pairwise.set_index(["a", "b"])
    losses = ["ce", "dice", "focal", "lovasz"]
    matrix = {l: np.array([MEANS[dm][l] for dm in MEANS]) for l in losses}
    assert len(pw) == 6 and set(pw["n_blocks"]) == {6}
    # dice beats ce in all 6 tables: the exact two-sided p is 2/2⁶
    assert pw.loc[("ce", "dice"), "p_wilcoxon"] == pytest.approx(sps.wilcoxon(matrix["ce"] - matrix["dice"]).pvalue)
    assert pw.loc[("ce", "dice"), "p_wilcoxon"] == pytest.approx(2 / 64)
    raw = across.pairwise["p_wilcoxon"].to_numpy()
    assert across.pairwise["p_wilcoxon_holm"].to_numpy() == pytest.approx(multipletests(raw, method="holm")[1])
    nem = skp.posthoc_nemenyi_friedman(np.column_stack([matrix[l] for l in losses]))
    assert pw.loc[("ce", "dice"), "p_nemenyi"] == pytest.approx(nem.iloc[0, 1])
    expected = (pw["p_wilcoxon_holm"] < 0.05) != (pw["p_nemenyi"] < 0.05)
    assert (pw["disagree"] == expected).all()
    assert len(across.disagreements()) == int(expected.sum())


def test_two_datasets_are_too_few_blocks_and_the_report_says_so(tmp_path):
    across = across_tables(_sweep(tmp_path, ["d1", "d2"]))
    assert across.n_blocks == 2
    assert across.verdict.startswith("n_blocks = 2: too few blocks to conclude anything across datasets")
    one = across_tables(_sweep(tmp_path / "one", ["d1"]))
    assert one.verdict.startswith("n_blocks = 1: too few blocks") and one.friedman()["p"] is None
