"""Training budget: validation curves, convergence, and how the ranking changes with the epochs trained.

**Curves** come from ``metrics.json``'s ``history`` (one value per epoch run); older runs without it
fall back to the CSV log's per-epoch validation values, cut to the record's ``epochs`` (the log also
holds the final evaluation of the best checkpoint); a run with neither has no curve.

**Converged** (one run): the run's validation curve of the ranked metric has levelled off when
early stopping ended it, or when — with ``E`` epochs run and the last quarter ``q = max(1, E // 4)``
epochs — the best value of the last ``q`` epochs improves on the best value of the epochs before by
at most ``CONVERGE_TOL`` = 0.01 (absolute, the metrics are fractions; for lower-is-better metrics,
1 % of the earlier best). Fewer than 2 epochs, or no value before the last quarter: unknown; no
value in the last quarter (the metric went NaN): not converged. The leaderboard's ``converged`` column is
the share of a row's completed runs with a curve that converged by this rule.

**Budget** (rank by epoch): at every epoch ``e``, each row's value is the mean over its seeds of the
best validation value up to ``e`` — the checkpoint a run stopped at ``e`` would be evaluated with
(runs that stopped early keep their best). Rows are ranked per epoch (1 = best). Kendall's τ between
the ranking at half the budget (epoch ``ceil(E/2)``, 1-based) and at the last epoch says how much
of the final order was already there: τ = 1 same order, τ ≈ 0 unrelated.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from reporting.collect import Run
from runtime.run_record import CONVERGED_TOL as CONVERGE_TOL
from runtime.run_record import converged as record_converged


def curve(run: Run, key: str) -> np.ndarray | None:
    """Per-epoch values of ``key`` (NaN where an epoch did not log it), or None without any record."""
    values = run.history.get(key)
    if values is None and not run.history:
        values = _csv_curve(run.path, key)
        epochs = run.record.get("epochs")
        if values and isinstance(epochs, int) and 0 < epochs < len(values):
            values = values[:epochs]  # the log's last "epoch" is the evaluation of the best checkpoint
    if not values:
        return None
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def running_best(values: np.ndarray, higher: bool) -> np.ndarray:
    """Best value so far at every epoch (NaN until the first finite value)."""
    filled = np.where(np.isfinite(values), values, -np.inf if higher else np.inf)
    best = np.maximum.accumulate(filled) if higher else np.minimum.accumulate(filled)
    return np.where(np.isfinite(best), best, math.nan)


def carried_best(curves: list[np.ndarray], higher: bool, epochs: int | None = None) -> np.ndarray:
    """``(runs, epochs)``: each run's best value so far, carried past its last epoch (a run that
    stopped keeps the checkpoint of its best epoch) to ``epochs`` (default: the longest run), so every
    seed counts at every epoch and no mean jumps when a run ends."""
    epochs = epochs or max(len(c) for c in curves)
    rows = []
    for c in curves:
        best = running_best(c, higher)
        rows.append(np.concatenate([best, np.full(epochs - len(best), best[-1] if len(best) else math.nan)]))
    return np.vstack(rows)


def converged(values: np.ndarray | None, higher: bool, early_stopped: bool | None = None,
              tol: float = CONVERGE_TOL) -> bool | None:
    """The run record's rule (``runtime.run_record.converged``); None when it cannot be told (fewer
    than 2 epochs, or no finite value before the last quarter)."""
    if early_stopped:
        return True
    if values is None or len(values) < 2 or not np.isfinite(values[: -max(1, len(values) // 4)]).any():
        return None
    return record_converged(values.tolist(), "max" if higher else "min", tol)


def budget_rows(key: dict, rows: dict[tuple[str, str], list[np.ndarray]],
                higher: bool) -> tuple[list[dict], dict | None]:
    """Rank-by-epoch rows for one table and its Kendall τ summary (None with < 2 rows or < 2 epochs).

    ``rows``: (loss, loss_params) → the curves of its completed runs; ``key``: the table's columns.
    """
    epochs = max((len(c) for curves in rows.values() for c in curves), default=0)
    labels = [label for label, curves in rows.items() if curves]
    if epochs == 0 or not labels:
        return [], None
    means = np.full((epochs, len(labels)), math.nan)
    for j, label in enumerate(labels):
        means[:, j] = nanmean0(carried_best(rows[label], higher, epochs))
    ranks = pd.DataFrame(means).rank(axis=1, ascending=not higher, method="min").to_numpy()
    out = [{**key, "loss": label[0], "loss_params": label[1], "epoch": e + 1, "mean": means[e, j], "rank": ranks[e, j]}
           for j, label in enumerate(labels) for e in range(epochs)]
    if len(labels) < 2 or epochs < 2:
        return out, None
    half = math.ceil(epochs / 2) - 1
    a, b = ranks[half], ranks[-1]
    ok = np.isfinite(a) & np.isfinite(b)
    tau, p = sps.kendalltau(a[ok], b[ok]) if ok.sum() >= 2 else (math.nan, math.nan)
    return out, {**key, "epoch_half": half + 1, "epoch_final": epochs, "kendall_tau": _float(tau), "p": _float(p),
                 "n_rows": int(ok.sum())}


def nanmean0(stack: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the finite entries; NaN where a column has none (no warning)."""
    counts = np.isfinite(stack).sum(axis=0)
    total = np.where(np.isfinite(stack), stack, 0.0).sum(axis=0)
    return np.where(counts > 0, total / np.maximum(counts, 1), math.nan)


def _float(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _csv_curve(run_dir: Path, key: str) -> list[float | None] | None:
    """Per-epoch means of ``key`` from the newest Lightning CSV log under ``run_dir/csv``."""
    files = sorted((run_dir / "csv").glob("**/metrics.csv"))
    if not files:
        return None
    try:
        log = pd.read_csv(files[-1])
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError):
        return None
    if "epoch" not in log or key not in log:
        return None
    per_epoch = log.groupby("epoch")[key].mean()
    return [None if math.isnan(v) else float(v) for v in per_epoch.to_numpy(dtype=float)]
