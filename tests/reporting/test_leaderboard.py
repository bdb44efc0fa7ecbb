"""Leaderboard on hand-made sweeps: rows, intervals, tests with Holm, no survivorship, robust input."""
from __future__ import annotations

import json
import math
import shutil
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from reporting.collect import collect_runs
from reporting.leaderboard import build_leaderboard
from reporting.markdown import describe, warnings, write_leaderboard

from .conftest import MIOU, curve_to, seg_metrics, write_run


def _runs(*dirs):
    return collect_runs(dirs).runs


def _row(lb, loss):
    rows = lb.table[lb.table["loss"] == loss]
    assert len(rows) == 1
    return rows.iloc[0]


def test_rows_counts_statistics_and_rank(sweep):
    lb = build_leaderboard(_runs(sweep))
    assert list(lb.table["loss"]) == ["ce", "dice", "focal"]
    assert lb.metrics == ["miou", "dice_fg", "iou_rare", "small_recall/lt16", "small_recall/16-64",
                          "small_recall/ge64"]
    dice, ce, focal = _row(lb, "dice"), _row(lb, "ce"), _row(lb, "focal")
    assert (dice["n_runs"], dice["n_failed"], focal["n_runs"], focal["n_failed"]) == (5, 0, 4, 1)
    assert dice["miou_mean"] == pytest.approx(statistics.mean(MIOU["dice"]))
    assert dice["miou_std"] == pytest.approx(statistics.stdev(MIOU["dice"]))
    # a score in [0, 1]: the t interval on the logit scale (delta method), mapped back
    m, half = np.mean(MIOU["ce"]), sps.t.ppf(0.975, 4) * sps.sem(MIOU["ce"])
    logit = math.log(m / (1 - m))
    ref = [1 / (1 + math.exp(-(logit + sign * half / (m * (1 - m))))) for sign in (-1, 1)]
    assert (ce["miou_ci_low"], ce["miou_ci_high"]) == pytest.approx(ref)
    assert ref[0] == pytest.approx(0.5902, abs=1e-4) and ce["miou_unit"] == "seed"
    assert [dice["rank"], ce["rank"], focal["rank"]] == [1, 2, 3]
    assert focal["seeds"] == "1 2 3 4" and focal["failed_seeds"] == "5" and focal["rank_seeds"] == 4


def test_paired_tests_delta_interval_and_holm_within_the_table(sweep):
    lb = build_leaderboard(_runs(sweep))
    dice, focal, ce = _row(lb, "dice"), _row(lb, "focal"), _row(lb, "ce")
    d = np.array(MIOU["dice"]) - np.array(MIOU["ce"])
    assert dice["miou_delta"] == pytest.approx(d.mean())
    assert (dice["miou_delta_ci_low"], dice["miou_delta_ci_high"]) == pytest.approx(
        sps.t.interval(0.95, df=4, loc=d.mean(), scale=sps.sem(d)))
    assert dice["miou_p"] == pytest.approx(sps.ttest_rel(MIOU["dice"], MIOU["ce"]).pvalue)
    assert focal["n_pairs"] == 4  # focal's failed seed 5 is not paired
    assert focal["miou_p"] == pytest.approx(sps.ttest_rel(MIOU["focal"][:4], MIOU["ce"][:4]).pvalue)
    holm = multipletests([dice["miou_p"], focal["miou_p"]], method="holm")[1]
    assert (dice["miou_p_holm"], focal["miou_p_holm"]) == pytest.approx(tuple(holm))
    assert pd.isna(ce["miou_p"]) and pd.isna(ce["miou_p_holm"]) and ce["n_pairs"] == 0


def test_wilcoxon_option_and_its_floor_is_stated(sweep):
    lb = build_leaderboard(_runs(sweep), test="wilcoxon")
    assert _row(lb, "dice")["miou_p"] == pytest.approx(0.0625) and _row(lb, "dice")["miou_effect"] == 1.0
    assert any("smallest possible two-sided Wilcoxon p is 0.0625" in line for line in describe(lb))


