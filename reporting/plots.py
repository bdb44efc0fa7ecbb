"""The comparison's PNG plots (matplotlib's object API: no pyplot, no global backend state).

Each function writes one file into ``out_dir`` and returns its path, or ``None`` when the runs hold
nothing to draw. Every series has its own colour from ``common.palette.series_colors`` (23 distinct
hues, stable per set of rows); the baseline is black and drawn heavier. Legends sit outside the axes.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator
from scipy import ndimage

from common.palette import BASELINE_COLOR, class_colors, series_colors, to_display
from metrics.names import higher_is_better
from reporting.budget import carried_best, curve, nanmean0
from reporting.collect import Run
from reporting.leaderboard import Leaderboard, row_labels
from reporting.metric_names import column
from reporting.ranks import AcrossTables
from reporting.stats import t_interval

PREDICTIONS_FILE = "test_predictions.npz"
_DPI = 110


def colors_for(lb: Leaderboard) -> dict[str, str]:
    labels = row_labels(lb.table)
    base = next((b for b in lb.table["baseline"] if b in labels), None)
    return series_colors(labels, base)


def _direction(metric: str) -> str:
    return "" if higher_is_better(metric) else " (lower is better)"


def strip_plots(lb: Leaderboard, out_dir: Path) -> Path | None:
    """Every seed's value per row (dots), the mean (bar) and its CI (line); one panel per table × metric."""
    parts = lb.parts()
    if not parts:
        return None
    colors = colors_for(lb)
    n_rows = max(len(p) for _, p in parts)
    fig = Figure(figsize=(max(3.2, 0.32 * n_rows + 1.2) * len(lb.metrics), 3.0 * len(parts) + 0.6), dpi=_DPI,
                 layout="constrained")
    axes = fig.subplots(len(parts), len(lb.metrics), squeeze=False)
    rng = np.random.default_rng(0)
    for i, (key, part) in enumerate(parts):
        base = lb.baseline_label(part)
        labels = row_labels(part)
        for j, m in enumerate(lb.metrics):
            ax, c = axes[i, j], column(m)
            for x, ((_, row), label) in enumerate(zip(part.iterrows(), labels)):
                runs = [r for r in lb.runs_of(key, row) if r.completed]
                vals = np.array([lb.values(r, m) for r in runs], dtype=float)
                vals = vals[np.isfinite(vals)]
                color, heavy = colors[label], label == base
                ax.scatter(x + rng.uniform(-0.12, 0.12, vals.size), vals, s=22 if heavy else 14, color=color,
                           zorder=3, edgecolors="white", linewidths=0.4)
                if not math.isnan(row[f"{c}_mean"]):
                    ax.hlines(row[f"{c}_mean"], x - 0.28, x + 0.28, color=color, lw=2.5 if heavy else 1.5, zorder=4)
                if not math.isnan(row[f"{c}_ci_low"]):
                    ax.vlines(x + 0.3, row[f"{c}_ci_low"], row[f"{c}_ci_high"], color=color, lw=1, zorder=2)
            ticks = [f"{label}{' †' if row['n_failed'] else ''}" for label, (_, row) in zip(labels, part.iterrows())]
            ax.set_xticks(range(len(part)), ticks, rotation=60, ha="right", fontsize=7)
            for tick, label in zip(ax.get_xticklabels(), labels):
                tick.set_color(colors[label])
                if label == base:
                    tick.set_fontweight("bold")
            ax.set_title(f"{m}{_direction(m)}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            if j == 0:
                ax.set_ylabel(key.title, fontsize=8)
    fig.suptitle(f"{lb.split}/ metrics per seed: dots = seeds, bar = mean, line = {lb.confidence:.0%} "
                 f"{'t' if lb.ci_method == 't' else 'CI'} interval; rows by rank; † = failed runs", fontsize=9)
    return _save(fig, out_dir / "seed_strips.png")


def size_recall(lb: Leaderboard, out_dir: Path) -> Path | None:
    """Object recall per object-size bucket, one line per row (segmentation ``small_recall/*``)."""
    buckets = [m for m in lb.metrics if m.startswith("small_recall/")]
    parts = lb.parts()
    if not buckets or not parts:
        return None
    colors = colors_for(lb)
    fig = Figure(figsize=(6.5 * len(parts), 3.8), dpi=_DPI, layout="constrained")
    axes = fig.subplots(1, len(parts), squeeze=False)[0]
    x = np.arange(len(buckets))
    for ax, (key, part) in zip(axes, parts):
        base = lb.baseline_label(part)
        for label, (_, row) in zip(row_labels(part), part.iterrows()):
            mean = np.array([row[column(b) + "_mean"] for b in buckets], dtype=float)
            low = np.array([row[column(b) + "_ci_low"] for b in buckets], dtype=float)
            high = np.array([row[column(b) + "_ci_high"] for b in buckets], dtype=float)
            ax.plot(x, mean, marker="o", label=f"{label} (n={row['n_runs']})", color=colors[label],
                    lw=2.5 if label == base else 1.2, zorder=3 if label == base else 2)
            ax.fill_between(x, low, high, alpha=0.12, color=colors[label])
        ax.set_xticks(x, [b.split("/", 1)[1] for b in buckets])
        ax.set_xlabel("object size bucket (px)")
        ax.set_ylabel("object recall")
        ax.set_ylim(0, 1.02)
        ax.set_title(key.title, fontsize=9)
        ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, out_dir / "size_recall.png")


