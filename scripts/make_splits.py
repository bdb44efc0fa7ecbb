"""Remake the committed split files: ``python scripts/make_splits.py <dataset> [--root DIR] [--out DIR]``.

Each public dataset's split file (``datamodules/public/splits/<name>.json``) was made by one function
in ``scripts/splits/<dataset>.py``, whose docstring states the rule (publisher lists, or a seeded
stratified carve — :func:`datamodules.public.splits.stratified_carve`). Datasets whose lists follow
from the publisher's documentation alone (CamVid, CrackForest, DRIVE, ISBI-2012) need no ``--root``;
the carves stratified by image content (DSB-2018, DeepCrack, MSD hippocampus) read the data under
``--root``. Rerunning on the same data gives the committed file byte for byte; a changed file is a
new split version (bump ``version`` in the script).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

if __package__ in (None, ""):  # run as a file: the repository root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamodules.public.splits import SPLIT_DIR  # noqa: E402
from scripts.splits.camvid import make_camvid  # noqa: E402
from scripts.splits.crackforest import make_crackforest  # noqa: E402
from scripts.splits.deepcrack import make_deepcrack  # noqa: E402
from scripts.splits.drive import make_drive  # noqa: E402
from scripts.splits.dsb2018 import make_dsb2018  # noqa: E402
from scripts.splits.isbi2012 import make_isbi2012  # noqa: E402
from scripts.splits.msd import make_msd_task04_hippocampus  # noqa: E402

# dataset -> (maker, needs the data under --root)
MAKERS: dict[str, tuple[Callable[..., object], bool]] = {
    "camvid": (make_camvid, False),
    "crackforest": (make_crackforest, False),
    "deepcrack": (make_deepcrack, True),
    "drive": (make_drive, False),
    "dsb2018": (make_dsb2018, True),
    "isbi2012": (make_isbi2012, False),
    "msd_task04_hippocampus": (make_msd_task04_hippocampus, True),
}


def main(argv: Sequence[str] | None = None) -> object:
    parser = argparse.ArgumentParser(prog="python scripts/make_splits.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted(MAKERS))
    parser.add_argument("--root", type=Path, default=None, help="the dataset's root (for the content-stratified carves)")
    parser.add_argument("--out", type=Path, default=SPLIT_DIR, help=f"output folder (default {SPLIT_DIR})")
    args = parser.parse_args(argv)
    maker, needs_root = MAKERS[args.dataset]
    args.out.mkdir(parents=True, exist_ok=True)
    if needs_root and args.root is None:
        parser.error(f"{args.dataset}: the split is stratified by the images' content; pass --root <dataset root>")
    written = maker(args.root, out_dir=args.out) if needs_root else maker(out_dir=args.out)
    print(written)
    return written


if __name__ == "__main__":
    main()
