"""The committed Decathlon split ``msd_task04_hippocampus.json`` (wired into ``scripts/make_splits.py``).

Rule: the Decathlon publishes no labelled test set, so train / val / test (70 / 15 / 15) are carved from
the cases of ``dataset.json``'s training list present under ``root``, by
:func:`datamodules.public.splits.stratified_carve` with seed 0, stratified by volume-size tertile (image
voxel count, cut at the 1/3 and 2/3 quantiles), so every split holds small, middle and large crops.
Made from the 151 cases of the development copy; the other cases of the full 260 fall to the hash rule.
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from datamodules.public.msd import read_dataset_json
from datamodules.public.splits import SPLIT_DIR, SplitSpec, stratified_carve
from datamodules.volumes.nifti_io import nifti_stem

FRACTIONS = (0.7, 0.15, 0.15)
SEED = 0
RULE = ("train/val/test 70/15/15 carved from dataset.json's training list (no labelled test set is published) by "
        "stratified_carve, seed 0, strata = image voxel-count tertile")


def size_tertiles(root: Path) -> dict[str, int]:
    """Case id → 0, 1, 2: the tertile of its image's voxel count among the listed cases present."""
    sizes = {}
    for entry in read_dataset_json(root)["training"]:
        image = root / entry["image"]
        if image.is_file():
            sizes[nifti_stem(image)] = int(np.prod(nib.load(str(image)).shape[:3]))
    edges = np.quantile(list(sizes.values()), [1 / 3, 2 / 3])
    return {case: int(np.searchsorted(edges, size, side="right")) for case, size in sizes.items()}


def make_msd_task04_hippocampus(root: Path, out_dir: Path = SPLIT_DIR) -> Path:
    """Write ``msd_task04_hippocampus.json`` from the Task04 folder ``root``; returns its path."""
    strata = size_tertiles(Path(root))
    splits = stratified_carve(sorted(strata), strata, FRACTIONS, SEED)
    spec = SplitSpec("msd_task04_hippocampus", 1, RULE, FRACTIONS, splits)
    path = Path(out_dir) / "msd_task04_hippocampus.json"
    path.write_text(json.dumps(spec.to_dict(), indent=1) + "\n")
    return path


if __name__ == "__main__":
    import sys

    print(make_msd_task04_hippocampus(Path(sys.argv[1])))