def class_heatmap(lb: Leaderboard, out_dir: Path, family: str = "iou") -> Path | None:
    """Mean per-class ``family`` (``iou``, ``ap``, ``hd95``) over completed seeds: rows × classes per table."""
    prefix = f"{lb.split}/{family}/"
    panels = []
    for key, part in lb.parts():
        runs = [r for _, row in part.iterrows() for r in lb.runs_of(key, row) if r.completed]
        classes = sorted({int(k[len(prefix):]) for r in runs for k in r.metrics
                          if k.startswith(prefix) and k[len(prefix):].isdigit()})
        if not classes:
            continue
        grid = np.array([[_mean([r.metric(f"{prefix}{k}") for r in lb.runs_of(key, row) if r.completed])
                          for k in classes] for _, row in part.iterrows()])
        panels.append((key, row_labels(part), classes, grid, class_names(runs)))
    if not panels:
        return None
    higher = higher_is_better(family)
    width = max(4.5, 1.5 + 0.9 * max(len(p[2]) for p in panels))
    fig = Figure(figsize=(width * len(panels), 0.32 * max(len(p[1]) for p in panels) + 2.0), dpi=_DPI,
                 layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, labels, classes, grid, names) in zip(axes, panels):
        finite = grid[np.isfinite(grid)]
        vmin, vmax = (0.0, 1.0) if higher else (float(finite.min(initial=0)), float(finite.max(initial=1)))
        im = ax.imshow(grid, vmin=vmin, vmax=vmax, cmap="viridis" if higher else "viridis_r", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            bright = (v - vmin) / (vmax - vmin + 1e-12) > 0.6 if higher else (v - vmin) / (vmax - vmin + 1e-12) < 0.4
            ax.text(j, i, "–" if math.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=6.5,
                    color="black" if bright else "white")
        ax.set_xticks(range(len(classes)), [names[k] if k < len(names) else str(k) for k in classes],
                      rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"{key.title}: mean {lb.split} {family} per class{_direction(family)}", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, out_dir / f"class_{family}.png")


def learning_curves(lb: Leaderboard, out_dir: Path) -> Path | None:
    """Validation curve of ``rank_by`` per table, one colour per row: each run's best value so far,
    carried past the epoch its run stopped at (:func:`reporting.budget.carried_best`, the numbers of
    budget.csv), mean over the row's seeds with a t-interval band clipped to the metric's range.
    A dot marks the epoch at which each of the row's runs ended."""
    colors = colors_for(lb)
    panels = []
    for key, part in lb.parts():
        series = []
        for label, (_, row) in zip(row_labels(part), part.iterrows()):
            curves = [(r, curve(r, lb.curve_key(r))) for r in lb.runs_of(key, row) if r.completed]
            curves = [(r, c) for r, c in curves if c is not None and len(c)]
            if curves:
                series.append((label, [c for _, c in curves], lb.curve_key(curves[0][0])))
        if series:
            panels.append((key, lb.baseline_label(part), series))
    if not panels:
        return None
    fig = Figure(figsize=(9.5, 3.4 * len(panels)), dpi=_DPI, layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (key, base, series) in zip(axes, panels):
        metric = series[0][2]
        higher = higher_is_better(metric)
        epochs = max(len(c) for _, curves, _ in series for c in curves)
        for label, curves, _ in series:
            stack = carried_best(curves, higher, epochs)
            mean = nanmean0(stack)
            low, high = _band(stack, lb.confidence)
            if higher:  # fractions: an interval of 3 seeds can reach past [0, 1]
                low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)
            x = np.arange(1, epochs + 1)
            heavy = label == base
            ax.plot(x, mean, color=colors[label], lw=2.4 if heavy else 1.2, label=f"{label} (n={len(curves)})",
                    zorder=3 if heavy else 2)
            ax.fill_between(x, low, high, color=colors[label], alpha=0.08, lw=0)
            ends = [len(c) for c in curves if len(c) < epochs]
            ax.plot(ends, [mean[e - 1] for e in ends], "o", ms=2.5, color=colors[label], zorder=4)
        ax.set_title(f"{key.title}: best {metric} so far by epoch{_direction(metric)}\nmean over seeds, "
                     f"{lb.confidence:.0%} t band; a stopped run keeps its best; dot = a run ended", fontsize=8.5)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  ncols=2 if len(series) > 14 else 1)
    return _save(fig, out_dir / "learning_curves.png")


