"""Per-case files: read each run's table of test cases and pair the runs of a leaderboard table by case id.

A run's case file for a split is the one ``metrics.json`` names in ``case_files`` (``{"test":
"test_cases.csv"}``), else ``<split>_cases.csv`` when it exists (the format is in docs/contracts.md,
"Per-case files"). Rules:

- ``dice``, ``iou``, ``nsd`` (per class) and ``dice_fg``, ``miou`` are never empty by the
  empty-reference policy; a NaN or empty cell there is an error naming the run and the case.
  ``hd95`` and ``object_recall`` may be empty (undefined for that case).
- Runs of one table are paired by case id. When their case ids differ, only the cases every run has
  are used, with a warning naming the runs and the missing cases; runs whose ``split.hash`` in
  ``metrics.json`` differ are refused (they were tested on different splits).
- A table uses per-case statistics for a metric only when every completed run of it has a case file
  with that metric's column; otherwise it falls back to per-run statistics (``<m>_unit`` says which).
- A **case-only metric** is a case-file column that ``metrics.json`` does not record (detection's
  per-image ``ap_50`` / ``recall_50`` / ``fp_50``, whose run-level counterparts are the corpus-level
  ``map_50`` and friends): its run value is the mean over the run's cases (:meth:`CaseFiles.means`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from metrics.names import PER_CASE_ALWAYS_DEFINED
from reporting.collect import Run

_SHOW = 5


@dataclass(frozen=True)
class CaseTable:
    """One run's per-case values: case ids in file order and one float array per metric column."""

    ids: tuple[str, ...]
    columns: dict[str, np.ndarray]


@dataclass
class TableCases:
    """The shared cases of one leaderboard table: ``values(run, column)`` in the order of ``cases``."""

    cases: list[str]
    tables: dict[Path, CaseTable]
    warnings: list[str] = field(default_factory=list)
    _positions: dict[Path, np.ndarray] = field(default_factory=dict, repr=False)

    def has(self, runs: Iterable[Run], column: str) -> bool:
        return all(r.path in self.tables and column in self.tables[r.path].columns for r in runs)

    def values(self, run: Run, column: str) -> np.ndarray:
        pos = self._positions.get(run.path)
        if pos is None:
            index = {c: i for i, c in enumerate(self.tables[run.path].ids)}
            pos = self._positions[run.path] = np.fromiter((index[c] for c in self.cases), dtype=np.intp,
                                                          count=len(self.cases))
        return self.tables[run.path].columns[column][pos]


def case_file(run: Run, split: str) -> Path | None:
    """The run's case file for ``split`` (``metrics.json`` ``case_files``, else ``<split>_cases.csv``)."""
    named = run.record.get("case_files")
    if isinstance(named, dict) and isinstance(named.get(split), str):
        return run.path / named[split]
    default = run.path / f"{split}_cases.csv"
    return default if default.is_file() else None


def read_case_file(path: Path, run: Run) -> CaseTable:
    """Read one case file; raises ``ValueError`` naming the run, the file and what is wrong."""
    where = f"run {str(run.path)!r} ({run.loss}, seed {run.seed}): {path.name}"
    if not path.is_file():
        raise ValueError(f"{where} is named in metrics.json case_files but does not exist")
    try:
        frame = pd.read_csv(path, dtype={"case": str}, keep_default_na=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{where} cannot be read as CSV: {exc}") from exc
    if "case" not in frame.columns:
        raise ValueError(f"{where} has no 'case' column; columns seen: {list(frame.columns)[:8]} "
                         "(expected case, index, dice/<k>, iou/<k>, ...)")
    ids = frame["case"].astype(str)
    dup = ids[ids.duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"{where}: case ids must be unique; repeated: {_few(dup)}")
    columns: dict[str, np.ndarray] = {}
    problems = []
    for name in frame.columns:
        if name in ("case", "index"):
            continue
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if name.split("/", 1)[0] in PER_CASE_ALWAYS_DEFINED and bad.any():
            problems.append(f"column {name!r} is empty/NaN for case(s) {_few(ids[bad].tolist())} — the "
                            "empty-reference policy defines it for every case (1 when reference and prediction "
                            "are both empty, 0 when only one is)")
        columns[name] = values
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))
    return CaseTable(tuple(ids), columns)


