"""What a metric's name says about it: which direction is better, whether it is a bounded score, and
the object-size buckets of ``small_recall/<bucket>``.

The metric modules generate the names (docs/contracts.md, "metrics.json"); everything that reads them
back (the report writer, the per-case file checks) asks this module instead of keeping its own
copy. Names may carry a split prefix (``val/``, ``test/``, ``train/``) and a class or bucket suffix
(``iou/3``, ``hd95/1``, ``small_recall/lt16``); the stem decides.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

SPLIT_PREFIXES = ("val/", "test/", "train/")
# Distances (mm or px) and counts of false detections (detection case files' ``fp_50``): smaller is
# better. Everything else lossbench records is a score.
LOWER_IS_BETTER = frozenset({"hd95", "hd", "assd", "asd", "masd", "fp_50"})
# Per-case columns the empty-reference policy always defines (metrics.segmentation.CaseScores): a NaN
# there is a broken file. hd95 and object_recall may be undefined for a case.
PER_CASE_ALWAYS_DEFINED = ("dice", "iou", "nsd", "dice_fg", "miou")


def metric_stem(metric: str) -> str:
    """The metric family of a name: ``test/hd95/1`` → ``hd95``, ``small_recall/lt16`` → ``small_recall``."""
    name = metric.split("/", 1)[1] if metric.startswith(SPLIT_PREFIXES) else metric
    return name.split("/", 1)[0]


def higher_is_better(metric: str) -> bool:
    """``hd95``, ``hd95/<k>`` and the other surface distances, and losses, are lower-is-better."""
    stem = metric_stem(metric)
    return stem not in LOWER_IS_BETTER and not stem.endswith("loss")


def is_nonnegative(metric: str) -> bool:
    """Distances and counts (the lower-is-better metrics other than losses): never below 0, so an interval
    of their mean is floored at 0 (a true mean ≥ 0 inside ``[low, high]`` is inside ``[max(low, 0), high]``:
    the coverage is unchanged)."""
    return metric_stem(metric) in LOWER_IS_BETTER


def is_bounded(metric: str) -> bool:
    """Scores in [0, 1] (IoU, Dice, recall, AP, NSD, accuracy): every metric except distances, counts and
    losses."""
    return higher_is_better(metric)


def bucket_names(edges: Sequence[int]) -> list[str]:
    """Names of the object-area buckets cut at ``edges``, smallest first: (16, 64) → ['lt16', '16-64', 'ge64'];
    no edges → ['all']."""
    edges = list(edges)
    if any(b <= a for a, b in zip(edges, edges[1:])) or any(e <= 0 for e in edges):
        raise ValueError(f"small_object_buckets must be increasing positive pixel areas, got {edges}")
    names = [f"lt{edges[0]}"] if edges else []
    names += [f"{a}-{b}" for a, b in zip(edges, edges[1:])]
    names += [f"ge{edges[-1]}"] if edges else ["all"]
    return names


def bucket_order(metric: str) -> tuple[float, int, str]:
    """Sort key of :func:`bucket_names`' buckets (also as ``…/small_recall/<bucket>``), smallest first:
    ``lt16`` < ``16-64`` < ``ge64``; unknown names last, by name."""
    bucket = metric.rsplit("/", 1)[-1]
    match = re.fullmatch(r"(lt|ge)?(\d+(?:\.\d+)?)(?:-\d+(?:\.\d+)?)?", bucket)
    if match is None:
        return math.inf, 0, bucket
    return float(match.group(2)), {"lt": 0, None: 1, "ge": 2}[match.group(1)], bucket
