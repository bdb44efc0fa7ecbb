"""compare.py on many run dirs, single-threaded, without plots.

    OMP_NUM_THREADS=1 python benchmarks/compare_speed.py [--layout deep|wide|cases] [--dir /tmp/compare_speed]

Layouts (goals from issue 25): ``deep`` — 2,000 run dirs, 4 datamodules × 2 learning rates × 25 losses × 10
seeds (≤ 10 s); ``wide`` — 1,800 run dirs in 300 tables, 300 datamodules × 2 losses × 3 seeds (≤ 12 s);
``cases`` — 100 run dirs (20 losses × 5 seeds, one table) with a ``test_cases.csv`` of 200 cases each,
compared with 2,000 bootstrap resamples (≤ 10 s).

Writes a synthetic sweep once (not timed): per layout,
each run dir with the real resolved ``config.yaml`` of ``train.py`` (composed from configs/),
``.hydra/overrides.yaml`` and a ``metrics.json`` with 36 metrics and a 30-epoch history. Then times
``reporting.pipeline.compare(..., plots=False)`` (collect, group, statistics, every table, report.html)
in this process, three times, and prints the best wall-clock and CPU time (``time.process_time``: what
the comparison costs one core, whatever else runs on the machine) and per-stage CPU times. Imports
(pandas, scipy, statsmodels) are not part of the time; they are printed separately.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EPOCHS = 30
# layout → (datamodules, learning rates, losses, seeds, cases per run (0: no test_cases.csv))
LAYOUTS = {
    "deep": (("synthetic_imbalanced", "synthetic_small", "synthetic_a", "synthetic_b"), ("0.001", "0.003"), 25,
             range(1, 11), 0),
    "wide": (tuple(f"synthetic_{i:03d}" for i in range(300)), ("0.001",), 2, range(1, 4), 0),
    "cases": (("synthetic_imbalanced",), ("0.001",), 20, range(1, 6), 200),
}


def _template_config() -> dict:
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from runtime.compose import compose_config

    try:
        cfg = compose_config(["logger=wandb"], output_dir="/tmp/run")
        cfg = OmegaConf.to_container(cfg, resolve=True)
    finally:
        GlobalHydra.instance().clear()
    cfg.pop("hydra", None)
    return cfg


def write_sweep(root: Path, layout: str) -> None:
    import numpy as np
    import yaml

    datamodules, lrs, n_losses, seeds, n_cases = LAYOUTS[layout]
    losses = [f"loss{i:02d}" for i in range(n_losses)]
    template = _template_config()
    rng = np.random.default_rng(0)
    case_effect = rng.normal(0, 0.1, n_cases)
    num = 0
    for dm in datamodules:
        for lr in lrs:
            for li, loss in enumerate(losses):
                for seed in seeds:
                    run = root / str(num)
                    (run / ".hydra").mkdir(parents=True, exist_ok=True)
                    cfg = json.loads(json.dumps(template))
                    cfg["seed"] = seed
                    cfg["datamodule"]["seed"] = seed
                    cfg["model"]["optimizer"]["lr"] = float(lr)
                    cfg["paths"]["output_dir"] = str(run)
                    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
                    overrides = [f"loss={loss}", f"datamodule={dm}", f"seed={seed}", f"model.optimizer.lr={lr}"]
                    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
                    base = 0.4 + li / 100 + rng.normal(0, 0.02)
                    metrics = {f"{split}/{k}": float(base + rng.normal(0, 0.01))
                               for split in ("val", "test")
                               for k in ("miou", "dice_fg", "pixel_acc", "object_recall", *[f"iou/{c}" for c in range(6)],
                                         "small_recall/lt16", "small_recall/16-64", "small_recall/ge64",
                                         *[f"dice/{c}" for c in range(1, 6)])}
                    curve = (base * (1 - np.exp(-np.arange(1, EPOCHS + 1) / 6))).tolist()
                    record = {"status": "completed", "error": None, "task": "segmentation", "loss": loss,
                              "datamodule": dm, "model": "unet", "seed": seed, "wall_time_s": 60.0,
                              "epochs": EPOCHS, "metrics": metrics, "optimized_metric": "val/miou",
                              "class_pixel_counts": [1e6, 4e5, 3e5, 2e5, 8e3, 9e3],
                              "history": {"val/miou": curve, "val/dice_fg": curve, "train/loss": curve[::-1]},
                              "best_epoch": EPOCHS - 1, "versions": {"torch": "x"}}
                    if n_cases:
                        record["case_files"] = {"test": "test_cases.csv"}
                        _write_cases(run / "test_cases.csv", base + case_effect, rng)
                    (run / "metrics.json").write_text(json.dumps(record, indent=2))
                    num += 1


def _write_cases(path: Path, centre, rng) -> None:
    """One row per case: per-class dice/iou for 6 classes and the summaries, around ``centre`` per case."""
    import numpy as np
    import pandas as pd

    n = len(centre)
    table = {"case": [f"case_{i:04d}" for i in range(n)], "index": np.arange(n)}
    ious = np.clip(centre[:, None] + rng.normal(0, 0.05, (n, 6)), 0, 1)
    for k in range(6):
        table[f"dice/{k}"] = 2 * ious[:, k] / (1 + ious[:, k])
        table[f"iou/{k}"] = ious[:, k]
    table["dice_fg"] = np.mean([table[f"dice/{k}"] for k in range(1, 6)], axis=0)
    table["miou"] = ious.mean(axis=1)
    table["fg_share"] = rng.uniform(0.05, 0.3, n)
    pd.DataFrame(table).to_csv(path, index=False, float_format="%.6g")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="deep")
    p.add_argument("--dir", default="/tmp/compare_speed")
    p.add_argument("--profile", action="store_true", help="print cProfile's top 25 functions of one comparison")
    args = p.parse_args()
    datamodules, lrs, n_losses, seeds, _ = LAYOUTS[args.layout]
    n_runs = len(datamodules) * len(lrs) * n_losses * len(seeds)
    root = Path(args.dir) / args.layout
    if not (root / str(n_runs - 1) / "metrics.json").is_file():
        write_sweep(root, args.layout)

    start = time.perf_counter()
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401
    from statsmodels.stats.multitest import multipletests  # noqa: F401

    from reporting import collect, grouping, leaderboard, pipeline, ranks  # noqa: F401
    imports = time.perf_counter() - start

    times, cpu = [], []
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = pipeline.compare([root], out=Path(args.dir) / f"out_{args.layout}", plots=False)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)

    start = time.process_time()
    runs = collect.collect_runs([root]).runs
    t_collect = time.process_time() - start
    start = time.process_time()
    groups = grouping.group_runs(runs)
    t_group = time.process_time() - start
    start = time.process_time()
    lb = leaderboard.build_leaderboard(runs, grouping=groups)
    t_lb = time.process_time() - start

    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.runcall(pipeline.compare, [root], out=Path(args.dir) / f"out_{args.layout}", plots=False)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)

    load = os.getloadavg()
    print(f"compare.py, {len(result.runs)} run dirs, {len(result.leaderboard.grouping.tables)} tables × "
          f"{len(lb.table) // len(lb.grouping.tables)} rows, plots off, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"whole comparison, best of 3: CPU {min(cpu):.2f} s (all: {', '.join(f'{t:.2f}' for t in cpu)}); "
          f"wall {min(times):.2f} s (all: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"  CPU by stage: read run dirs {t_collect:.2f} s · grouping {t_group:.2f} s · leaderboard {t_lb:.2f} s "
          "· the rest (ranks, budget, md/tex/html) = whole - these")
    print(f"imports (once per process, not in the times above): {imports:.2f} s wall")
    print(f"load average at the end (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores "
          "(wall time is CPU time only on an idle machine)")


if __name__ == "__main__":
    main()
