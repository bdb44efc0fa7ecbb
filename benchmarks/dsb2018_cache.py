"""DSB-2018 derived-data cache: the first setup (semantic masks, instance maps and boxes derived from the
one-PNG-per-nucleus masks) against a second one on the same root (the derived data read from the cache).

"Setup" is what every run of ``datamodule=dsb2018`` pays before training: the layout check, the per-case
cache keys, the derivation (first) or the cached boxes (second), the committed split and the file lists
(:class:`datamodules.public.dsb2018.DSB2018SegDataModule` construction). Prints both times and the
ratio first / second (the target is >= 10). Absolute times depend on the machine and its load.

    python benchmarks/dsb2018_cache.py --root /data/dsb2018 [--repeats 3]

``--root`` is a DSB-2018 copy in the Kaggle layout (the folder holding ``stage1_train/``, or that folder);
docs/datasets/dsb2018.md says where to get it. The committed result was measured on 200 of the 670
stage1_train images (docs/datasets/dsb2018.md, "What the adapter derives").
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datamodules.public.dsb2018 import DSB2018SegDataModule  # noqa: E402


def setup_seconds(root: Path, cache: Path) -> float:
    start = time.perf_counter()
    DSB2018SegDataModule(root, cache_dir=cache, num_workers=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder holding stage1_train/")
    parser.add_argument("--repeats", type=int, default=3, help="cold/warm pairs, each with a fresh cache")
    args = parser.parse_args()
    first, second = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            first.append(setup_seconds(args.root, Path(cache)))
            second.append(setup_seconds(args.root, Path(cache)))
    cold, warm = statistics.median(first), statistics.median(second)
    print(f"dsb2018 setup on {args.root} (median of {args.repeats})")
    print(f"{'first (derive)':<18}{cold:>9.2f} s   runs: {', '.join(f'{t:.2f}' for t in first)}")
    print(f"{'second (cached)':<18}{warm:>9.2f} s   runs: {', '.join(f'{t:.2f}' for t in second)}")
    print(f"ratio first/second {cold / warm:>6.1f}x  (target >= 10x)")


if __name__ == "__main__":
    main()
