"""Hand-made sweep dirs in the run-dir layout of docs/contracts.md, "Run outputs" (no training needed)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

CLASS_NAMES = ["background", "common", "rare"]


def write_run(run_dir: Path, *, loss: str, seed: int, metrics: dict[str, float] | None,
              datamodule: str = "synthetic_imbalanced", task: str = "segmentation",
              error: str | None = None, extra_overrides: tuple[str, ...] = (), curves: bool = True,
              predictions: bool = False, history: dict[str, list] | None = None, config: dict | None = None,
              record: dict | None = None, wall_time_s: float = 1.5) -> Path:
    """One run dir: metrics.json, config.yaml, .hydra/overrides.yaml, csv/metrics.csv, predictions.

    ``history`` goes into metrics.json (with ``best_epoch`` = the best ``val/miou`` epoch); without it the
    run looks like one made before metrics.json carried histories. ``config`` is merged into config.yaml
    (nested dicts update), ``record`` into metrics.json.
    """
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    status = "failed" if metrics is None else "completed"
    rec = {"status": status, "error": error if metrics is None else None, "task": task, "loss": loss,
           "datamodule": datamodule, "model": "unet", "seed": seed, "wall_time_s": wall_time_s, "epochs": 3,
           "metrics": metrics or {}, "versions": {"torch": "x"}}
    if history is not None:
        rec["history"] = history
        rec["epochs"] = len(next(iter(history.values())))
        if "val/miou" in history:
            rec["best_epoch"] = int(np.nanargmax(np.array(history["val/miou"], dtype=float)))
    rec.update(record or {})
    (run_dir / "metrics.json").write_text(json.dumps(rec))
    cfg = {"task": task, "seed": seed, "loss": {"_target_": f"losses.{loss}"},
           "datamodule": {"_target_": "datamodules.Synthetic", "name": datamodule, "class_names": CLASS_NAMES},
           "trainer": {"max_epochs": 3}}
    _merge(cfg, config or {})
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    overrides = [f"loss={loss}", f"seed={seed}", *extra_overrides]
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if curves and metrics is not None:
        (run_dir / "csv").mkdir(exist_ok=True)
        rows = ["epoch,step,train/loss,val/miou"]
        for epoch in range(3):
            rows.append(f"{epoch},{epoch * 4 + 3},{1.0 / (epoch + 1) + seed * 0.01},")
            rows.append(f"{epoch},{epoch * 4 + 3},,{metrics.get('test/miou', 0.5) * (epoch + 1) / 3}")
        (run_dir / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    if predictions and metrics is not None:
        rng = np.random.default_rng(seed)
        images = rng.random((3, 3, 16, 16)).astype(np.float32)
        masks = rng.integers(0, 3, size=(3, 16, 16))
        preds = np.where(rng.random((3, 16, 16)) < 0.8, masks, 0)
        np.savez_compressed(run_dir / "test_predictions.npz", image=images, mask=masks, prediction=preds,
                            class_names=np.array(CLASS_NAMES))
    return run_dir


def _merge(base: dict, update: dict) -> None:
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def curve_to(final: float, epochs: int, plateau_from: int | None = None) -> list[float]:
    """A rising validation curve that reaches ``final``; flat from epoch ``plateau_from`` (0-based) on."""
    stop = epochs - 1 if plateau_from is None else plateau_from
    return [final * min(e, stop) / max(stop, 1) if e < stop else final for e in range(epochs)]


def seg_metrics(miou: float, rare: float, small: float = 0.5) -> dict[str, float]:
    return {"val/miou": miou, "test/miou": miou, "test/dice_fg": miou + 0.05, "test/iou/0": 0.95,
            "test/iou/1": 0.7, "test/iou/2": rare, "test/pixel_acc": 0.9,
            # alphabetical, as train.py sorts the keys; the leaderboard orders buckets by size
            "test/small_recall/16-64": (small + 0.9) / 2, "test/small_recall/ge64": 0.9,
            "test/small_recall/lt16": small}


# Hand-made results: per loss, test/miou for seeds 1..5 (and the rare-class IoU).
MIOU = {"ce": [0.60, 0.62, 0.61, 0.63, 0.59], "dice": [0.65, 0.66, 0.64, 0.70, 0.60],
        "focal": [0.58, 0.61, 0.60, 0.62, 0.60]}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A 3-loss × 5-seed sweep; the ``focal`` seed-5 job failed."""
    root = tmp_path / "sweep"
    num = 0
    for loss, values in MIOU.items():
        for seed, miou in enumerate(values, start=1):
            failed = loss == "focal" and seed == 5
            write_run(root / str(num), loss=loss, seed=seed,
                      metrics=None if failed else seg_metrics(miou, rare=miou - 0.3),
                      error="RuntimeError: loss is NaN" if failed else None, predictions=seed == 1)
            num += 1
    return root


def write_cases(run_dir: Path, columns: dict[str, np.ndarray | list], ids: list[str] | None = None,
                name: str = "test_cases.csv", register: bool = True) -> Path:
    """A per-case file (docs/contracts.md, "Per-case files") in ``run_dir``; ``register`` adds
    ``case_files`` to its metrics.json. ``None``/NaN values are written as empty cells."""
    n = len(next(iter(columns.values())))
    ids = ids if ids is not None else [f"img_{i:03d}" for i in range(n)]
    lines = [",".join(["case", "index", *columns])]
    for i, case in enumerate(ids):
        cells = [case, str(i)]
        for values in columns.values():
            v = values[i]
            cells.append("" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{float(v):.6g}")
        lines.append(",".join(cells))
    (run_dir / name).write_text("\n".join(lines) + "\n")
    if register:
        rec = json.loads((run_dir / "metrics.json").read_text())
        rec["case_files"] = {"test": name}
        (run_dir / "metrics.json").write_text(json.dumps(rec))
    return run_dir / name


# Per-case simulation: test/miou = mean + case effect + seed effect + noise; ``dice`` is 0.05 better.
CASE_EFFECT = {"ce": 0.0, "dice": 0.05, "focal": 0.0}


def case_values(loss: str, seed: int, n_cases: int = 40) -> np.ndarray:
    case = np.random.default_rng(0).normal(0, 0.1, n_cases)
    rng = np.random.default_rng([seed, sorted(CASE_EFFECT).index(loss)])
    return np.clip(0.6 + CASE_EFFECT[loss] + case + rng.normal(0, 0.01) + rng.normal(0, 0.03, n_cases), 0, 1)


@pytest.fixture
def case_sweep(tmp_path: Path) -> Path:
    """3 losses × 3 seeds, each run with a 40-case ``test_cases.csv`` (``miou``, ``dice_fg``, ``iou/k``)."""
    root = tmp_path / "cases"
    num = 0
    for loss in CASE_EFFECT:
        for seed in (1, 2, 3):
            v = case_values(loss, seed)
            run = write_run(root / str(num), loss=loss, seed=seed, metrics={**seg_metrics(float(v.mean()), 0.3), "test/hd95/1": 3.0},
                            curves=False)
            write_cases(run, {"miou": v, "dice_fg": 2 * v / (1 + v), "iou/0": np.full(v.size, 0.95), "iou/1": v,
                              "iou/2": v * 0.5, "dice/0": np.full(v.size, 0.97),
                              "hd95/1": np.where(v > 0.5, 3.0, np.nan)})
            num += 1
    return root
