"""Headline metrics per task, their direction (higher or lower is better) and CSV column names."""
from __future__ import annotations

import math
import re

HEADLINE = {
    "segmentation": ("miou", "dice_fg", "iou_rare", "small_recall/*", "nsd", "hd95"),
    "detection": ("map", "map_small"),
}
DEFAULT_BASELINE = {"segmentation": "ce", "detection": "giou"}
# Distances (mm or px): smaller is better. Everything else lossbench records is a score.
_LOWER_IS_BETTER = {"hd95", "hd", "assd", "asd", "masd"}


def higher_is_better(metric: str) -> bool:
    """``hd95``, ``hd95/<k>`` and the other surface distances, and losses, are lower-is-better."""
    stem = metric.split("/", 1)[0] if not metric.startswith(("val/", "test/", "train/")) else metric.split("/")[1]
    return stem not in _LOWER_IS_BETTER and not stem.endswith("loss")


def column(metric: str) -> str:
    """CSV column prefix of a metric name (``small_recall/small`` → ``small_recall_small``)."""
    return metric.replace("/", "_")


def bucket_order(metric: str) -> tuple[float, int, str]:
    """Size buckets smallest first: ``lt16`` < ``16-64`` < ``ge64``; unknown names last, by name."""
    bucket = metric.rsplit("/", 1)[-1]
    match = re.fullmatch(r"(lt|ge)?(\d+(?:\.\d+)?)(?:-\d+(?:\.\d+)?)?", bucket)
    if match is None:
        return math.inf, 0, bucket
    return float(match.group(2)), {"lt": 0, None: 1, "ge": 2}[match.group(1)], bucket