def _band(stack: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-epoch t interval over the seeds that reached the epoch (NaN with fewer than 2)."""
    low = np.full(stack.shape[1], math.nan)
    high = low.copy()
    for e in range(stack.shape[1]):
        col = stack[:, e][np.isfinite(stack[:, e])]
        if col.size >= 2:
            low[e], high[e] = (float(v) for v in t_interval(col, confidence))
    return low, high


def cd_diagram(across: AcrossTables, lb: Leaderboard, out_dir: Path) -> Path | None:
    """Critical-difference diagram (scikit-posthocs) of the average ranks across tables."""
    if across.posthoc is None:
        return None
    import scikit_posthocs as skp

    ranks = across.ranks.dropna(subset=["avg_rank"])
    labels = [f"{l} {p}".strip() for l, p in zip(ranks["loss"], ranks["loss_params"])]
    colors = colors_for(lb)
    fig = Figure(figsize=(9, 0.28 * len(labels) + 1.8), dpi=_DPI, layout="constrained")
    ax = fig.subplots()
    skp.critical_difference_diagram(dict(zip(labels, ranks["avg_rank"])), across.posthoc, ax=ax,
                                    alpha=lb.alpha, color_palette={l: colors.get(l, BASELINE_COLOR) for l in labels},
                                    label_props={"fontsize": 7})
    fig.suptitle(f"{across.metric}: average rank over n_blocks = {across.n_blocks} tables (1 = best); bars join rows "
                 f"the Nemenyi test cannot tell apart (α = {lb.alpha:g}); CD = {across.cd:.2f}", fontsize=8.5)
    if across.cd >= across.values.shape[1] - 1:
        ax.set_title(f"too few blocks to conclude anything: CD {across.cd:.1f} ≥ k − 1 = {across.values.shape[1] - 1}",
                     fontsize=8, color="#a12")
    return _save(fig, out_dir / "cd_diagram.png")


def prediction_grid(lb: Leaderboard, out_dir: Path, max_images: int = 3) -> list[Path]:
    """Per table: image, ground truth and each row's prediction on the same test images, a class legend,
    and under every image a zoom on its smallest ground-truth object (outlined in the full views).

    Uses, for every row, the run of the smallest seed that all rows with saved predictions completed,
    so the test images are the same; a row whose saved images differ from the first one's is left out.
    """
    written = []
    for key, part in lb.parts():
        by_row = {}
        for label, (_, row) in zip(row_labels(part), part.iterrows()):
            runs = [r for r in lb.runs_of(key, row) if r.completed and (r.path / PREDICTIONS_FILE).is_file()]
            if runs:
                by_row[label] = runs
        seed_sets = [{r.seed for r in runs} for runs in by_row.values()]
        common = set.intersection(*seed_sets) if seed_sets else set()
        if not common:
            continue
        seed = min(common, key=lambda s: (s is None, s))
        ref, columns = None, []
        for label, runs in by_row.items():
            run = next(r for r in runs if r.seed == seed)
            with np.load(run.path / PREDICTIONS_FILE) as npz:
                data = {k: npz[k] for k in npz.files}
            if not {"image", "mask", "prediction"} <= set(data) or data["mask"].ndim != 3:
                continue
            if ref is None:
                ref = data
            elif data["image"].shape != ref["image"].shape or not np.allclose(data["image"], ref["image"]):
                continue
            columns.append((label, data["prediction"]))
        if ref is None:
            continue
        name = "_".join(p for p in (key.datamodule, key.model if len({k.model for k in lb.grouping.tables}) > 1 else "",
                                    _slug(key.settings)) if p)
        written.append(_draw_predictions(key.title, name, seed, ref, columns, out_dir, max_images))
    return written


def _draw_predictions(title: str, name: str, seed, ref: dict, columns: list, out_dir: Path, max_images: int) -> Path:
    n = min(max_images, len(ref["image"]))
    names = [str(x) for x in ref.get("class_names", [])]
    num_classes = max(len(names), int(ref["mask"].max()) + 1, *(int(p.max()) + 1 for _, p in columns))
    palette = class_colors(num_classes)
    cmap = ListedColormap(palette)
    ncols = 2 + len(columns)
    width = max(8.0, 1.6 * ncols)  # room for the title and the legend when few rows are compared
    panel = min(1.8, width / ncols)
    fig = Figure(figsize=(width, 2 * n * panel + 1.2), dpi=_DPI, layout="constrained")
    axes = fig.subplots(2 * n, ncols, squeeze=False)
    for i in range(n):
        box = smallest_object_box(ref["mask"][i])
        panels = [("image", to_display(ref["image"][i])), ("ground truth", ref["mask"][i])]
        panels += [(label, pred[i]) for label, pred in columns]
        for j, (label, img) in enumerate(panels):
            for zoom, ax in ((False, axes[2 * i, j]), (True, axes[2 * i + 1, j])):
                shown = img
                if zoom and box is not None:
                    (y0, y1), (x0, x1) = box
                    shown = img[y0:y1, x0:x1]
                if j == 0:
                    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")
                else:
                    masked = np.ma.masked_where((shown < 0) | (shown >= num_classes), shown)
                    ax.imshow(masked, cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if not zoom and box is not None:
                    (y0, y1), (x0, x1) = box
                    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="#ffffff", lw=1))
                if zoom:
                    for side in ax.spines.values():
                        side.set_edgecolor("#888")
                if i == 0 and not zoom:
                    ax.set_title(label, fontsize=7)
            if j == 0:
                axes[2 * i + 1, 0].set_ylabel("zoom: smallest\nobject", fontsize=6.5)
    handles = [Patch(color=palette[k], label=names[k] if k < len(names) else f"class {k}") for k in range(num_classes)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(num_classes, 4 if width < 10 else 6),
               fontsize=7, frameon=False)
    fig.suptitle(f"{title}: test predictions (seed {seed})\nunder each image: zoom on its smallest object (white box)",
                 fontsize=8.5)
    return _save(fig, out_dir / f"predictions_{name}.png")


def smallest_object_box(mask: np.ndarray, margin: int = 3,
                        min_size: int = 12) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Crop window ((y0, y1), (x0, x1)) around the smallest foreground connected component, at least
    ``min_size`` px wide; None for an image without foreground."""
    best = None
    for k in np.unique(mask):
        if k <= 0:
            continue
        labelled, count = ndimage.label(mask == k)
        if count == 0:
            continue
        sizes = np.bincount(labelled.ravel())[1:]
        idx = int(np.argmin(sizes))
        if best is None or sizes[idx] < best[0]:
            best = (int(sizes[idx]), ndimage.find_objects(labelled)[idx])
    if best is None:
        return None
    sl = best[1]
    h, w = mask.shape
    out = []
    for s, size in zip(sl, (h, w)):
        centre = (s.start + s.stop) / 2
        half = max(min_size, (s.stop - s.start) + 2 * margin) / 2
        lo = int(max(0, math.floor(centre - half)))
        hi = int(min(size, math.ceil(centre + half)))
        out.append((lo, hi))
    return out[0], out[1]


def class_names(runs: list[Run]) -> list[str]:
    for r in runs:
        names = (r.config.get("datamodule") or {}).get("class_names")
        if isinstance(names, list):
            return [str(n) for n in names]
    return []


def _mean(values: list[float]) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in text)[:60]


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path)
    return path