class CaseFiles:
    """The runs' case files of one split, each read once: the leaderboard asks for a run's file twice
    (the case-only metrics' run values, then the table's per-case pairs)."""

    def __init__(self, split: str):
        self.split = split
        self._read: dict[Path, CaseTable | ValueError | None] = {}
        self._means: dict[Path, dict[str, float]] = {}

    def table(self, run: Run) -> CaseTable | None:
        """The run's case file (None: it has none); raises the file's ``ValueError`` when unusable."""
        if run.path not in self._read:
            path = case_file(run, self.split)
            try:
                self._read[run.path] = None if path is None else read_case_file(path, run)
            except ValueError as exc:
                self._read[run.path] = exc
        found = self._read[run.path]
        if isinstance(found, ValueError):
            raise found
        return found

    def means(self, run: Run) -> dict[str, float]:
        """Each metric column of the run's case file averaged over its cases (cells where the metric is
        undefined left out); empty when the run has no usable case file (:func:`read_table_cases` reports
        an unusable one). Count columns (``n_gt``, ``n_pred``: ``n_*``) are not metrics."""
        if run.path not in self._means:
            try:
                table = self.table(run)
            except ValueError:
                table = None
            out = {}
            for name, values in (table.columns.items() if table is not None else ()):
                if not name.startswith("n_"):
                    finite = values[np.isfinite(values)]
                    out[name] = float(finite.mean()) if finite.size else float("nan")
            self._means[run.path] = out
        return self._means[run.path]


def read_table_cases(runs: list[Run], files: CaseFiles, title: str) -> TableCases | None:
    """The per-case data of a table's completed runs (their case files of ``files.split``), paired by
    case id; None when a run has none.

    Raises ``ValueError`` listing every unreadable case file of the table at once.
    """
    if not runs:
        return None
    tables, errors = {}, []
    for r in runs:
        try:
            table = files.table(r)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        if table is None:
            return None
        tables[r.path] = table
    if errors:
        raise ValueError(f"{len(errors)} unusable case file(s) in {title}: " + " | ".join(errors))
    shared = set.intersection(*(set(t.ids) for t in tables.values()))
    first = tables[runs[0].path].ids
    cases = [c for c in first if c in shared]
    warnings = []
    union = _union(tables)
    lacking = []
    for r in runs:
        have = set(tables[r.path].ids)
        if len(have) < len(union):
            lacking.append((r, [c for c in union if c not in have]))
    if lacking:
        missing = sorted({c for _, miss in lacking for c in miss})
        names = [f"{r.path.name} ({r.loss}, seed {r.seed})" for r, _ in lacking]
        warnings.append(f"WARNING {title}: the runs' test cases differ — {_few(names)} lack {_few(missing)}; "
                        f"only the {len(cases)} cases every run has are paired")
    return TableCases(cases, tables, warnings)


def check_split_hashes(runs: list[Run], title: str) -> None:
    """Refuse to pool runs of one table tested on different splits (``metrics.json`` ``split.hash``)."""
    by_hash: dict[str, list[Run]] = {}
    for r in runs:
        split = r.record.get("split")
        h = split.get("hash") if isinstance(split, dict) else None
        if isinstance(h, str) and h:
            by_hash.setdefault(h, []).append(r)
    if len(by_hash) > 1:
        (h1, r1), (h2, r2) = list(by_hash.items())[:2]
        raise ValueError(
            f"{title}: runs were tested on different splits (metrics.json split.hash differs) and cannot be "
            f"pooled: {_few([str(r.path) for r in r1])} have {h1[:16]}…, {_few([str(r.path) for r in r2])} have "
            f"{h2[:16]}…" + (f" ({len(by_hash)} hashes in all)" if len(by_hash) > 2 else "")
            + "; compare runs of one split, or pass their dirs separately")


def _union(tables: dict[Path, CaseTable]) -> list[str]:
    seen: dict[str, None] = {}
    for t in tables.values():
        seen.update(dict.fromkeys(t.ids))
    return list(seen)


def _few(items: list[str]) -> str:
    head = ", ".join(str(i) for i in items[:_SHOW])
    return head + (f" … ({len(items)} in all)" if len(items) > _SHOW else f" ({len(items)})")
