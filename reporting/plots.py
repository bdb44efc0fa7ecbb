"""The comparison's PNG plots (matplotlib's object API: no pyplot, no global backend state).

Each function writes one file into ``out_dir`` and returns its path, or ``None`` when the runs hold
nothing to draw (e.g. no CSV logs, no size buckets, no saved predictions).
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from reporting.collect import Run
from reporting.leaderboard import Leaderboard, column
from reporting.markdown import grouped
from common.palette import class_colors, to_display

PREDICTIONS_FILE = "test_predictions.npz"
_DPI = 110


def metric_bars(lb: Leaderboard, out_dir: Path) -> Path | None:
    """Bars of each headline metric's mean per loss with the bootstrap CI as error bars."""
    parts = grouped(lb.table)
    if not parts:
        return None
    fig = Figure(figsize=(3.2 * len(lb.metrics) + 1, 2.8 * len(parts) + 0.6), dpi=_DPI, layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(parts), len(lb.metrics), squeeze=False))
    for i, (title, part) in enumerate(parts):
        part = part.sort_values("loss")
        for j, m in enumerate(lb.metrics):
            ax, c = axes[i, j], column(m)
            mean = part[f"{c}_mean"].to_numpy(dtype=float)
            err = np.vstack([mean - part[f"{c}_ci_low"].to_numpy(dtype=float),
                             part[f"{c}_ci_high"].to_numpy(dtype=float) - mean])
            x = np.arange(len(part))
            ax.bar(x, np.nan_to_num(mean), yerr=np.nan_to_num(err), capsize=3,
                   color=[_loss_color(l, lb.table) for l in part["loss"]])
            for xi, (mi, n) in enumerate(zip(mean, part[f"{c}_n"])):
                if not math.isnan(mi):
                    ax.annotate(f"n={n}", (xi, 0), xytext=(0, 2), textcoords="offset points",
                                ha="center", va="bottom", fontsize=7, color="white")
            ax.set_xticks(x, part["loss"], rotation=45, ha="right", fontsize=8)
            ax.set_title(f"{m}" if i else f"{m}\n", fontsize=9)
            if j == 0:
                ax.set_ylabel(title, fontsize=8)
            ax.set_ylim(0, max(1.0, float(np.nanmax(part[f"{c}_ci_high"].to_numpy(dtype=float), initial=0))))
    fig.suptitle(f"{lb.split}/ metrics: mean over seeds, {lb.confidence:.0%} bootstrap CI", fontsize=10)
    return _save(fig, out_dir / "metric_bars.png")


def size_recall(lb: Leaderboard, out_dir: Path) -> Path | None:
    """Object recall per object-size bucket, one line per loss (segmentation ``small_recall/*``)."""
    buckets = [m for m in lb.metrics if m.startswith("small_recall/")]
    parts = grouped(lb.table)
    if not buckets or not parts:
        return None
    fig = Figure(figsize=(5.5 * len(parts), 3.8), dpi=_DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(parts), squeeze=False)[0])
    x = np.arange(len(buckets))
    for ax, (title, part) in zip(axes, parts):
        for _, row in part.sort_values("loss").iterrows():
            mean = np.array([row[column(b) + "_mean"] for b in buckets], dtype=float)
            low = np.array([row[column(b) + "_ci_low"] for b in buckets], dtype=float)
            high = np.array([row[column(b) + "_ci_high"] for b in buckets], dtype=float)
            color = _loss_color(row["loss"], lb.table)
            ax.plot(x, mean, marker="o", label=f"{row['loss']} (n={row['n_runs']})", color=color)
            ax.fill_between(x, low, high, alpha=0.15, color=color)
        ax.set_xticks(x, [b.split("/", 1)[1] for b in buckets])
        ax.set_xlabel("object size bucket")
        ax.set_ylabel("object recall")
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, out_dir / "size_recall.png")


def class_iou_heatmap(runs: list[Run], lb: Leaderboard, out_dir: Path) -> Path | None:
    """Mean per-class IoU over completed seeds: rows = losses, columns = classes, one panel per datamodule."""
    prefix = f"{lb.split}/iou/"
    panels = []
    for dm in sorted({r.datamodule for r in runs}):
        done = [r for r in runs if r.datamodule == dm and r.completed]
        classes = sorted({int(k[len(prefix):]) for r in done for k in r.metrics
                          if k.startswith(prefix) and k[len(prefix):].isdigit()})
        if not classes:
            continue
        losses = sorted({r.loss for r in done})
        grid = np.array([[np.nanmean([r.metric(f"{prefix}{k}") for r in done if r.loss == loss] or [np.nan])
                          for k in classes] for loss in losses])
        panels.append((dm, losses, classes, grid, _class_names(done)))
    if not panels:
        return None
    width = max(4.0, 1.0 + 0.9 * max(len(p[2]) for p in panels))
    fig = Figure(figsize=(width * len(panels), 0.45 * max(len(p[1]) for p in panels) + 1.8), dpi=_DPI,
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
    for ax, (dm, losses, classes, grid, names) in zip(axes, panels):
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, "–" if math.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if v > 0.6 else "white")
        ax.set_xticks(range(len(classes)), [names[k] if k < len(names) else str(k) for k in classes],
                      rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(losses)), losses, fontsize=8)
        ax.set_title(f"{dm}: mean {lb.split} IoU per class", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, out_dir / "class_iou.png")


