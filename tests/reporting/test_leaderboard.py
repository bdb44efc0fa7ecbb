"""Leaderboard on hand-made sweeps: rows, n, mean/std/CI, paired tests, rank, and clear errors."""
from __future__ import annotations

import json
import shutil
import statistics

import pandas as pd
import pytest

from reporting.collect import collect_runs
from reporting.leaderboard import build_leaderboard
from reporting.markdown import describe, write_leaderboard
from reporting.stats import bootstrap_ci

from .conftest import MIOU, seg_metrics, write_run


def _row(lb, loss):
    rows = lb.table[lb.table["loss"] == loss]
    assert len(rows) == 1
    return rows.iloc[0]


def test_rows_counts_statistics_and_rank(sweep):
    lb = build_leaderboard(collect_runs([sweep]))
    assert list(lb.table["loss"]) == ["ce", "dice", "focal"]
    assert lb.metrics == ["miou", "dice_fg", "iou_rare", "small_recall/lt16", "small_recall/16-64",
                          "small_recall/ge64"]
    dice, ce, focal = _row(lb, "dice"), _row(lb, "ce"), _row(lb, "focal")
    assert (dice["n_runs"], dice["n_failed"], focal["n_runs"], focal["n_failed"]) == (5, 0, 4, 1)
    assert dice["miou_mean"] == pytest.approx(statistics.mean(MIOU["dice"]))
    assert dice["miou_std"] == pytest.approx(statistics.stdev(MIOU["dice"]))
    assert (ce["miou_ci_low"], ce["miou_ci_high"]) == pytest.approx((0.598, 0.622))
    assert (dice["miou_ci_low"], dice["miou_ci_high"]) == pytest.approx(bootstrap_ci(MIOU["dice"]))
    assert [dice["rank"], ce["rank"], focal["rank"]] == [1, 2, 3]
    assert focal["seeds"] == "1 2 3 4"


def test_paired_wilcoxon_against_baseline(sweep):
    lb = build_leaderboard(collect_runs([sweep]))
    dice, focal, ce = _row(lb, "dice"), _row(lb, "focal"), _row(lb, "ce")
    # dice beats ce on all 5 seeds: smallest exact two-sided p for n=5 is 2/2^5; r = 1.
    assert (dice["n_pairs"], dice["miou_delta"], dice["miou_p"], dice["miou_effect"]) == (
        5, pytest.approx(0.04), pytest.approx(0.0625), pytest.approx(1.0))
    # focal's failed seed 5 is not paired: 4 pairs, all below ce → p = 2/2^4, r = -1.
    assert (focal["n_pairs"], focal["miou_p"], focal["miou_effect"]) == (4, pytest.approx(0.125), pytest.approx(-1.0))
    assert pd.isna(ce["miou_p"]) and ce["n_pairs"] == 0
    assert any("smallest possible two-sided Wilcoxon p is 0.0625" in line for line in describe(lb))


def test_paired_t_option(sweep):
    from scipy import stats as sps

    lb = build_leaderboard(collect_runs([sweep]), test="t")
    expected = sps.ttest_rel(MIOU["dice"], MIOU["ce"]).pvalue
    assert _row(lb, "dice")["miou_p"] == pytest.approx(expected)
    assert _row(lb, "dice")["test"] == "t"


def test_rare_class_from_recorded_pixel_counts(tmp_path):
    for i, (loss, seed) in enumerate([("ce", 1), ("dice", 1)]):
        run = write_run(tmp_path / str(i), loss=loss, seed=seed, metrics=seg_metrics(0.6, rare=0.2), curves=False)
        record = json.loads((run / "metrics.json").read_text())
        record["class_pixel_counts"] = [1000.0, 10.0, 500.0]  # class 1 is the rarest foreground class
        (run / "metrics.json").write_text(json.dumps(record))
    lb = build_leaderboard(collect_runs([tmp_path]))
    assert _row(lb, "dice")["iou_rare_mean"] == pytest.approx(0.7)  # seg_metrics puts 0.7 in test/iou/1
    assert any("class 1 (common), the rarest" in n for n in lb.notes)


def test_rare_class_falls_back_to_lowest_iou_class(sweep):
    lb = build_leaderboard(collect_runs([sweep]))
    assert _row(lb, "ce")["iou_rare_mean"] == pytest.approx(0.31)
    assert any("class 2 (rare), the foreground class with the lowest mean IoU" in n for n in lb.notes)


