"""compare.py command line: outputs, --out, options, and the messages for dirs it cannot compare."""
from __future__ import annotations

import pandas as pd
import pytest

import compare
from tests.reporting.conftest import seg_metrics, write_run


@pytest.fixture
def small_sweep(tmp_path):
    root = tmp_path / "sweep"
    for num, (loss, seed, miou) in enumerate([("ce", 1, 0.5), ("ce", 2, 0.6), ("dice", 1, 0.7), ("dice", 2, 0.9)]):
        write_run(root / str(num), loss=loss, seed=seed, metrics=seg_metrics(miou, rare=0.2))
    return root


def test_writes_leaderboard_and_report_into_the_sweep_dir(small_sweep, capsys):
    assert compare.main([str(small_sweep), "--no-plots"]) == 0
    out = capsys.readouterr().out
    # t interval with 1 df on the logit scale: inside [0, 1] (the plain t interval is [-0.471, 2.071])
    assert "| 1 (1) | `dice` | 2 | 0 | 0.800 ± 0.141 [0.001, 1.000] | 1.5 |" in out
    assert {p.name for p in small_sweep.iterdir() if p.is_file()} == {
        "leaderboard.csv", "leaderboard.md", "leaderboard.tex", "ranks.csv", "budget.csv", "summary.json", "report.html"}


def test_out_dir_baseline_test_and_metric_options(small_sweep, tmp_path):
    out = tmp_path / "cmp"
    argv = [str(small_sweep), "--out", str(out), "--no-plots", "--baseline", "dice", "--test", "wilcoxon",
            "--metrics", "miou", "iou/1", "--rank-by", "iou/1", "--ci", "bca", "--failed-as-worst"]
    assert compare.main(argv) == 0
    table = pd.read_csv(out / "leaderboard.csv").set_index("loss")
    assert list(table.columns[table.columns.str.endswith("_mean")]) == ["miou_mean", "iou_1_mean"]
    assert table.loc["ce", "baseline"] == "dice" and table.loc["ce", "test"] == "wilcoxon"
    assert table.loc["ce", "ci_method"] == "bca" and table.loc["ce", "miou_delta"] == pytest.approx(-0.25)
    assert not (small_sweep / "leaderboard.csv").exists()


def test_a_corrupt_run_dir_is_skipped_with_a_warning_and_the_report_still_written(small_sweep, capsys):
    (small_sweep / "9").mkdir()
    (small_sweep / "9" / "metrics.json").write_text('{"status": "completed"')
    assert compare.main([str(small_sweep), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "compare.py: warning: skipped" in err and "/9: cannot read metrics.json" in err
    assert (small_sweep / "report.html").is_file()


@pytest.mark.parametrize("case,message", [
    ("empty", "no metrics.json found under"),
    ("missing", "does not exist"),
    ("failed", "all 1 runs failed, nothing to compare; first errors: 0 (ce, seed 1): RuntimeError: NaN"),
    ("mixed", "runs from different tasks mixed"),
])
def test_clear_messages_and_exit_code_2(tmp_path, capsys, case, message):
    target = tmp_path / case
    if case == "empty":
        target.mkdir()
    elif case == "failed":
        write_run(target / "0", loss="ce", seed=1, metrics=None, error="RuntimeError: NaN")
    elif case == "mixed":
        write_run(target / "0", loss="ce", seed=1, metrics=seg_metrics(0.5, 0.1))
        write_run(target / "1", loss="giou", seed=1, metrics={"test/map": 0.2}, task="detection")
    assert compare.main([str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("compare.py: error: ") and message in err
