"""The per-case rows of one evaluation pass: collected batch by batch, put in loader order, gathered
over DDP ranks. What the rows hold is the metric modules' business (:class:`metrics.segmentation.CaseScores`,
:func:`metrics.detection.image_scores`); the file they end up in is docs/contracts.md, "Per-case files".
A LightningModule ends a pass with :func:`models.lightning_base.finish_case_rows`."""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Sequence

import torch

# (position on this rank, case id or None, metric values)
LocalRow = tuple[int, str | None, dict[str, float]]
Gather = Callable[[list[LocalRow]], list[list[LocalRow]]]


def all_gather_rows(rows: list[LocalRow]) -> list[list[LocalRow]]:
    """Every rank's rows, in rank order (``torch.distributed.all_gather_object``; one rank: itself)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [rows]
    parts: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, rows)
    return parts


class CaseRows:
    """Rows of one split's evaluation pass. ``add`` per batch, ``finish`` once at the end of the pass
    (on every rank: it gathers), then ``rows`` holds ``{"case", "index", <metrics>...}`` per case.

    Order and ``index``: Lightning evaluates a split with a ``DistributedSampler`` without shuffling,
    which hands rank ``r`` of ``W`` the loader positions ``r, r + W, r + 2W, …`` and pads the last round
    with repeats of the first cases. So the ``p``-th case of rank ``r`` is position ``p·W + r``;
    positions at or beyond the split's size are that padding and are dropped. Batches without a
    ``case`` entry (a user's datamodule) get ``<split>_<position>`` as their id.
    """

    def __init__(self, split: str) -> None:
        self.split = split
        self.rows: list[dict[str, Any]] = []
        self._local: list[LocalRow] = []

    def reset(self) -> None:
        self._local = []

    def add(self, cases: Sequence[str] | None, rows: Sequence[dict[str, float]]) -> None:
        if cases is not None and len(cases) != len(rows):
            raise ValueError(f"{self.split} per-case rows: batch has {len(cases)} case ids for {len(rows)} cases")
        for case, row in zip(cases if cases is not None else [None] * len(rows), rows):
            self._local.append((len(self._local), None if case is None else str(case), row))

    def finish(self, dataset_size: int | None = None, gather: Gather = all_gather_rows) -> list[dict[str, Any]]:
        """Gather every rank's rows, order them by loader position and store them in ``rows``."""
        parts = gather(self._local)
        world = len(parts)
        placed = sorted((position * world + rank, case, row)
                        for rank, part in enumerate(parts) for position, case, row in part)
        if dataset_size is not None:
            placed = [entry for entry in placed if entry[0] < dataset_size]
        ids = [case if case is not None else f"{self.split}_{position}" for position, case, _ in placed]
        repeated = {case for case, count in Counter(ids).items() if count > 1}
        # Two files with one stem in different folders: the index keeps the ids apart.
        ids = [f"{case}#{position}" if case in repeated else case for case, (position, _, _) in zip(ids, placed)]
        self.rows = [{"case": case, "index": position, **row} for case, (position, _, row) in zip(ids, placed)]
        return self.rows

