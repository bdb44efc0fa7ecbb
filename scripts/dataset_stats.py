"""Dataset statistics: ``python scripts/dataset_stats.py datamodule=<name> [datamodule.root=...] [--out DIR]``.

Composes the real config tree (``configs/``, the same overrides as ``train.py``), instantiates the
datamodule and reports what :func:`datamodules.stats.dataset_stats` measures: per split the image
count and sizes; for the training split class pixel counts and frequencies, connected components per
foreground class by area, and the class weights of every ``class_weights: auto`` scheme.

Prints a text report and writes ``stats.json`` and ``stats.md`` into ``--out`` (default
``<paths.log_dir>/stats/<datamodule>``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # run as a file: the repository root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402

from datamodules.stats import dataset_stats, format_report  # noqa: E402
from runtime.compose import compose_config  # noqa: E402


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python scripts/dataset_stats.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. datamodule=folder datamodule.root=/data")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default <paths.log_dir>/stats/<datamodule>)")
    args = parser.parse_args(argv)
    try:
        cfg = compose_config(list(args.overrides), output_dir=args.out or Path.cwd())
        choice = cfg.hydra.runtime.choices.get("datamodule", "datamodule")
        out = args.out or Path(cfg.paths.log_dir) / "stats" / str(choice).replace("/", "_")
        datamodule = hydra.utils.instantiate(cfg.datamodule)
    finally:
        GlobalHydra.instance().clear()
    stats = dataset_stats(datamodule)
    report = format_report(stats, str(choice))
    out.mkdir(parents=True, exist_ok=True)
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    (out / "stats.md").write_text(report)
    print(report)
    print(f"saved {out / 'stats.json'} and {out / 'stats.md'}")
    return stats


if __name__ == "__main__":
    main()
