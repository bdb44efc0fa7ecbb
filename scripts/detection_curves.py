"""Learning curves of detection runs: validation mAP_50 and mAP by optimiser step, one line per run.

    python scripts/detection_curves.py --out docs/results/detection_real/curves.png \
        "defaults=<run dir>" "RetinaNet, old defaults=<run dir>" ...

Each argument is ``label=run dir`` (a train.py run dir with ``csv/metrics.csv``, or a folder holding a
copy of it as ``metrics.csv``). Also prints one row per run and evaluation step, as a Markdown table.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

KEYS = ("val/map_50", "val/map")


def validation_curve(run: Path) -> pd.DataFrame:
    """The run's validation rows (step, epoch, ``KEYS``) from its CSV log."""
    for candidate in (run / "csv" / "metrics.csv", run / "metrics.csv"):
        if candidate.is_file():
            frame = pd.read_csv(candidate)
            break
    else:
        raise SystemExit(f"detection_curves: no csv/metrics.csv or metrics.csv in {run}")
    missing = [key for key in KEYS if key not in frame.columns]
    if missing:
        raise SystemExit(f"detection_curves: {run} logged no {missing} (a detection run with validation?)")
    rows = frame.dropna(subset=[KEYS[0]])[["step", "epoch", *KEYS]]
    return rows.drop_duplicates(subset=["step"], keep="first").reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="label=run dir")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default="validation by optimiser step")
    args = parser.parse_args()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    print("| run | step | val mAP_50 | val mAP |\n|---|---|---|---|")
    for item in args.runs:
        label, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"detection_curves: expected label=run dir, got {item!r}")
        curve = validation_curve(Path(path))
        for axis, key in zip(axes, KEYS):
            axis.plot(curve["step"], curve[key], marker="o", label=label)
        for row in curve.itertuples(index=False):
            print(f"| {label} | {int(row[0])} | {row[2]:.3f} | {row[3]:.3f} |")
    for axis, key in zip(axes, KEYS):
        axis.set_xlabel("optimiser step")
        axis.set_ylabel(key)
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(args.title)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
