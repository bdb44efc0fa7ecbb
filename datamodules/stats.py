"""Dataset statistics of a constructed datamodule (the command line is ``scripts/dataset_stats.py``).

Per split, the image count and sizes, and for the training split:

- class pixel counts (``class_pixel_counts()``, the numbers behind ``class_weights: auto``), class
  frequencies over labelled pixels, the ignored-pixel count and the foreground fraction,
- per foreground class the connected components (8-connected in 2-D, 26 in 3-D, as the
  ``object_recall`` metric counts them): count, per-image mean, median area and an area histogram — how small the objects are,
- the class weights every scheme of :mod:`losses.class_weights` derives from those counts.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch
from scipy import ndimage

from common.names import SPLITS
from datamodules.contract import MaskSource
from losses.class_weights import SCHEMES, weights_from_counts

AREA_EDGES = (4, 16, 64, 256, 1024)


def area_bins(edges: Sequence[int] = AREA_EDGES) -> list[str]:
    """Histogram bin names for component areas cut at ``edges``: ``<4, 4-15, …, >=1024``."""
    return [f"<{edges[0]}"] + [f"{a}-{b - 1}" for a, b in zip(edges, edges[1:])] + [f">={edges[-1]}"]


def split_masks(datamodule: Any, split: str) -> Iterator[np.ndarray]:
    """The ``(H, W)`` masks of a split, whole images: ``datamodule.split_masks`` when it has one, else
    the masks of the split's dataloader, one sample at a time."""
    if isinstance(datamodule, MaskSource):
        yield from datamodule.split_masks(split)
        return
    datamodule.setup("fit" if split in ("train", "val") else "test")
    loader = getattr(datamodule, f"{split}_dataloader")()
    for batch in loader:
        for mask in batch["mask"]:
            yield mask.numpy()


def dataset_stats(datamodule: Any, edges: Sequence[int] = AREA_EDGES) -> dict[str, Any]:
    """Every number of the report (see module docstring) as a JSON-ready dict."""
    num_classes = int(datamodule.num_classes)
    ignore_index = datamodule.ignore_index
    names = list(datamodule.class_names)
    bins = area_bins(edges)
    splits: dict[str, Any] = {}
    components = {names[c]: {"count": 0, "areas": []} for c in range(1, num_classes)}
    ignored = 0
    for split in SPLITS:
        heights, widths = [], []
        for mask in split_masks(datamodule, split):
            heights.append(mask.shape[-2])
            widths.append(mask.shape[-1])
            if split != "train":
                continue
            if ignore_index is not None:
                ignored += int(np.count_nonzero(mask == ignore_index))
            for c in range(1, num_classes):
                labels, count = ndimage.label(mask == c, structure=np.ones((3,) * mask.ndim, dtype=bool))
                if count:
                    components[names[c]]["count"] += count
                    components[names[c]]["areas"].extend(np.bincount(labels.ravel())[1:].tolist())
        splits[split] = {"images": len(heights), "height": _spread(heights), "width": _spread(widths)}
    counts = datamodule.class_pixel_counts().to(torch.float64)
    labelled = float(counts.sum())
    n_train = max(splits["train"]["images"], 1)
    per_class = {}
    for name, found in components.items():
        areas = np.asarray(found["areas"], dtype=np.int64)
        histogram = np.bincount(np.searchsorted(edges, areas, side="right"), minlength=len(bins))
        per_class[name] = {
            "components": found["count"],
            "components_per_image": found["count"] / n_train,
            "median_area": float(np.median(areas)) if areas.size else None,
            "area_histogram": dict(zip(bins, histogram.tolist())),
        }
    weights = {}
    for scheme in SCHEMES:
        try:
            weights[scheme] = [round(w, 6) for w in weights_from_counts(counts, scheme).tolist()]
        except ValueError as error:  # e.g. no labelled pixels at all
            weights[scheme] = str(error)
    return {
        "num_classes": num_classes,
        "class_names": names,
        "ignore_index": ignore_index,
        "splits": splits,
        "class_pixels": counts.tolist(),
        "class_frequency": (counts / labelled).tolist() if labelled else [0.0] * num_classes,
        "ignored_pixels": ignored,
        "foreground_fraction": float(counts[1:].sum() / labelled) if labelled else 0.0,
        "objects": per_class,
        "class_weights": weights,
    }


def format_report(stats: dict[str, Any], title: str) -> str:
    """The stats as a markdown report (what the CLI prints and saves as ``stats.md``)."""
    lines = [f"# Dataset statistics: {title}", "", "| split | images | height min/median/max | width min/median/max |",
             "|---|---|---|---|"]
    for split, info in stats["splits"].items():
        h, w = info["height"], info["width"]
        lines.append(f"| {split} | {info['images']} | {h['min']}/{h['median']}/{h['max']} | "
                     f"{w['min']}/{w['median']}/{w['max']} |")
    lines += ["", f"Training split: foreground fraction {stats['foreground_fraction']:.4%} of labelled pixels, "
              f"{stats['ignored_pixels']} ignored pixels.", "",
              "| class | pixels | frequency | " + " | ".join(stats["class_weights"]) + " |",
              "|---|---|---|" + "---|" * len(stats["class_weights"])]
    for c, name in enumerate(stats["class_names"]):
        weights = [f"{w[c]:.4g}" if isinstance(w, list) else "n/a" for w in stats["class_weights"].values()]
        lines.append(f"| {c} {name} | {stats['class_pixels'][c]:.0f} | {stats['class_frequency'][c]:.4%} | "
                     + " | ".join(weights) + " |")
    bins = area_bins()
    lines += ["", "Connected components (8-connected in 2-D, 26 in 3-D) per foreground class, by area in pixels (voxels):", "",
              "| class | components | per image | median area | " + " | ".join(bins) + " |",
              "|---|---|---|---|" + "---|" * len(bins)]
    for name, info in stats["objects"].items():
        median = "–" if info["median_area"] is None else f"{info['median_area']:.0f}"
        lines.append(f"| {name} | {info['components']} | {info['components_per_image']:.2f} | {median} | "
                     + " | ".join(str(v) for v in info["area_histogram"].values()) + " |")
    return "\n".join(lines) + "\n"


def _spread(values: list[int]) -> dict[str, float | int | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": int(min(values)), "median": float(np.median(values)), "max": int(max(values))}