def training_curves(runs: list[Run], lb: Leaderboard, out_dir: Path) -> Path | None:
    """Per-epoch training loss and validation ``rank_by`` metric, mean over seeds, one line per loss."""
    val_key = f"val/{lb.rank_by}"
    curves: dict[str, dict[str, list[pd.DataFrame]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        log = _read_csv_log(r.path)
        if log is None or "epoch" not in log:
            continue
        loss_col = next((c for c in ("train/loss_epoch", "train/loss") if c in log), None)
        per_epoch = log.groupby("epoch").mean(numeric_only=True)
        frame = pd.DataFrame({"loss": per_epoch[loss_col] if loss_col else np.nan,
                              "val": per_epoch[val_key] if val_key in per_epoch else np.nan})
        curves[r.datamodule][r.loss].append(frame)
    if not curves:
        return None
    fig = Figure(figsize=(10, 3.2 * len(curves)), dpi=_DPI, layout="constrained")
    axes = fig.subplots(len(curves), 2, squeeze=False)
    for (dm, by_loss), (ax_loss, ax_val) in zip(sorted(curves.items()), axes):
        for loss, frames in sorted(by_loss.items()):
            mean = pd.concat(frames).groupby(level=0).mean()
            color = _loss_color(loss, lb.table)
            label = f"{loss} (n={len(frames)})"
            ax_loss.plot(mean.index, mean["loss"], label=label, color=color)
            ax_val.plot(mean.index, mean["val"], marker=".", label=label, color=color)
        ax_loss.set_title(f"{dm}: training loss (own scale per loss)", fontsize=9)
        ax_val.set_title(f"{dm}: {val_key}", fontsize=9)
        for ax in (ax_loss, ax_val):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(fontsize=7)
    return _save(fig, out_dir / "training_curves.png")


def prediction_grid(runs: list[Run], out_dir: Path, max_images: int = 4) -> list[Path]:
    """Per datamodule: image, ground truth and each loss's prediction on the same test images.

    Uses, for every loss, the run of the smallest seed that all losses completed, so that the test
    images are the same; a loss whose saved images differ from the first one's is left out.
    """
    written = []
    for dm in sorted({r.datamodule for r in runs}):
        done = [r for r in runs if r.datamodule == dm and r.completed and (r.path / PREDICTIONS_FILE).is_file()]
        seeds_by_loss = defaultdict(set)
        for r in done:
            seeds_by_loss[r.loss].add(r.seed)
        common = set.intersection(*seeds_by_loss.values()) if seeds_by_loss else set()
        if not common:
            continue
        seed = min(common, key=lambda s: (s is None, s))
        chosen = {r.loss: r for r in done if r.seed == seed}
        ref = None
        columns = []
        for loss, r in sorted(chosen.items()):
            with np.load(r.path / PREDICTIONS_FILE) as npz:
                data = {k: npz[k] for k in npz.files}
            if ref is None:
                ref = data
            elif data["image"].shape != ref["image"].shape or not np.allclose(data["image"], ref["image"]):
                continue
            columns.append((loss, data["prediction"]))
        if ref is None:
            continue
        written.append(_draw_predictions(dm, seed, ref, columns, out_dir, max_images))
    return written


def _draw_predictions(dm: str, seed, ref: dict, columns: list, out_dir: Path, max_images: int) -> Path:
    n = min(max_images, len(ref["image"]))
    names = [str(x) for x in ref.get("class_names", [])]
    num_classes = max(len(names), int(ref["mask"].max()) + 1, *(int(p.max()) + 1 for _, p in columns))
    cmap = ListedColormap(class_colors(num_classes))
    fig = Figure(figsize=(1.9 * (2 + len(columns)), 1.9 * n + 0.5), dpi=_DPI, layout="constrained")
    axes = fig.subplots(n, 2 + len(columns), squeeze=False)
    for i in range(n):
        panels = [("image", to_display(ref["image"][i])), ("ground truth", ref["mask"][i])]
        panels += [(loss, pred[i]) for loss, pred in columns]
        for j, (title, img) in enumerate(panels):
            ax = axes[i, j]
            if j == 0:
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            else:
                shown = np.ma.masked_where((img < 0) | (img >= num_classes), img)
                ax.imshow(shown, cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle(f"{dm}: test predictions (seed {seed})", fontsize=9)
    return _save(fig, out_dir / f"predictions_{dm}.png")


def _loss_color(loss: str, table: pd.DataFrame):
    losses = sorted(set(table["loss"]))
    return f"C{losses.index(loss) % 10}"


def _class_names(runs: list[Run]) -> list[str]:
    for r in runs:
        names = (r.config.get("datamodule") or {}).get("class_names")
        if isinstance(names, list):
            return [str(n) for n in names]
    return []


def _read_csv_log(run_dir: Path) -> pd.DataFrame | None:
    files = sorted((run_dir / "csv").glob("**/metrics.csv"))
    if not files:
        return None
    try:
        return pd.read_csv(files[-1])
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path)
    return path