def rank_blobs(lb: Leaderboard, out_dir: Path, max_tables: int = 12) -> Path | None:
    """challengeR's blob plot per table: for every row (x, in full-data rank order) the share of bootstrap
    resamples giving it each rank (circle area), the full-data rank (black dot) and the 5–95 % range (line)."""
    items = list(lb.stability.items())[:max_tables]
    if not items:
        return None
    colors = colors_for(lb)
    fig = Figure(figsize=(max(8.0, 0.45 * max(len(s.labels) for _, s in items) + 1.5), 3.2 * len(items) + 0.8),
                 dpi=_DPI, layout="constrained")
    axes = fig.subplots(len(items), 1, squeeze=False)[:, 0]
    for ax, (key, st) in zip(axes, items):
        order = np.argsort(st.full_rank, kind="stable")
        n = len(order)
        for x, i in enumerate(order):
            share = st.counts[i] / st.n_resamples
            ks = np.nonzero(share)[0]
            color = colors.get(st.labels[i], BASELINE_COLOR)
            ax.scatter(np.full(ks.size, x), ks + 1, s=600 * share[ks], color=color, alpha=0.6, lw=0)
            ax.vlines(x, st.p05[i], st.p95[i], color=color, lw=1)
            ax.plot(x, st.full_rank[i], "o", ms=3, color="black")
        ax.set_xticks(range(n), [st.labels[i] for i in order], rotation=60, ha="right", fontsize=7)
        ax.set_ylim(n + 0.7, 0.3)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("rank")
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(f"{key.title}: Kendall τ to the full ranking {st.tau_mean:.2f} "
                     f"(5–95 %: {st.tau_p05:.2f}–{st.tau_p95:.2f})", fontsize=8.5)
    fig.suptitle(f"Rank stability of {lb.rank_by}: {items[0][1].n_resamples} bootstrap resamples of seeds and test "
                 "cases\narea = share of resamples at that rank, line = 5–95 %, black dot = full-data rank", fontsize=8.5)
    return _save(fig, out_dir / "rank_stability.png")


