"""The committed ISBI-2012 split ``isbi2012.json`` (wired into ``scripts/make_splits.py``).

Rule: contiguous blocks of the publisher's 30 training slices — ``slice_00``–``slice_19`` train,
``slice_20``–``slice_24`` val, ``slice_25``–``slice_29`` test. Neighbouring sections (50 nm apart) are
near-copies of each other, so a random split would put neighbours of training slices into val and test;
blocks keep them apart except at the two block edges. The publisher's test stack has no public labels.
Needs no copy of the data (the slice count is fixed by the publisher).
"""
from __future__ import annotations

import json
from pathlib import Path

from datamodules.public.isbi2012 import case_id
from datamodules.public.splits import SPLIT_DIR, SplitSpec

BLOCKS = {"train": range(0, 20), "val": range(20, 25), "test": range(25, 30)}
RULE = "contiguous blocks of the 30 training slices: 0-19 train, 20-24 val, 25-29 test (neighbouring sections are correlated)"


def make_isbi2012(root: Path | None = None, out_dir: Path = SPLIT_DIR) -> Path:
    """Write ``isbi2012.json`` (``root`` is not read: the publisher fixes the 30 slices); returns its path."""
    splits = {split: [case_id(page) for page in pages] for split, pages in BLOCKS.items()}
    path = Path(out_dir) / "isbi2012.json"
    path.write_text(json.dumps(SplitSpec("isbi2012", 1, RULE, (0.7, 0.15, 0.15), splits).to_dict(), indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(make_isbi2012())
