"""The report's own choices about metrics: the headline metrics per task, the default baseline loss and
CSV column names. What a metric's name means (direction, bounds, size buckets) is :mod:`metrics.names`'."""
from __future__ import annotations

HEADLINE = {
    "segmentation": ("miou", "dice_fg", "iou_rare", "small_recall/*", "nsd", "hd95"),
    "detection": ("map", "map_small"),
}
DEFAULT_BASELINE = {"segmentation": "ce", "detection": "giou"}


def column(metric: str) -> str:
    """CSV column prefix of a metric name (``small_recall/small`` → ``small_recall_small``)."""
    return metric.replace("/", "_")
