"""compare.py on 2,000 run dirs, single-threaded, without plots (goal: ≤ 10 s).

    OMP_NUM_THREADS=1 python benchmarks/compare_speed.py [--runs 2000] [--dir /tmp/compare_speed]

Writes a synthetic sweep once (not timed): 4 datamodules × 2 learning rates × 25 losses × 10 seeds,
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

DATAMODULES = ("synthetic_imbalanced", "synthetic_small", "synthetic_a", "synthetic_b")
LRS = ("0.001", "0.003")
SEEDS = range(1, 11)
EPOCHS = 30


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


def write_sweep(root: Path, n_runs: int) -> None:
    import numpy as np
    import yaml

    losses = [f"loss{i:02d}" for i in range(25)]
    template = _template_config()
    rng = np.random.default_rng(0)
    num = 0
    for dm in DATAMODULES:
        for lr in LRS:
            for li, loss in enumerate(losses):
                for seed in SEEDS:
                    if num >= n_runs:
                        return
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
                    (run / "metrics.json").write_text(json.dumps(record, indent=2))
                    num += 1


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--dir", default="/tmp/compare_speed")
    args = p.parse_args()
    root = Path(args.dir) / "sweep"
    if not (root / str(args.runs - 1) / "metrics.json").is_file():
        write_sweep(root, args.runs)

    start = time.perf_counter()
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401
    from statsmodels.stats.multitest import multipletests  # noqa: F401

    from reporting import collect, grouping, leaderboard, pipeline, ranks  # noqa: F401
    imports = time.perf_counter() - start

    times, cpu = [], []
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = pipeline.compare([root], out=Path(args.dir) / "out", plots=False)
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
