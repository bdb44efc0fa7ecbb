"""Per-case files in the comparison: reading, pairing by case id, the refusals, and the two-level
statistics that replace the per-run ones when every run of a table has per-case data."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

import compare
from reporting.collect import collect_runs
from reporting.leaderboard import build_leaderboard

from .conftest import case_values, write_cases


def _lb(root, **kw):
    return build_leaderboard(collect_runs([root]).runs, **kw)


def _row(lb, loss):
    return lb.table.set_index("loss").loc[loss]


def test_case_unit_row_values_tests_and_effects(case_sweep):
    lb = _lb(case_sweep, resamples=500)
    ce, dice, focal = _row(lb, "ce"), _row(lb, "dice"), _row(lb, "focal")
    x_ce = np.stack([case_values("ce", s) for s in (1, 2, 3)])
    x_dice = np.stack([case_values("dice", s) for s in (1, 2, 3)])
    assert (ce["miou_unit"], ce["miou_n"], ce["miou_n_cases"]) == ("case", 3, 40)
    assert ce["miou_mean"] == pytest.approx(x_ce.mean(), abs=1e-6)  # mean over cases per seed, then over seeds
    assert ce["miou_std"] == pytest.approx(x_ce.mean(axis=1).std(ddof=1), abs=1e-6)
    assert 0 <= ce["miou_ci_low"] < ce["miou_mean"] < ce["miou_ci_high"] <= 1
    # metrics without a per-case column stay per run
    assert ce["small_recall_lt16_unit"] == "seed" and ce["iou_rare_unit"] == "case"
    # paired per case, averaged over the seeds: Wilcoxon against scipy, PS by hand, Holm against statsmodels
    d = (x_dice - x_ce).mean(axis=0)
    assert dice["miou_delta"] == pytest.approx(d.mean(), abs=1e-6)
    assert dice["miou_p_wilcoxon"] == pytest.approx(sps.wilcoxon(d).pvalue, rel=1e-3)
    assert dice["miou_prob_superiority"] == pytest.approx((d > 0).mean())
    ps = [dice["miou_p_wilcoxon"], focal["miou_p_wilcoxon"]]
    assert [dice["miou_p_wilcoxon_holm"], focal["miou_p_wilcoxon_holm"]] == pytest.approx(
        multipletests(ps, method="holm")[1])
    # a true 0.05 gain over 40 cases: the per-case Wilcoxon finds it; the two-level t test (which also
    # counts the seed-to-seed spread of 3 seeds) agrees with its own interval
    assert dice["miou_p_wilcoxon_holm"] < 0.001 and dice["miou_prob_superiority"] > 0.9 and math.isnan(ce["miou_p"])
    assert (dice["miou_p"] < 0.05) == (dice["miou_delta_ci_low"] > 0)
    assert dice["miou_delta_ci_low"] < 0.05 < dice["miou_delta_ci_high"]
    assert (dice["rank"], dice["miou_rank_p05"], dice["miou_rank_p95"]) == (1, 1, 1)


def test_missing_values_allowed_by_the_policy_are_left_out(case_sweep):
    lb = _lb(case_sweep, metrics=["miou", "hd95/1"], resamples=200)
    ce = _row(lb, "ce")
    x = np.stack([case_values("ce", s) for s in (1, 2, 3)])
    hd = np.where(x > 0.5, 3.0, np.nan)
    assert ce["hd95_1_unit"] == "case" and ce["hd95_1_mean"] == pytest.approx(np.nanmean(np.nanmean(hd, axis=1)))


def test_differing_case_ids_use_the_intersection_with_a_warning(case_sweep):
    run = case_sweep / "4"  # dice seed 2
    v = case_values("dice", 2)
    write_cases(run, {"miou": v[:-3], "dice_fg": v[:-3]}, ids=[f"img_{i:03d}" for i in range(37)])
    lb = _lb(case_sweep, metrics=["miou"], resamples=200)
    assert set(lb.table["miou_n_cases"]) == {37}
    warning = " ".join(lb.case_warnings)
    assert "4 (dice, seed 2)" in warning and "img_037, img_038, img_039 (3)" in warning and "37 cases" in warning


def test_runs_on_different_splits_are_refused(case_sweep):
    for num, h in (("0", "a" * 64), ("3", "b" * 64)):
        rec = json.loads((case_sweep / num / "metrics.json").read_text())
        rec["split"] = {"name": "default", "hash": h, "counts": {"test": 40}}
        (case_sweep / num / "metrics.json").write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="different splits") as err:
        _lb(case_sweep)
    assert "aaaaaaaaaaaaaaaa" in str(err.value) and "bbbbbbbbbbbbbbbb" in str(err.value)
    assert f"{case_sweep / '0'}" in str(err.value) and f"{case_sweep / '3'}" in str(err.value)


def test_nan_where_the_policy_forbids_it_names_every_run_and_case(case_sweep):
    for num in ("1", "5"):
        v = list(case_values("ce", 1))
        v[7] = float("nan")
        write_cases(case_sweep / num, {"miou": v, "dice/1": v})
    with pytest.raises(ValueError) as err:
        _lb(case_sweep)
    text = str(err.value)
    assert "2 unusable case file(s)" in text and "img_007" in text
    assert f"{case_sweep / '1'}" in text and f"{case_sweep / '5'}" in text and "'dice/1'" in text


def test_a_run_without_a_case_file_sends_its_table_back_to_per_run_statistics(case_sweep):
    (case_sweep / "2" / "test_cases.csv").unlink()
    rec = json.loads((case_sweep / "2" / "metrics.json").read_text())
    del rec["case_files"]
    (case_sweep / "2" / "metrics.json").write_text(json.dumps(rec))
    lb = _lb(case_sweep, resamples=200)
    assert set(lb.table["miou_unit"]) == {"seed"} and not lb.cases


def test_compare_cli_plans_and_writes_the_new_outputs(case_sweep, tmp_path, capsys):
    out = tmp_path / "out"
    assert compare.main([str(case_sweep), "--out", str(out), "--plan-delta", "0.02", "--resamples", "300",
                         "--no-plots"]) == 0
    stdout = capsys.readouterr().out
    assert "plan: synthetic_imbalanced · unet: Δ = 0.02 at power 0.8" in stdout and "cases needed" in stdout
    summary = json.loads((out / "summary.json").read_text())
    plan = summary["plan"]["tables"][0]
    assert plan["unit"] == "case" and plan["pilot_cases"] == 40 and plan["n_tests"] == 2
    assert summary["units"][0]["units"]["miou"] == "case" and summary["units"][0]["n_cases"] == 40
    assert summary["rank_stability"][0]["n_resamples"] == 300
    table = pd.read_csv(out / "leaderboard.csv")
    for col in ("miou_unit", "miou_p_wilcoxon", "miou_p_wilcoxon_holm", "miou_prob_superiority", "miou_rank_p05",
                "miou_rank_p95", "miou_n_cases"):
        assert col in table.columns, col
    md = (out / "leaderboard.md").read_text()
    assert "Unit `case`" in md and "Wilcoxon (cases) p" in md and "Rank stability of `miou`" in md
    assert "Planning" in (out / "report.html").read_text()


def test_case_scatter_and_rank_blob_plots(case_sweep, tmp_path):
    from PIL import Image

    from reporting import plots

    lb = _lb(case_sweep, metrics=["miou"], resamples=300)
    for path in (plots.case_scatter(lb, tmp_path), plots.rank_blobs(lb, tmp_path)):
        pixels = np.asarray(Image.open(path).convert("RGB"))
        assert pixels.shape[0] > 200 and (pixels.sum(-1) < 740).mean() > 0.02, path.name
