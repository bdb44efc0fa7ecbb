"""Copy what compare.py reads from a sweep (or run) dir into a folder fit to commit or share: per run
``metrics.json``, ``config.yaml``, ``.hydra/*.yaml``, the per-case files and the CSV log — no checkpoints,
prediction arrays or train.log. Machine paths can be replaced, e.g. the data root:

    python scripts/export_runs.py logs/segmentation/multiruns/<sweep> docs/results/real/dsb2018/runs \\
        --replace /data/dsb2018=<data>/dsb2018

``python compare.py <out>`` then gives the same tables as on the original sweep dir.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

KEPT = ("metrics.json", "config.yaml", "test_cases.csv", "val_cases.csv", ".hydra/config.yaml",
        ".hydra/overrides.yaml", ".hydra/hydra.yaml", "csv/metrics.csv", "csv/hparams.yaml")
SWEEP_FILES = ("multirun.yaml",)


def parse_replacements(pairs: list[str]) -> list[tuple[str, str]]:
    out = []
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old:
            raise SystemExit(f"export_runs: --replace {pair!r} is invalid; expected OLD=NEW with a non-empty OLD")
        out.append((old, new))
    return out


def run_dirs(source: Path) -> list[Path]:
    """``source`` itself when it holds a metrics.json, else its sub-folders that do (a sweep dir)."""
    if (source / "metrics.json").is_file():
        return [source]
    return sorted((p for p in source.iterdir() if (p / "metrics.json").is_file()), key=lambda p: p.name)


def copy_text(src: Path, dst: Path, replacements: list[tuple[str, str]]) -> None:
    text = src.read_text()
    for old, new in replacements:
        text = text.replace(old, new)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)


def export(source: Path, out: Path, replacements: list[tuple[str, str]]) -> int:
    """Copies the kept files of every run under ``source`` to ``out`` (run dirs keep their names);
    returns the number of runs."""
    runs = run_dirs(source)
    if not runs:
        raise SystemExit(f"export_runs: {source} holds no run (no metrics.json in it or its sub-folders)")
    single = runs == [source]
    for name in SWEEP_FILES:
        if not single and (source / name).is_file():
            copy_text(source / name, out / name, replacements)
    for run in runs:
        target = out if single else out / run.name
        for name in KEPT:
            if (run / name).is_file():
                copy_text(run / name, target / name, replacements)
    return len(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a sweep dir (holding run dirs) or one run dir")
    parser.add_argument("out", type=Path, help="where the copies go (created; existing files are overwritten)")
    parser.add_argument("--replace", action="append", default=[], metavar="OLD=NEW",
                        help="replace this text in every copied file (repeatable), e.g. a machine path")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        raise SystemExit(f"export_runs: source {args.source} is not a folder")
    if args.out.resolve() == args.source.resolve():
        raise SystemExit("export_runs: out must differ from source")
    count = export(args.source, args.out, parse_replacements(args.replace))
    print(f"exported {count} run(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
