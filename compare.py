"""Compare finished runs: ``python compare.py <run-or-sweep-dir>... [--out DIR] [--baseline ce]``.

Writes leaderboard.csv / leaderboard.md, PNG plots and a self-contained report.html
(CONTRACTS section 5; statistics explained in docs/sweeps.md).
"""
from __future__ import annotations

import argparse
import sys

from reporting.pipeline import compare
from reporting.stats import TESTS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="compare.py", description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", help="run dirs (holding metrics.json) or sweep dirs (holding run dirs)")
    p.add_argument("--out", help="output dir (default: the first given dir)")
    p.add_argument("--baseline", default="ce", help="loss the paired tests compare against (default: ce)")
    p.add_argument("--test", choices=TESTS, default="wilcoxon",
                   help="paired test across seeds: Wilcoxon signed-rank or paired t (default: wilcoxon)")
    p.add_argument("--metrics", nargs="+", metavar="M",
                   help="metrics without split prefix, e.g. miou iou/3 (default: the task's headline metrics)")
    p.add_argument("--rank-by", help="metric that orders the leaderboard (default: the first metric)")
    p.add_argument("--confidence", type=float, default=0.95, help="bootstrap CI level (default: 0.95)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (the report has tables only)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = compare(args.dirs, out=args.out, baseline=args.baseline, test=args.test, metrics=args.metrics,
                         rank_by=args.rank_by, confidence=args.confidence, plots=not args.no_plots)
    except ValueError as exc:
        print(f"compare.py: error: {exc}", file=sys.stderr)
        return 2
    print((result.out_dir / "leaderboard.md").read_text())
    print(f"wrote {len(result.files)} files to {result.out_dir}:")
    for f in result.files:
        print(f"  {f.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