def case_scatter(lb: Leaderboard, out_dir: Path, top: int = 3, max_tables: int = 6) -> Path | None:
    """Per table with per-case data: each test case's value (mean over the shared seeds) for the top
    ``top`` rows (y) against the baseline (x); points above the diagonal are cases the row wins."""
    m = lb.rank_by
    panels = []
    for key, part in lb.parts():
        per_case = lb.cases[key].rows.get(m) if key in lb.cases else None
        base = lb.baseline_label(part)
        if per_case is None or base is None:
            continue
        by_label = {k.label: v for k, v in per_case.items()}
        others = [label for label in row_labels(part) if label != base][:top]
        panels.append((key, base, by_label, others, part))
        if len(panels) == max_tables:
            break
    if not panels:
        return None
    ncols = max(len(p[3]) for p in panels)
    fig = Figure(figsize=(3.0 * ncols + 0.5, 3.0 * len(panels) + 0.6), dpi=_DPI, layout="constrained")
    axes = fig.subplots(len(panels), ncols, squeeze=False)
    higher = higher_is_better(m)
    colors = colors_for(lb)
    for i, (key, base, by_label, others, part) in enumerate(panels):
        bs, bx = by_label[base]
        for j in range(ncols):
            ax = axes[i, j]
            if j >= len(others):
                ax.set_axis_off()
                continue
            rs, x = by_label[others[j]]
            shared = [s for s in rs if s in set(bs)]
            if not shared:
                ax.set_axis_off()
                continue
            yv = np.nanmean(x[[rs.index(s) for s in shared]], axis=0)
            xv = np.nanmean(bx[[bs.index(s) for s in shared]], axis=0)
            win = (yv > xv) if higher else (yv < xv)
            ax.scatter(xv, yv, s=8, color=np.where(win, colors.get(others[j], "#1f77b4"), "#999999"), lw=0)
            lo = float(np.nanmin([xv.min(), yv.min()]))
            hi = float(np.nanmax([xv.max(), yv.max()]))
            ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
            ax.set_xlabel(f"{base} (baseline)", fontsize=7)
            ax.set_ylabel(others[j], fontsize=7)
            ax.set_title(f"{key.title}: {int(win.sum())}/{win.size} cases better", fontsize=7.5)
    fig.suptitle(f"{lb.split} {m}{_direction(m)} per test case (mean over the shared seeds): top rows vs the baseline",
                 fontsize=8.5)
    return _save(fig, out_dir / "case_scatter.png")