def test_swept_variant_gets_its_own_rows(tmp_path):
    for i, (lr, miou) in enumerate([("0.01", 0.5), ("0.001", 0.7)]):
        for j, loss in enumerate(["ce", "dice"]):
            write_run(tmp_path / f"{i}{j}", loss=loss, seed=1, metrics=seg_metrics(miou + j / 10, rare=0.1),
                      extra_overrides=(f"optimizer.lr={lr}", "debug=fast"), curves=False)
    lb = build_leaderboard(collect_runs([tmp_path]))
    assert sorted(lb.table["variant"]) == ["optimizer.lr=0.001"] * 2 + ["optimizer.lr=0.01"] * 2
    assert list(lb.table.sort_values(["variant", "loss"])["miou_mean"]) == pytest.approx([0.7, 0.8, 0.5, 0.6])


def test_missing_baseline_is_noted_not_an_error(sweep):
    lb = build_leaderboard(collect_runs([sweep]), baseline="lovasz")
    assert lb.table["miou_p"].isna().all()
    assert any("baseline loss 'lovasz' is not among the runs" in n for n in lb.notes)


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
        build_leaderboard(collect_runs([failed]))

    det = tmp_path / "det"
    write_run(det / "0", loss="giou", seed=1, metrics={"test/map": 0.3}, task="detection", curves=False)
    with pytest.raises(ValueError, match=r"different tasks mixed \(detection: 1 runs.*; segmentation: 15 runs"):
        collect_runs([sweep, det])

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text('{"status": "running", "task": "segmentation", "loss": "ce", "datamodule": "x"}')
    with pytest.raises(ValueError, match=r"status 'running' is not one of \('completed', 'failed'\)"):
        collect_runs([bad])
    with pytest.raises(ValueError, match=r"metrics \['nope'\] not found.*available"):
        build_leaderboard(collect_runs([sweep]), metrics=["nope"])


def test_same_dir_twice_counts_once_but_overlapping_copies_are_refused(tmp_path, sweep):
    assert len(collect_runs([sweep, sweep / "0"])) == 15
    shutil.copytree(sweep / "0", tmp_path / "copy")
    with pytest.raises(ValueError, match="seed 1 of .*'loss': 'ce'.* completed more than once"):
        build_leaderboard(collect_runs([sweep, tmp_path / "copy"]))


def test_detection_headline_metrics(tmp_path):
    for i, (loss, m) in enumerate([("giou", 0.30), ("ciou", 0.35)]):
        write_run(tmp_path / str(i), loss=loss, seed=1, task="detection", curves=False,
                  metrics={"test/map": m, "test/map_small": m / 2, "test/map_50": 0.6})
    lb = build_leaderboard(collect_runs([tmp_path]), baseline="giou")
    assert lb.metrics == ["map", "map_small"]
    assert list(lb.table.sort_values("rank")["loss"]) == ["ciou", "giou"]


def test_written_csv_and_markdown(sweep):
    lb = build_leaderboard(collect_runs([sweep]))
    csv_path, md_path = write_leaderboard(lb, sweep)
    table = pd.read_csv(csv_path)
    for col in ["loss", "datamodule", "n_runs", "n_failed", "rank", "miou_mean", "miou_std", "miou_ci_low",
                "miou_ci_high", "miou_p", "miou_effect", "baseline", "test"]:
        assert col in table.columns
    assert table.set_index("loss").loc["dice", "miou_mean"] == pytest.approx(0.65)
    md = md_path.read_text()
    assert "| 1 | `dice` | 5 | 0 | 0.650 ± 0.036 [0.620, 0.680] |" in md
    assert "| 3 | `focal` | 4 | 1 |" in md and "0.1250" in md


def test_runs_from_different_configs_are_flagged(sweep):
    import yaml

    assert not any(n.startswith("WARNING") for n in build_leaderboard(collect_runs([sweep])).notes)
    edited = sweep / "13"  # a YAML edited before this job (focal, seed 4): its data differ
    config = yaml.safe_load((edited / "config.yaml").read_text())
    config["datamodule"]["class_frequencies"] = [1.0, 0.5]
    config["trainer"]["default_root_dir"] = str(edited)  # a run path: differs by design, not flagged
    (edited / "config.yaml").write_text(yaml.safe_dump(config))
    warnings = [n for n in build_leaderboard(collect_runs([sweep])).notes if n.startswith("WARNING")]
    assert len(warnings) == 1 and "(`datamodule.class_frequencies`)" in warnings[0]
