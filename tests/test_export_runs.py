"""``python scripts/export_runs.py``: the files compare.py reads, machine paths replaced, nothing heavy."""
from __future__ import annotations

import json

import pytest

from scripts.export_runs import main


def _run(folder, root):
    (folder / ".hydra").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    (folder / "metrics.json").write_text(json.dumps({"status": "completed", "config": {"root": f"{root}/x"}}))
    (folder / "config.yaml").write_text(f"datamodule:\n  root: {root}/x\n")
    (folder / ".hydra" / "overrides.yaml").write_text(f"- datamodule.root={root}/x\n")
    (folder / "test_cases.csv").write_text("case,index,dice\na,0,0.5\n")
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"\0" * 100)
    (folder / "test_predictions.npz").write_bytes(b"\0" * 10)
    (folder / "train.log").write_text(f"{root}\n")


def test_a_sweep_is_exported_without_checkpoints_and_with_paths_replaced(tmp_path, capsys):
    root = "/secret/machine/data"
    sweep = tmp_path / "sweep"
    for job in ("0", "1", "10"):
        _run(sweep / job, root)
    (sweep / "multirun.yaml").write_text(f"root: {root}\n")
    (sweep / "not_a_run").mkdir()
    out = tmp_path / "out"
    assert main([str(sweep), str(out), "--replace", f"{root}=<data>"]) == 0
    assert "exported 3 run(s)" in capsys.readouterr().out
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(["multirun.yaml"] + [f"{job}/{name}" for job in ("0", "1", "10") for name in
                                               ("metrics.json", "config.yaml", ".hydra/overrides.yaml",
                                                "test_cases.csv")])
    for path in out.rglob("*"):
        if path.is_file():
            assert root not in path.read_text(), path
    assert json.loads((out / "1" / "metrics.json").read_text())["config"]["root"] == "<data>/x"


def test_one_run_and_bad_arguments(tmp_path):
    _run(tmp_path / "run", "/d")
    assert main([str(tmp_path / "run"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "metrics.json").is_file() and not (tmp_path / "out" / "checkpoints").exists()
    with pytest.raises(SystemExit, match=r"--replace 'nothing' is invalid; expected OLD=NEW"):
        main([str(tmp_path / "run"), str(tmp_path / "o2"), "--replace", "nothing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"holds no run"):
        main([str(tmp_path / "empty"), str(tmp_path / "o3")])
