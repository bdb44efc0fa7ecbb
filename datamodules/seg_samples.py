"""The file side of file-based segmentation: which files form a sample, the problems found in them,
how stored mask values become class ids, and where decoded samples are kept."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from datamodules.image_io import read_image, read_mask

_MAX_LISTED = 20



@dataclass(frozen=True)
class SampleFiles:
    """The files of one sample: image, mask and optional region-of-interest mask."""

    stem: str
    image: Path
    mask: Path
    roi: Path | None = None


class DataProblems(ValueError):
    """Every problem the setup pass found in the data, one line per file."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        listed = "\n  - ".join(problems[:_MAX_LISTED])
        more = f"\n  … and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        super().__init__(f"{source}: {len(problems)} problem(s) in the data; fix them and rerun:\n  - {listed}{more}")
        self.problems = list(problems)


class SampleStore:
    """Decoded samples of one split: from the in-memory cache, or decoded on demand (small per-process LRU)."""

    _RECENT = 4  # decoded samples kept per process when not cached (consecutive patches often share one)

    def __init__(self, samples: Sequence[SampleFiles], encoder: "MaskEncoder", cached: list | None) -> None:
        self.samples = list(samples)
        self.encoder = encoder
        self.cached = cached
        self._recent: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.cached is not None:
            return self.cached[index]
        if index not in self._recent:
            files = self.samples[index]
            roi = read_mask(files.roi) if files.roi is not None else None
            self._recent[index] = (read_image(files.image), self.encoder.finish(self.encoder.map(read_mask(files.mask)), roi))
            if len(self._recent) > self._RECENT:
                self._recent.popitem(last=False)
        self._recent.move_to_end(index)
        return self._recent[index]


class MaskEncoder:
    """Stored mask values → class ids through a lookup table; roi zeros → ignore_index."""

    def __init__(self, table: np.ndarray | None, ignore_index: int, dtype: np.dtype) -> None:
        self.table = table
        self.ignore_index = ignore_index
        self.dtype = dtype

    def map(self, raw: np.ndarray) -> np.ndarray:
        """Stored values → int64 class ids (unmapped values become a sentinel above every id)."""
        return self.table[raw] if self.table is not None else raw.astype(np.int64)

    def finish(self, mapped: np.ndarray, roi: np.ndarray | None) -> np.ndarray:
        """Validated class ids → compact storage dtype, roi zeros → ignore_index."""
        if roi is not None:
            mapped = np.where(roi == 0, self.ignore_index, mapped)
        return np.ascontiguousarray(mapped, dtype=self.dtype)
