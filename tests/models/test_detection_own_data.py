"""The issue-15 acceptance measurement (slow): the coco defaults on the full synthetic cell folder
(datamodules/blob_coco.py, 48 training images of 256-1024 px, ≈ 2,400 boxes of median 20 px) reach
test mAP_50 ≥ 0.5 from random init (measured: 0.95 in 367 CPU-seconds; docs/detection.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

from datamodules.blob_coco import BlobSpec, write_blob_coco
from train import train


@pytest.mark.slow
def test_coco_defaults_learn_small_cells(run_config, tmp_path: Path) -> None:
    root = tmp_path / "cells"
    write_blob_coco(root, BlobSpec())
    cfg = run_config("task=detection", "datamodule=coco", f"datamodule.root={root}", "datamodule.num_classes=1",
                     "logger=none")
    record = train(cfg)
    assert record["status"] == "completed"
    assert record["anchor_fit"]["matched_share_iou50"] > 0.9
    assert record["metrics"]["test/map_50"] >= 0.5
