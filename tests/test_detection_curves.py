"""``python scripts/detection_curves.py``: validation rows per run, the table and the PNG."""
from __future__ import annotations

import sys

import pandas as pd
import pytest

from scripts.detection_curves import main, validation_curve


def _log(run, rows):
    (run / "csv").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(run / "csv" / "metrics.csv", index=False)


def test_curves_keep_one_row_per_validation_and_plot(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    nan = float("nan")
    _log(run, [
        {"step": 9, "epoch": 0, "train/loss_step": 1.2, "val/map_50": nan, "val/map": nan},
        {"step": 35, "epoch": 0, "train/loss_step": nan, "val/map_50": 0.25, "val/map": 0.1},
        {"step": 71, "epoch": 1, "train/loss_step": nan, "val/map_50": 0.5, "val/map": 0.2},
        {"step": 71, "epoch": 1, "train/loss_step": nan, "val/map_50": 0.5, "val/map": 0.2},  # the final re-validation
    ])
    curve = validation_curve(run)
    assert curve["step"].tolist() == [35, 71] and curve["val/map_50"].tolist() == [0.25, 0.5]
    out = tmp_path / "curves.png"
    monkeypatch.setattr(sys, "argv", ["detection_curves.py", "--out", str(out), f"defaults={run}"])
    main()
    assert out.stat().st_size > 10_000
    table = capsys.readouterr().out
    assert "| defaults | 35 | 0.250 | 0.100 |" in table and "| defaults | 71 | 0.500 | 0.200 |" in table


def test_a_run_without_validation_is_a_clear_error(tmp_path):
    run = tmp_path / "seg"
    _log(run, [{"step": 1, "epoch": 0, "val/miou": 0.5}])
    with pytest.raises(SystemExit, match=r"logged no \['val/map_50', 'val/map'\]"):
        validation_curve(run)
    with pytest.raises(SystemExit, match="no csv/metrics.csv"):
        validation_curve(tmp_path / "absent")
