"""compare: runs → leaderboard.csv/.md, PNG plots and report.html (CONTRACTS section 5)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from reporting import plots as P
from reporting.collect import Run, collect_runs
from reporting.configdiff import config_diff
from reporting.html import write_report
from reporting.leaderboard import Leaderboard, build_leaderboard
from reporting.markdown import write_leaderboard


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` wrote, and the leaderboard it computed."""

    out_dir: Path
    leaderboard: Leaderboard
    runs: list[Run]
    files: list[Path]


def compare(dirs: Iterable[str | Path], out: str | Path | None = None, baseline: str = "ce",
            test: str = "wilcoxon", metrics: list[str] | None = None, rank_by: str | None = None,
            confidence: float = 0.95, plots: bool = True) -> Comparison:
    """Compare every run under ``dirs``; outputs go to ``out`` or else the first dir.

    Raises ``ValueError`` with a message for people when there is nothing sound to compare.
    """
    sources = [Path(d).expanduser().resolve() for d in dirs]
    runs = collect_runs(sources)
    lb = build_leaderboard(runs, baseline=baseline, test=test, metrics=metrics, rank_by=rank_by,
                           confidence=confidence)
    out_dir = Path(out).expanduser().resolve() if out is not None else sources[0]
    if out_dir.is_file():
        raise ValueError(f"--out {str(out_dir)!r} is a file; expected a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = list(write_leaderboard(lb, out_dir))
    images: list[Path] = []
    if plots:
        for made in (P.metric_bars(lb, out_dir), P.size_recall(lb, out_dir),
                     P.class_iou_heatmap(runs, lb, out_dir), P.training_curves(runs, lb, out_dir)):
            if made is not None:
                images.append(made)
        images += P.prediction_grid(runs, out_dir)
    files += images
    files.append(write_report(out_dir / "report.html", lb, runs, images, config_diff(runs), sources))
    return Comparison(out_dir, lb, runs, files)
