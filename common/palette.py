"""Colours: classes (the report's prediction grid and the W&B prediction images) and compared series
(one per loss row in the report's plots)."""
from __future__ import annotations

import numpy as np

# Class 0 (background) black; then well-separated hues. Labels outside [0, n) (ignore_index) are grey.
CLASS_COLORS = ("#000000", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
                "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3")
IGNORE_COLOR = "#808080"
# Kelly's 20 colours of maximum contrast (white and black left out) plus three more hues: distinct
# for 23 series. The baseline is drawn in BASELINE_COLOR, thicker, and never takes one of these.
SERIES_COLORS = ("#0067A5", "#BE0032", "#008856", "#F38400", "#875692", "#A1CAF1", "#F3C300", "#882D17",
                 "#8DB600", "#E68FAC", "#604E97", "#C2B280", "#F99379", "#2B3D26", "#B3446C", "#DCD300",
                 "#654522", "#E25822", "#848482", "#F6A600", "#009E9E", "#D100D1", "#1A237E")
BASELINE_COLOR = "#000000"


def class_colors(num_classes: int) -> list[str]:
    """``num_classes`` colours (cycling after 16)."""
    return [CLASS_COLORS[k % len(CLASS_COLORS)] for k in range(num_classes)]


def series_colors(labels: list[str], baseline: str | None = None) -> dict[str, str]:
    """A colour per label, stable for a given set of labels (sorted order); ``baseline`` is black.
    Beyond 23 non-baseline labels colours repeat — the legend then also carries the label."""
    others = sorted(l for l in set(labels) if l != baseline)
    colors = {l: SERIES_COLORS[i % len(SERIES_COLORS)] for i, l in enumerate(others)}
    if baseline in labels:
        colors[baseline] = BASELINE_COLOR
    return colors


def colorize(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Label map (H, W) → RGB uint8 (H, W, 3); labels outside ``[0, num_classes)`` in grey."""
    table = np.array([_rgb(c) for c in class_colors(num_classes)] + [_rgb(IGNORE_COLOR)], dtype=np.uint8)
    index = np.where((labels >= 0) & (labels < num_classes), labels, num_classes)
    return table[index]


def to_display(image: np.ndarray) -> np.ndarray:
    """Network input (C, H, W) → (H, W) or (H, W, 3) in [0, 1], min-max scaled (inputs may be normalized)."""
    img = image[0] if image.shape[0] < 3 else np.moveaxis(image[:3], 0, -1)
    low, high = float(img.min()), float(img.max())
    return (img - low) / (high - low) if high > low else np.zeros_like(img, dtype=np.float64)


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
