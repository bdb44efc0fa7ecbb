"""The committed CrackForest split ``crackforest.json`` (wired into ``scripts/make_splits.py``).

Rule: CFD publishes 118 images (001–118) and no split. train/val/test 70/15/15 of the ids 001–118 by
:func:`datamodules.public.splits.stratified_carve` with seed 0 and a single stratum (the repository has no
copy of the data to stratify by crack share; the list follows from the published id range alone).
"""
from __future__ import annotations

import json
from pathlib import Path

from datamodules.public.splits import SPLIT_DIR, SplitSpec, stratified_carve

FRACTIONS = (0.7, 0.15, 0.15)
SEED = 0
IDS = [f"{k:03d}" for k in range(1, 119)]
RULE = ("train/val/test 70/15/15 of the published ids 001-118 (CFD defines no split) by stratified_carve, seed 0, "
        "one stratum")


def make_crackforest(out_dir: Path = SPLIT_DIR) -> Path:
    """Write ``crackforest.json``; returns its path."""
    splits = stratified_carve(IDS, {case: 0 for case in IDS}, FRACTIONS, SEED)
    path = Path(out_dir) / "crackforest.json"
    path.write_text(json.dumps(SplitSpec("crackforest", 1, RULE, FRACTIONS, splits).to_dict(), indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(make_crackforest())
