"""Runs leave per-case files (docs/contracts.md, "Per-case files"): one row per evaluated case with the
data's case ids, numbers that add up to the run's metrics.json, per-image rows for detection, 3-D surface
columns, and (slow) the same file from a two-process DDP run as from one process."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch

from runtime.compose import REPO
from runtime.evaluation import write_case_csv
from train import train

FAST = ("debug=fast", "logger=none", "callbacks=none")


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_fast_segmentation_run_writes_one_row_per_case_that_add_up_to_metrics_json(run_config):
    cfg = run_config(*FAST, "trainer.limit_test_batches=null", "datamodule.train_size=16", "datamodule.val_size=8",
                     "datamodule.test_size=6")
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["case_files"] == {"test": "test_cases.csv", "val": "val_cases.csv"}
    rows = _read(run_dir / "test_cases.csv")
    assert [r["case"] for r in rows] == [f"test_{i}" for i in range(6)]
    assert [int(r["index"]) for r in rows] == list(range(6))
    val = _read(run_dir / "val_cases.csv")
    assert [r["case"] for r in val] == [f"val_{i}" for i in range(8)]  # debug=fast: 2 batches of 4
    # Reference pixels are the data's: the test masks of the same datamodule.
    test_set = hydra.utils.instantiate(cfg.datamodule, _convert_="all").datasets["test"]
    for i, row in enumerate(rows):
        counts = np.bincount(test_set.mask(i).ravel(), minlength=6)
        assert [int(row[f"ref_pixels/{k}"]) for k in range(6)] == counts.tolist()
        assert float(row["fg_share"]) == pytest.approx(counts[1:].sum() / counts.sum())
        assert all(row[f"{m}/{k}"] != "" for m in ("dice", "iou") for k in range(6))  # never undefined
        assert float(row["dice_fg"]) == pytest.approx(np.mean([float(row[f"dice/{k}"]) for k in range(1, 6)]))
    # Pooling the cases' counts gives the split's Dice and pixel accuracy in metrics.json.
    tp_total = 0.0
    for k in range(6):
        ref = np.array([float(r[f"ref_pixels/{k}"]) for r in rows])
        pred = np.array([float(r[f"pred_pixels/{k}"]) for r in rows])
        iou = np.array([float(r[f"iou/{k}"]) for r in rows])
        tp = np.where(ref + pred > 0, iou * (ref + pred) / (1 + iou), 0.0)
        tp_total += tp.sum()
        split_dice = record["metrics"][f"test/dice/{k}"]
        if split_dice is None:
            assert ref.sum() + pred.sum() == 0
        else:
            assert 2 * tp.sum() / (ref.sum() + pred.sum()) == pytest.approx(split_dice, abs=1e-6)
    labelled = sum(float(r[f"ref_pixels/{k}"]) for r in rows for k in range(6))
    assert tp_total / labelled == pytest.approx(record["metrics"]["test/pixel_acc"], abs=1e-6)


def test_detection_run_writes_one_row_per_image(run_config):
    cfg = run_config("task=detection", *FAST, "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                     "datamodule.image_size=64", "datamodule.object_sizes=[4,24]", "datamodule.batch_size=2",
                     "datamodule.train_size=2", "datamodule.val_size=2", "datamodule.test_size=3",
                     "trainer.limit_test_batches=null", "model.detector.fpn_channels=32")
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    rows = _read(run_dir / "test_cases.csv")
    assert [r["case"] for r in rows] == ["test_0", "test_1", "test_2"]
    test_set = hydra.utils.instantiate(cfg.datamodule, _convert_="all").datasets["test"]
    for i, row in enumerate(rows):
        n_gt = len(test_set.targets(i)["labels"])
        assert int(row["n_gt"]) == n_gt and int(row["n_pred"]) >= 0 and int(row["fp_50"]) >= 0
        for key in ("ap_50", "recall_50"):
            assert (row[key] == "") == (n_gt == 0) and (row[key] == "" or 0.0 <= float(row[key]) <= 1.0)
    assert json.loads((run_dir / "metrics.json").read_text())["case_files"]["test"] == "test_cases.csv"


def test_3d_run_has_surface_columns_named_by_volume(run_config):
    cfg = run_config(*FAST, "model=unet3d", "model.net.filters=[4,8,16]", "datamodule=synthetic_3d",
                     "datamodule.volume_size=[24,24,16]", "datamodule.patch_size=[16,16,8]",
                     "datamodule.patches_per_epoch=2", "datamodule.batch_size=2", "trainer.max_epochs=1",
                     "datamodule.train_size=1", "datamodule.val_size=1", "datamodule.test_size=2")
    train(cfg)
    rows = _read(Path(cfg.paths.output_dir) / "test_cases.csv")
    assert [r["case"] for r in rows] == ["test_0000", "test_0001"]
    for row in rows:
        for k in (1, 2, 3):
            assert 0.0 <= float(row[f"nsd/{k}"]) <= 1.0
            assert row[f"hd95/{k}"] == "" or float(row[f"hd95/{k}"]) >= 0.0
        assert "hd95/0" not in row


def test_eval_batches_carry_the_data_case_ids_and_collate_works_without_them(tmp_path):
    from datamodules.folder import FolderSegDataModule
    from datamodules.seg_datasets import pad_collate
    from datamodules.volumes.base import pad_collate_3d
    from tests.datamodules.folder_fixtures import make_folder

    make_folder(tmp_path, [(40, 56), (48, 40), (36, 60), (52, 44), (30, 30), (44, 50)])
    folder = FolderSegDataModule(tmp_path, patch_size=(32, 32), batch_size=2, eval_batch_size=2, num_workers=0)
    cases = [case for batch in folder.test_dataloader() for case in batch["case"]]
    assert cases == [s.stem for s in folder.samples["test"]] and all(case.startswith("img") for case in cases)
    plain = pad_collate(255)([{"image": torch.zeros(1, 4, 5), "mask": torch.zeros(4, 5, dtype=torch.long)}] * 2)
    assert set(plain) == {"image", "mask"} and plain["mask"].shape == (2, 4, 5)
    volume = {"image": torch.zeros(1, 4, 4, 4), "mask": torch.zeros(4, 4, 4, dtype=torch.long),
              "spacing": torch.ones(3, dtype=torch.float64)}
    assert set(pad_collate_3d(None)([volume, volume])) == {"image", "mask", "spacing"}
    assert pad_collate_3d(None)([{**volume, "case": "a"}, {**volume, "case": "b"}])["case"] == ["a", "b"]


def test_case_csv_writes_undefined_as_empty_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "test_cases.csv"
    write_case_csv(path, [{"case": "a", "index": 0, "dice/1": 0.25, "hd95/1": math.nan, "ref_pixels/1": 7},
                          {"case": "b", "index": 1, "dice/1": 1.0, "hd95/1": math.inf, "ref_pixels/1": 0}])
    assert path.read_text(encoding="utf-8").splitlines() == \
        ["case,index,dice/1,hd95/1,ref_pixels/1", "a,0,0.25,,7", "b,1,1.0,,0"]
    assert [p.name for p in tmp_path.iterdir()] == ["test_cases.csv"]


def _cli(run_dir: Path, *overrides: str) -> None:
    result = subprocess.run([sys.executable, "train.py", *overrides, f"hydra.run.dir={run_dir}"], cwd=REPO,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_ddp_cpu_case_file_equals_single_process(tmp_path):
    # 5 test cases over 2 ranks (3 + 2): the gathered file holds each case once, in loader order.
    common = (*FAST, "trainer.limit_train_batches=0", "trainer.limit_val_batches=null",
              "trainer.limit_test_batches=null", "datamodule.val_size=4", "datamodule.test_size=5")
    _cli(tmp_path / "single", *common)
    _cli(tmp_path / "ddp", *common, "trainer=ddp_cpu")
    single, ddp = (_read(tmp_path / name / "test_cases.csv") for name in ("single", "ddp"))
    assert [r["case"] for r in ddp] == [f"test_{i}" for i in range(5)]
    for a, b in zip(single, ddp):
        assert a.keys() == b.keys()
        for key in a:
            assert (a[key] == b[key]) or float(a[key]) == pytest.approx(float(b[key]), abs=1e-9), key
