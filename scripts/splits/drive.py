"""The committed DRIVE split ``drive.json`` (wired into ``scripts/make_splits.py``).

Rule: the publisher's split — images 21–40 in ``training/``, 01–20 in ``test/`` — with 4 of the 20
training images carved into val by :func:`datamodules.public.splits.stratified_carve` (seed 0, one
stratum: the publisher documents no grouping of the images). Needs no copy of the data (the ids are
fixed by the publisher).
"""
from __future__ import annotations

import json
from pathlib import Path

from datamodules.public.splits import SPLIT_DIR, SplitSpec, stratified_carve

SEED = 0
TRAINING = [f"{k:02d}" for k in range(21, 41)]
TEST = [f"{k:02d}" for k in range(1, 21)]
FRACTIONS = (0.8, 0.2, 0.0)
RULE = ("test = the publisher's test/ (01-20); train/val 16/4 carved from training/ (21-40) by stratified_carve, "
        "seed 0, one stratum")


def make_drive(root: Path | None = None, out_dir: Path = SPLIT_DIR) -> Path:
    """Write ``drive.json`` (``root`` is not read: the publisher fixes the ids); returns its path."""
    carve = stratified_carve(TRAINING, {case: 0 for case in TRAINING}, FRACTIONS, SEED)
    splits = {"train": carve["train"], "val": carve["val"], "test": TEST}
    path = Path(out_dir) / "drive.json"
    path.write_text(json.dumps(SplitSpec("drive", 1, RULE, FRACTIONS, splits).to_dict(), indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(make_drive())