def test_a_failed_hardest_seed_does_not_buy_a_better_rank(tmp_path):
    # The repro: "lucky" equals ce on seeds 1-4 and failed seed 5, the hardest one for everyone.
    ce = [0.60, 0.61, 0.62, 0.63, 0.40]
    for seed, v in enumerate(ce, start=1):
        write_run(tmp_path / f"ce{seed}", loss="ce", seed=seed, metrics=seg_metrics(v, 0.2), curves=False)
        write_run(tmp_path / f"l{seed}", loss="lucky", seed=seed, metrics=None if seed == 5 else seg_metrics(v, 0.2),
                  error="RuntimeError: NaN" if seed == 5 else None, curves=False)
    lb = build_leaderboard(_runs(tmp_path))
    lucky, base = _row(lb, "lucky"), _row(lb, "ce")
    assert lucky["miou_mean"] > base["miou_mean"]  # the naive mean would rank it first
    assert lucky["rank"] == base["rank"] == 1 and lucky["rank_seeds"] == 4  # tied on the common seeds
    md = "\n".join(write_leaderboard(lb, tmp_path)[1].read_text().splitlines())
    assert "`lucky` †" in md
    worst = build_leaderboard(_runs(tmp_path), failed_as_worst=True)
    # seed 5 counts as the table's worst completed value (ce's 0.40): lucky = ce on all 5 seeds.
    assert _row(worst, "lucky")["miou_n"] == 5 and _row(worst, "lucky")["rank_seeds"] == 5
    assert _row(worst, "lucky")["miou_mean"] == pytest.approx(np.mean(ce)) and _row(worst, "lucky")["rank"] == 1
    assert any("worst value" in line for line in describe(worst))


def test_rare_class_is_one_class_per_datamodule_from_all_runs(tmp_path):
    # Seed 1's counts make class 1 the rarest, seeds 2 and 3 say class 2: the summed shares decide (class 2),
    # every run is scored on it, and the disagreement is noted.
    counts = {1: [1000.0, 10.0, 12.0], 2: [1000.0, 14.0, 9.0], 3: [1000.0, 15.0, 9.0]}
    for i, (loss, seed) in enumerate((l, s) for l in ("ce", "dice") for s in (1, 2, 3)):
        write_run(tmp_path / str(i), loss=loss, seed=seed, metrics=seg_metrics(0.6, rare=0.2 + seed / 10),
                  curves=False, record={"class_pixel_counts": counts[seed]})
    lb = build_leaderboard(_runs(tmp_path))
    assert _row(lb, "dice")["iou_rare_mean"] == pytest.approx(0.4)  # seg_metrics puts `rare` in test/iou/2
    assert any("class 2 (rare), the foreground class with the smallest" in n and "in 2 of 6 runs class(es) [1]" in n
               for n in lb.notes)


def test_rare_class_falls_back_to_lowest_iou_class(sweep):
    lb = build_leaderboard(_runs(sweep))
    assert _row(lb, "ce")["iou_rare_mean"] == pytest.approx(0.31)
    assert any("class 2 (rare), the foreground class with the lowest mean IoU" in n for n in lb.notes)


def test_lower_is_better_metrics_rank_ascending(tmp_path):
    for i, (loss, hd) in enumerate([("ce", 9.0), ("dice", 4.0), ("lovasz", 6.0)]):
        m = {**seg_metrics(0.6, 0.2), "test/hd95": hd, "test/nsd": 0.5}
        write_run(tmp_path / str(i), loss=loss, seed=1, metrics=m, curves=False)
    lb = build_leaderboard(_runs(tmp_path), rank_by="hd95")
    assert "hd95" in lb.metrics and "nsd" in lb.metrics
    assert list(lb.table.sort_values("rank")["loss"]) == ["dice", "lovasz", "ce"]
    assert any("Lower is better for `hd95`" in line for line in describe(lb))


def test_intervals_of_distances_are_floored_at_zero_and_other_metrics_are_not(tmp_path):
    """hd95 over seeds 0.5 and 9.5: the t interval 5 ± 12.71·4.5 starts at −52.2 mm; a distance's true mean is
    never negative, so the lower end is 0 (the upper end keeps 62.2). A loss (lower is better, may be negative)
    keeps its plain interval."""
    for i, (seed, hd) in enumerate([(1, 0.5), (2, 9.5)]):
        m = {**seg_metrics(0.6, 0.2), "test/hd95": hd, "test/loss": hd - 5.0}
        write_run(tmp_path / str(i), loss="ce", seed=seed, metrics=m, curves=False)
    lb = build_leaderboard(_runs(tmp_path), metrics=["miou", "hd95", "loss"])
    row = _row(lb, "ce")
    assert row["hd95_ci_low"] == 0.0 and row["hd95_ci_high"] == pytest.approx(5.0 + 12.7062 * 4.5, rel=1e-4)
    assert row["loss_ci_low"] == pytest.approx(-12.7062 * 4.5, rel=1e-4)


