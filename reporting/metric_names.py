"""The report's own choices about metrics: the headline metrics per task, the default baseline loss and
CSV column names. What a metric's name means (direction, bounds, size buckets) is :mod:`metrics.names`'."""
from __future__ import annotations

HEADLINE = {
    "segmentation": ("miou", "dice_fg", "iou_rare", "small_recall/*", "nsd", "hd95"),
    # ap_50: per-image AP at IoU 0.5 from the case files (a case-only metric, reporting/cases.py), so a
    # detection table gets per-case statistics; map / map_50 / map_small are corpus-level (unit seed)
    "detection": ("map", "map_50", "ap_50", "map_small"),
}
DEFAULT_BASELINE = {"segmentation": "ce", "detection": "giou"}


def column(metric: str) -> str:
    """CSV column prefix of a metric name (``small_recall/small`` → ``small_recall_small``)."""
    return metric.replace("/", "_")
