"""compare: runs → leaderboard.csv/.md/.tex, ranks.csv, budget.csv, summary.json, PNG plots and report.html
(the outputs are listed in docs/sweeps.md)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from metrics.names import higher_is_better
from reporting.budget import budget_rows, curve
from reporting.collect import Collection, Run, collect_runs
from reporting.fairness import check_fairness
from reporting.grouping import group_runs
from reporting.html import write_report
from reporting.latex import write_latex
from reporting.leaderboard import RESAMPLES, Leaderboard, build_leaderboard, row_labels
from reporting.markdown import Extras, warnings, write_leaderboard
from reporting.metric_names import column
from reporting.power import plan_leaderboard
from reporting.ranks import across_tables

BUDGET_COLUMNS = ["datamodule", "model", "settings", "loss", "loss_params", "epoch", "mean", "rank"]


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` wrote, and the leaderboard it computed."""

    out_dir: Path
    leaderboard: Leaderboard
    runs: list[Run]
    files: list[Path]
    extras: Extras


def compare(dirs: Iterable[str | Path], out: str | Path | None = None, baseline: str | None = None,
            test: str = "t", metrics: list[str] | None = None, rank_by: str | None = None,
            confidence: float = 0.95, ci_method: str = "t", failed_as_worst: bool = False,
            plots: bool = True, resamples: int = RESAMPLES, plan_delta: float | None = None,
            plan_power: float = 0.8) -> Comparison:
    """Compare every run under ``dirs``; outputs go to ``out`` or else the first dir. ``plan_delta``: also
    plan the seeds and cases needed to detect that difference of the rank-by metric at ``plan_power``.

    Raises ``ValueError`` with a message for people when there is nothing sound to compare.
    """
    sources = [Path(d).expanduser().resolve() for d in dirs]
    collection: Collection = collect_runs(sources)
    runs = collection.runs
    grouping = group_runs(runs)
    differences = check_fairness(grouping)
    grouping.warnings.extend(d.warning for d in differences)
    lb = build_leaderboard(runs, baseline=baseline, test=test, metrics=metrics, rank_by=rank_by,
                           confidence=confidence, ci_method=ci_method, failed_as_worst=failed_as_worst,
                           grouping=grouping, resamples=resamples)
    plans = plan_leaderboard(lb, plan_delta, plan_power) if plan_delta is not None else None
    lb.notes.extend(preset_notes(runs))
    out_dir = Path(out).expanduser().resolve() if out is not None else sources[0]
    if out_dir.is_file():
        raise ValueError(f"--out {str(out_dir)!r} is a file; expected a directory")
    out_dir.mkdir(parents=True, exist_ok=True)

    across = across_tables(lb)
    budget, taus = _budget(lb)
    extras = Extras(across, taus, [*collection.skipped, *grouping.duplicates], plans,
                    {"delta": plan_delta, "power": plan_power}, [d.as_dict() for d in differences])
    files = list(write_leaderboard(lb, out_dir, extras))
    files.append(write_latex(lb, out_dir / "leaderboard.tex"))
    ranks_path = out_dir / "ranks.csv"
    across.ranks.to_csv(ranks_path, index=False, float_format="%.6g")
    budget_path = out_dir / "budget.csv"
    budget.to_csv(budget_path, index=False, float_format="%.6g")
    files += [ranks_path, budget_path, _write_summary(out_dir / "summary.json", lb, extras, runs)]
    images: list[Path] = []
    if plots:
        from reporting import plots as P

        for made in (P.strip_plots(lb, out_dir), P.learning_curves(lb, out_dir), P.size_recall(lb, out_dir),
                     P.class_heatmap(lb, out_dir, "iou"), P.class_heatmap(lb, out_dir, "ap"),
                     P.class_heatmap(lb, out_dir, "hd95"), P.cd_diagram(across, lb, out_dir),
                     P.rank_blobs(lb, out_dir), P.case_scatter(lb, out_dir)):
            if made is not None:
                images.append(made)
        images += P.prediction_grid(lb, out_dir)
    files += images
    files.append(write_report(out_dir / "report.html", lb, runs, images, extras, sources))
    return Comparison(out_dir, lb, runs, files, extras)