def test_detection_defaults_to_the_giou_baseline(tmp_path):
    for i, (loss, seed, m) in enumerate([("giou", 1, 0.30), ("giou", 2, 0.32), ("ciou", 1, 0.35), ("ciou", 2, 0.36)]):
        write_run(tmp_path / str(i), loss=loss, seed=seed, task="detection", curves=False,
                  metrics={"test/map": m, "test/map_small": m / 2, "test/map_50": 0.6})
    lb = build_leaderboard(_runs(tmp_path))
    assert lb.baseline == "giou" and lb.metrics == ["map", "map_50", "map_small"]
    assert _row(lb, "ciou")["n_pairs"] == 2 and _row(lb, "ciou")["map_delta"] == pytest.approx(0.045)


def test_detection_case_only_metrics_get_per_case_statistics(tmp_path):
    """Per-image ap_50 exists only in the case files: its run value is the case mean, its unit is case, and
    fp_50 (a count of false detections) ranks lower-is-better; n_gt / n_pred are counts, not metrics."""
    from .conftest import write_cases

    n = 30
    base = np.random.default_rng(1).uniform(0.3, 0.9, n)
    for i, (loss, seed) in enumerate([(l, s) for l in ("giou", "ciou", "nwd") for s in (1, 2, 3)]):
        shift = {"giou": 0.0, "ciou": 0.05, "nwd": -0.02}[loss] + 0.003 * seed
        ap = np.clip(base + shift + np.random.default_rng(10 * i).normal(0, 0.01, n), 0, 1)
        ap[0] = np.nan                                   # an image without boxes: ap_50 undefined
        run = write_run(tmp_path / str(i), loss=loss, seed=seed, task="detection", curves=False,
                        metrics={"test/map": 0.3 + shift, "test/map_small": 0.1, "test/map_50": 0.6 + shift})
        fp = np.full(n, {"giou": 3.0, "ciou": 1.0, "nwd": 5.0}[loss])
        write_cases(run, {"n_gt": np.full(n, 4), "n_pred": np.full(n, 100), "ap_50": ap, "fp_50": fp})
    lb = build_leaderboard(_runs(tmp_path))
    assert lb.metrics == ["map", "map_50", "ap_50", "map_small"]
    ciou = _row(lb, "ciou")
    assert ciou["ap_50_unit"] == "case" and ciou["ap_50_n_cases"] == n - 1 and ciou["map_unit"] == "seed"
    want = np.mean([np.nanmean(np.clip(base + 0.05 + 0.003 * s + np.random.default_rng(10 * (3 + s - 1)).normal(0, 0.01, n), 0, 1)[1:])
                    for s in (1, 2, 3)])
    assert ciou["ap_50_mean"] == pytest.approx(want, abs=1e-5)  # the case file keeps 6 digits
    assert ciou["ap_50_delta"] == pytest.approx(0.05, abs=0.01) and ciou["ap_50_p_wilcoxon_holm"] < 0.001
    assert _row(lb, "nwd")["ap_50_delta"] == pytest.approx(-0.02, abs=0.01)
    assert any("`ap_50` is not in metrics.json" in note for note in lb.notes)
    assert not any("`map_50` is not in" in note for note in lb.notes)

    fp = build_leaderboard(_runs(tmp_path), metrics=["fp_50", "map"])
    assert list(fp.table.sort_values("rank")["loss"]) == ["ciou", "giou", "nwd"]
    with pytest.raises(ValueError, match=r"not found in any run's test/ metrics or in every run's test case file.*'ap_50'"):
        build_leaderboard(_runs(tmp_path), metrics=["n_gt"])


def test_missing_baseline_is_noted_not_an_error(sweep):
    lb = build_leaderboard(_runs(sweep), baseline="lovasz")
    assert lb.table["miou_p"].isna().all()
    assert any("baseline loss 'lovasz' is not among the runs" in n for n in lb.notes)


