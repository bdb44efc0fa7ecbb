"""The committed DeepCrack splits ``deepcrack.json`` and ``deepcrack_dev.json`` (wired into ``scripts/make_splits.py``).

Rule: DeepCrack publishes train (300) and test (237). ``deepcrack`` (``split=official``) carves 15 % of the
training images into val (train/val 85/15) and leaves test to the publisher's ``test_img/``; ``deepcrack_dev``
(``split=dev``, for copies without the test folders) carves train/val/test 70/15/15 from the training
images. Both by :func:`datamodules.public.splits.stratified_carve` with seed 0, strata = the tertile of the
image's crack-pixel share (cut at the 1/3 and 2/3 quantiles), so every split holds thin and wide cracks.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from datamodules.image_io import MASK_SUFFIXES, files_by_stem, read_mask
from datamodules.public.deepcrack import data_root
from datamodules.public.splits import SPLIT_DIR, SplitSpec, stratified_carve

SEED = 0
SPECS = {
    "deepcrack": ((0.85, 0.15, 0.0), "train/val 85/15 carved from the publisher's 300 training images by "
                  "stratified_carve, seed 0, strata = crack-pixel-share tertile; test = the publisher's test_img/ (237)"),
    "deepcrack_dev": ((0.7, 0.15, 0.15), "train/val/test 70/15/15 carved from the publisher's 300 training images by "
                      "stratified_carve, seed 0, strata = crack-pixel-share tertile (for copies without test_img/)"),
}


def crack_share_tertiles(root: Path) -> dict[str, int]:
    """Training image id → 0, 1, 2: the tertile of its label's crack-pixel share (label > 0)."""
    labels = files_by_stem(data_root(Path(root)) / "train_lab", MASK_SUFFIXES)
    shares = {stem: float((read_mask(path) > 0).mean()) for stem, path in labels.items()}
    edges = np.quantile(list(shares.values()), [1 / 3, 2 / 3])
    return {stem: int(np.searchsorted(edges, share, side="right")) for stem, share in shares.items()}


def make_deepcrack(root: Path, out_dir: Path = SPLIT_DIR) -> list[Path]:
    """Write ``deepcrack.json`` and ``deepcrack_dev.json`` from the DeepCrack folder ``root``; returns their paths."""
    strata = crack_share_tertiles(Path(root))
    paths = []
    for name, (fractions, rule) in SPECS.items():
        splits = stratified_carve(sorted(strata), strata, fractions, SEED)
        path = Path(out_dir) / f"{name}.json"
        path.write_text(json.dumps(SplitSpec(name, 1, rule, fractions, splits).to_dict(), indent=1) + "\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    import sys

    print(*make_deepcrack(Path(sys.argv[1])), sep="\n")