def _budget(lb: Leaderboard) -> tuple[pd.DataFrame, list[dict]]:
    """budget.csv rows (rank by epoch) and Kendall τ per table, from the rank-by metric's validation curves."""
    rows, taus = [], []
    for key, part in lb.parts():
        curves, higher = {}, higher_is_better(lb.rank_by)
        for label, (_, row) in zip(row_labels(part), part.iterrows()):
            found = [curve(r, lb.curve_key(r)) for r in lb.runs_of(key, row) if r.completed]
            curves[(row["loss"], row["loss_params"])] = [c for c in found if c is not None and len(c)]
        table_rows, tau = budget_rows({"datamodule": key.datamodule, "model": key.model, "settings": key.settings},
                                      curves, higher)
        rows += table_rows
        if tau is not None:
            taus.append(tau)
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS), taus


def _write_summary(path: Path, lb: Leaderboard, extras: Extras, runs: list[Run]) -> Path:
    across = extras.across
    summary = {
        "task": runs[0].task,
        "split": lb.split, "metrics": lb.metrics, "rank_by": lb.rank_by, "baseline": lb.baseline, "test": lb.test,
        "ci_method": lb.ci_method, "confidence": lb.confidence, "failed_as_worst": lb.failed_as_worst,
        "n_tables": len(lb.grouping.tables),
        "n_runs": int(lb.table["n_runs"].sum() + lb.table["n_failed"].sum()),
        "n_failed": int(lb.table["n_failed"].sum()),
        "friedman": across.friedman() if across is not None else None,
        "pairwise_disagreements": across.disagreements() if across is not None else [],
        "units": _units(lb),
        "rank_stability": [{"datamodule": k.datamodule, "model": k.model, "settings": k.settings, "metric": lb.rank_by,
                            **stab.summary()} for k, stab in lb.stability.items()],
        "resamples": lb.resamples,
        "plan": None if extras.plans is None else {**extras.plan_options, "alpha": round(lb.alpha, 12),
                                                   "tables": extras.plans},
        "budget": extras.taus,
        "presets": presets(runs),
        "warnings": warnings(lb),
        "notes": lb.notes,
        "skipped_runs": [{"path": str(s.path), "reason": s.reason} for s in extras.skipped],
        "fairness": extras.fairness,
    }
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def presets(runs: list[Run]) -> list[dict]:
    """The benchmark presets the runs were made with (metrics.json ``preset``): name, version, runs;
    ``name: null`` counts the runs made without a preset."""
    counts = Counter()
    for r in runs:
        preset = r.record.get("preset")
        key = (preset.get("name"), preset.get("version")) if isinstance(preset, dict) else (None, None)
        counts[key] += 1
    return [{"name": n, "version": v, "n_runs": k} for (n, v), k in sorted(counts.items(), key=lambda i: (i[0][0] is None, str(i[0])))]


def preset_notes(runs: list[Run]) -> list[str]:
    """The report's line naming the presets and their versions (none when no run had a preset)."""
    found = presets(runs)
    if all(p["name"] is None for p in found):
        return []
    parts = [f"`{p['name']}` version {p['version']}" if p["name"] is not None else "no preset"
             for p in found]
    counts = [f"{p['n_runs']} run{'s' if p['n_runs'] != 1 else ''}" for p in found]
    if len(found) == 1:
        return [f"Preset: {parts[0]} (all {counts[0]}; metrics.json `preset`)."]
    return ["Presets: " + ", ".join(f"{p} ({c})" for p, c in zip(parts, counts))
            + " (metrics.json `preset`): runs of different presets or versions are different benchmarks."]


def _units(lb: Leaderboard) -> list[dict]:
    """Per table: which metrics use per-case statistics (unit ``case``) and which per-run (``seed``)."""
    out = []
    for key, part in lb.parts():
        units = {m: str(part[column(m) + "_unit"].iloc[0]) for m in lb.metrics} if len(part) else {}
        n_cases = len(lb.cases[key].cases) if key in lb.cases else 0
        out.append({"datamodule": key.datamodule, "model": key.model, "settings": key.settings, "n_cases": n_cases,
                    "units": units})
    return out
