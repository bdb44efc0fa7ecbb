"""The committed real-data verdicts (docs/results/real) are what compare.py makes of the committed runs:
re-running it on each folder's run files gives the committed ``leaderboard.csv`` byte for byte, so the
numbers quoted in the README and docs cannot drift from the code that computes them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import compare

REAL = Path(__file__).resolve().parents[1] / "docs" / "results" / "real"
SEGMENTATION = ("dsb2018", "deepcrack", "msd")
# each committed folder and the run folders it was compared from (runs_seeds45: the second sweep of seeds 4-5)
SOURCES = {name: [name] for name in (*SEGMENTATION, "bccd")} | {"across": list(SEGMENTATION)}


def run_folders(datasets: list[str]) -> list[Path]:
    return [p for name in datasets for p in sorted((REAL / name).glob("runs*")) if p.is_dir()]


@pytest.mark.parametrize("folder", sorted(SOURCES))
def test_committed_leaderboard_is_reproduced_from_the_committed_runs(folder, tmp_path):
    runs = run_folders(SOURCES[folder])
    assert runs, f"no run folders under {REAL / folder}"
    metrics = json.loads((REAL / folder / "summary.json").read_text())["metrics"]
    argv = [*map(str, runs), "--out", str(tmp_path), "--no-plots", "--metrics", *metrics]
    assert compare.main(argv) == 0
    assert (tmp_path / "leaderboard.csv").read_text() == (REAL / folder / "leaderboard.csv").read_text()


def test_every_committed_folder_is_checked():
    committed = {p.name for p in REAL.iterdir() if (p / "leaderboard.csv").is_file()}
    assert committed == set(SOURCES)
