"""Class colours shared by the report's prediction grid and the W&B prediction images."""
from __future__ import annotations

import numpy as np

# Class 0 (background) black; then well-separated hues. Labels outside [0, n) (ignore_index) are grey.
CLASS_COLORS = ("#000000", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
                "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3")
IGNORE_COLOR = "#808080"


def class_colors(num_classes: int) -> list[str]:
    """``num_classes`` colours (cycling after 16)."""
    return [CLASS_COLORS[k % len(CLASS_COLORS)] for k in range(num_classes)]


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