def test_corrupt_partial_and_unstarted_run_dirs_are_skipped_with_reasons(tmp_path, sweep):
    (sweep / "3" / "metrics.json").write_text('{"status": "completed", "task": "segm')  # truncated write
    (sweep / "4" / "metrics.json").write_text('{"status": "running", "task": "segmentation", "loss": "ce", '
                                              '"datamodule": "x"}')
    (sweep / "5" / "config.yaml").write_text("a: [unclosed")
    (sweep / "99" / ".hydra").mkdir(parents=True)  # a job that started and was killed before metrics.json
    collection = collect_runs([sweep])
    reasons = {s.path.name: s.reason for s in collection.skipped}
    assert set(reasons) == {"3", "4", "5", "99"}
    assert reasons["3"].startswith("cannot read metrics.json")
    assert "status 'running' is not one of" in reasons["4"]
    assert reasons["5"].startswith("cannot parse config.yaml")
    assert reasons["99"].startswith("no metrics.json")
    assert len(collection.runs) == 12


def test_clear_errors(tmp_path, sweep):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no metrics.json found under"):
        collect_runs([empty])
    with pytest.raises(ValueError, match="does not exist"):
        collect_runs([tmp_path / "nope"])
    failed = tmp_path / "failed"
    write_run(failed / "0", loss="ce", seed=1, metrics=None, error="CUDA out of memory")
    write_run(failed / "1", loss="dice", seed=1, metrics=None, error="loss is NaN")
    with pytest.raises(ValueError, match=r"all 2 runs failed.*CUDA out of memory"):
        build_leaderboard(_runs(failed))
    det = tmp_path / "det"
    write_run(det / "0", loss="giou", seed=1, metrics={"test/map": 0.3}, task="detection", curves=False)
    with pytest.raises(ValueError, match=r"different tasks mixed \(detection: 1 runs.*; segmentation: 15 runs"):
        collect_runs([sweep, det])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("[]")
    with pytest.raises(ValueError, match="none of the 1 run dirs could be read.*expected a JSON object"):
        collect_runs([bad])
    with pytest.raises(ValueError, match=r"metrics \['nope'\] not found.*available"):
        build_leaderboard(_runs(sweep), metrics=["nope"])


def test_the_same_seed_twice_keeps_one_and_lists_the_other(tmp_path, sweep):
    assert len(_runs(sweep, sweep / "0")) == 15
    shutil.copytree(sweep / "0", tmp_path / "copy")
    lb = build_leaderboard(_runs(sweep, tmp_path / "copy"))
    assert _row(lb, "ce")["n_runs"] == 5
    assert len(lb.grouping.duplicates) == 1 and "duplicate: seed 1 of `ce`" in lb.grouping.duplicates[0].reason


def test_converged_share_time_and_the_warning_for_the_baseline(tmp_path):
    # ce's curves still climb at the end (not converged); dice's level off after epoch 3 of 8.
    for i, (loss, seed) in enumerate((l, s) for l in ("ce", "dice") for s in (1, 2)):
        plateau = 3 if loss == "dice" else None
        hist = {"val/miou": curve_to(0.6, 8, plateau), "train/loss": [1.0 / (e + 1) for e in range(8)]}
        write_run(tmp_path / str(i), loss=loss, seed=seed, metrics=seg_metrics(0.6 + (loss == "dice") / 10, 0.2),
                  curves=False, history=hist, wall_time_s=10.0 * (i + 1))
    lb = build_leaderboard(_runs(tmp_path))
    assert _row(lb, "ce")["converged"] == 0.0 and _row(lb, "dice")["converged"] == 1.0
    assert _row(lb, "ce")["train_time_s"] == pytest.approx(15.0) and _row(lb, "dice")["train_time_s"] == pytest.approx(35.0)
    warns = warnings(lb)
    assert len(warns) == 1 and "the baseline `ce` converged in 0% of its runs" in warns[0]


def test_runs_without_history_fall_back_to_the_csv_log_or_say_unknown(sweep, tmp_path):
    lb = build_leaderboard(_runs(sweep))  # CSV logs: the fixture's curve rises to the end
    assert _row(lb, "ce")["converged"] == 0.0
    write_run(tmp_path / "bare" / "0", loss="ce", seed=1, metrics=seg_metrics(0.5, 0.2), curves=False)
    bare = build_leaderboard(_runs(tmp_path / "bare"))
    assert pd.isna(_row(bare, "ce")["converged"])
    assert any(w.startswith("Convergence unknown") for w in warnings(bare))


