"""Compare finished runs: ``python compare.py <run-or-sweep-dir>... [--out DIR] [--baseline ce]``.

Writes leaderboard.csv/.md/.tex, ranks.csv, budget.csv, summary.json, PNG plots and a self-contained
report.html (outputs and statistics explained in docs/sweeps.md; the per-case statistics, rank stability
and ``--plan-delta`` planner in docs/statistics.md).
"""
from __future__ import annotations

import argparse
import sys

from reporting.leaderboard import RESAMPLES
from reporting.pipeline import compare
from reporting.power import plan_sentence
from reporting.stats import BCA_MIN_N, CI_METHODS, TESTS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="compare.py", description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", help="run dirs (holding metrics.json) or sweep dirs (holding run dirs)")
    p.add_argument("--out", help="output dir (default: the first given dir)")
    p.add_argument("--baseline", help="loss (or 'loss key=value' row label) the paired tests compare against "
                                      "(default: ce for segmentation, giou for detection)")
    p.add_argument("--test", choices=TESTS, default="t",
                   help="paired test across seeds: paired t (agrees with the Δ interval) or Wilcoxon signed-rank "
                        "(its p cannot go below 0.05 with fewer than 6 seeds) (default: t)")
    p.add_argument("--ci", choices=CI_METHODS, default="t", dest="ci_method",
                   help=f"interval of a row's mean: Student t, or BCa bootstrap for rows with >= {BCA_MIN_N} seeds "
                        "(default: t)")
    p.add_argument("--metrics", nargs="+", metavar="M",
                   help="metrics without split prefix, e.g. miou iou/3 (default: the task's headline metrics)")
    p.add_argument("--rank-by", help="metric that orders the leaderboard (default: the first metric)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval level; α = 1 - it (default: 0.95)")
    p.add_argument("--failed-as-worst", action="store_true",
                   help="count a failed run as the table's worst value of each metric instead of leaving it out")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (the report has tables only)")
    p.add_argument("--resamples", type=int, default=RESAMPLES,
                   help=f"bootstrap resamples of seeds and test cases for the rank stability (default: {RESAMPLES})")
    p.add_argument("--plan-delta", type=float, metavar="DELTA",
                   help="plan how many seeds and test cases detect this difference of the rank-by metric "
                        "(e.g. 0.02), from these runs as a pilot; printed and written to summary.json")
    p.add_argument("--plan-power", type=float, default=0.8, help="power the plan aims for (default: 0.8)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = compare(args.dirs, out=args.out, baseline=args.baseline, test=args.test, metrics=args.metrics,
                         rank_by=args.rank_by, confidence=args.confidence, ci_method=args.ci_method,
                         failed_as_worst=args.failed_as_worst, plots=not args.no_plots, resamples=args.resamples,
                         plan_delta=args.plan_delta, plan_power=args.plan_power)
    except ValueError as exc:
        print(f"compare.py: error: {exc}", file=sys.stderr)
        return 2
    print((result.out_dir / "leaderboard.md").read_text())
    for s in result.extras.skipped:
        print(f"compare.py: warning: skipped {s.path}: {s.reason}", file=sys.stderr)
    if result.extras.fairness:
        print(f"compare.py: warning: {len(result.extras.fairness)} setting(s) differ between the rows of a table "
              "besides the loss (listed under Warnings above; summary.json `fairness`)", file=sys.stderr)
    for plan in result.extras.plans or []:
        print("plan: " + plan_sentence(plan["title"], plan, args.plan_delta, args.plan_power))
    print(f"wrote {len(result.files)} files to {result.out_dir}:")
    for f in result.files:
        print(f"  {f.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
