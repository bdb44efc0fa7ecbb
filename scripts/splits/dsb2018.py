"""The committed DSB-2018 split ``dsb2018.json`` (wired into ``scripts/make_splits.py``).

Rule: Kaggle's ``stage1_train`` has no labelled test set, so train/val/test 70/15/15 are carved from it by
:func:`datamodules.public.splits.stratified_carve` with seed 0, strata = image size (``HxW``) ×
:func:`datamodules.public.dsb2018.modality` (stained / fluorescence / brightfield, from the pixels), so
every split holds every size and modality in proportion. The file lists the 200 ids of the development
copy; the other 470 ids of the full 670 fall to the hash rule (same fractions) of
:mod:`datamodules.public.splits`.
"""
from __future__ import annotations

import json
from pathlib import Path

from datamodules.image_io import read_image
from datamodules.public.dsb2018 import modality, stage1_folder
from datamodules.public.splits import SPLIT_DIR, SplitSpec, stratified_carve

SEED = 0
FRACTIONS = (0.7, 0.15, 0.15)
RULE = ("train/val/test 70/15/15 carved from stage1_train by stratified_carve, seed 0, strata = image size HxW x "
        "modality (stained if mean |channel - gray| > 0.02, else fluorescence if mean < 0.5, else brightfield); "
        "ids not listed go to the hash rule")


def strata(root: Path) -> dict[str, str]:
    """Case id → ``"<H>x<W>/<modality>"`` for every case under ``root``."""
    out = {}
    for case in sorted(p for p in stage1_folder(Path(root)).iterdir() if p.is_dir() and not p.name.startswith(".")):
        image = read_image(case / "images" / f"{case.name}.png")
        out[case.name] = f"{image.shape[0]}x{image.shape[1]}/{modality(image)}"
    return out


def make_dsb2018(root: Path, out_dir: Path = SPLIT_DIR) -> list[Path]:
    """Write ``dsb2018.json`` from the DSB-2018 folder ``root``; returns its path in a list."""
    groups = strata(Path(root))
    splits = stratified_carve(sorted(groups), groups, FRACTIONS, SEED)
    path = Path(out_dir) / "dsb2018.json"
    path.write_text(json.dumps(SplitSpec("dsb2018", 1, RULE, FRACTIONS, splits).to_dict(), indent=1) + "\n")
    return [path]


if __name__ == "__main__":
    import sys

    print(*make_dsb2018(Path(sys.argv[1])), sep="\n")