def test_written_csv_and_markdown(sweep):
    lb = build_leaderboard(_runs(sweep))
    csv_path, md_path = write_leaderboard(lb, sweep)
    table = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    for col in ["loss", "loss_params", "datamodule", "n_runs", "n_failed", "rank", "converged", "train_time_s",
                "miou_mean", "miou_std", "miou_ci_low", "miou_ci_high", "miou_delta", "miou_delta_ci_low",
                "miou_delta_ci_high", "miou_p", "miou_p_holm", "miou_effect", "iou_rare_p_holm", "baseline", "test"]:
        assert col in table.columns, col
    md = md_path.read_text()
    # rank (bootstrap 5–95 % rank range); a score's interval on the logit scale (t: [0.605, 0.695])
    assert "| 1 (1) | `dice` | 5 | 0 | 0.650 ± 0.036 [0.604, 0.693] | 1.5 |" in md
    # every headline metric has Δ, CI, p, Holm p and effect, not only the rank-by one
    dice_tests = next(line for line in md.splitlines() if line.startswith("| `dice` | +"))
    assert dice_tests.count("Holm") == len(lb.metrics)
    assert "+0.040 [0.012, 0.068]; p 0.0161, Holm 0.0308; d_z 1.79 *" in dice_tests


def test_every_seed_identical_gives_no_spread_not_infinity(tmp_path):
    for i, (loss, seed) in enumerate((l, s) for l in ("ce", "dice") for s in (1, 2, 3)):
        v = 0.5 + seed / 100 + (0.05 if loss == "dice" else 0)
        write_run(tmp_path / str(i), loss=loss, seed=seed, metrics=seg_metrics(v, 0.2), curves=False)
    row = _row(build_leaderboard(_runs(tmp_path)), "dice")
    assert row["miou_degenerate"] == "no spread" and row["miou_p"] == pytest.approx(0.25)
    assert pd.isna(row["miou_effect"]) and row["miou_delta_ci_low"] == pytest.approx(0.05)


def test_record_history_fields_are_read(tmp_path):
    write_run(tmp_path / "0", loss="ce", seed=1, metrics=seg_metrics(0.5, 0.2), curves=False,
              history={"val/miou": [0.1, None, 0.3], "train/loss": [1, 0.5, 0.4], "bad": "x"},
              record={"early_stopping": {"stopped": True}})
    run = _runs(tmp_path)[0]
    assert run.history == {"val/miou": [0.1, None, 0.3], "train/loss": [1.0, 0.5, 0.4]}
    assert run.best_epoch == 2 and run.early_stopped is True
    assert json.loads((tmp_path / "0" / "metrics.json").read_text())["epochs"] == 3


def test_a_row_whose_every_run_failed_is_unranked_and_does_not_unrank_the_others(sweep):
    write_run(sweep / "bce1", loss="bce", seed=1, metrics=None, error="ValueError: binary only")
    write_run(sweep / "bce2", loss="bce", seed=2, metrics=None, error="ValueError: binary only")
    lb = build_leaderboard(_runs(sweep))
    assert pd.isna(_row(lb, "bce")["rank"]) and _row(lb, "bce")["n_failed"] == 2
    assert [_row(lb, l)["rank"] for l in ("dice", "ce", "focal")] == [1, 2, 3]


def test_resumed_runs_are_counted_and_marked(tmp_path):
    resumed = {"resumes": [{"from_epoch": 2, "from_step": 20, "at": "2026-12-04T18:00:00Z", "reason": "SLURM requeue 1"}]}
    for seed in (1, 2, 3):
        for loss in ("ce", "dice"):
            write_run(tmp_path / f"{loss}{seed}", loss=loss, seed=seed, metrics=seg_metrics(0.5 + 0.01 * seed, 0.1),
                      record=resumed if (loss, seed) in {("dice", 1), ("dice", 3)} else None)
    lb = build_leaderboard(_runs(tmp_path))
    counts = dict(zip(lb.table["loss"], lb.table["n_resumed"]))
    assert counts == {"ce": 0, "dice": 2}
    assert any("2 completed run(s) (↻" in line for line in warnings(lb))
    (tmp_path / "out").mkdir()
    written = write_leaderboard(lb, tmp_path / "out")
    md = next(path for path in written if path.suffix == ".md")
    assert "`dice` ↻" in md.read_text() and "`ce` ↻" not in md.read_text()
