"""runtime/detection_wiring.py on the real configs: `anchor_sizes: auto` is fitted from the coco
datamodule's training boxes, identically for every loss and seed; `trainer.min_steps` raises the
epochs of a small data set; and a short coco run records the fit in metrics.json."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import hydra
import numpy as np
import pytest
from omegaconf import OmegaConf

from datamodules.blob_coco import BlobSpec, write_blob_coco
from datamodules.box_stats import BoxStatistics
from runtime.detection_wiring import budget_epochs, wire_detection
from train import train

SMALL = dataclasses.replace(BlobSpec(), images=10, image_sides=(96, 256), px_per_object=1200.0)


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cells")
    write_blob_coco(root, SMALL)
    return root


def _coco(cells: Path) -> tuple[str, ...]:
    return ("task=detection", "datamodule=coco", f"datamodule.root={cells}", "datamodule.num_classes=1")


def test_coco_defaults_fit_anchors_and_budget_in_steps(run_config, cells: Path) -> None:
    cfg = run_config(*_coco(cells))
    assert cfg.model.detector.anchor_sizes == "auto" and cfg.trainer.min_steps == 600
    assert cfg.detection_budget.box_visits == 4 and cfg.model.detector.arch == "fcos"
    datamodule = hydra.utils.instantiate(cfg.datamodule, _convert_="all")
    record = wire_detection(cfg, datamodule)
    sizes = OmegaConf.to_container(cfg.model.detector.anchor_sizes)
    assert len(sizes) == 4 and all(len(level) == 1 for level in sizes)  # FCOS: one point size per level
    assert [[s] for s in record["anchor_fit"]["sizes"]] == sizes and record["anchor_fit"]["share_with_positive_point"] > 0.9
    assert record["box_statistics"]["boxes"] == len(datamodule.box_statistics().boxes)
    per_epoch = record["budget"]["steps_per_epoch"]
    assert per_epoch == -(-len(datamodule.datasets["train"]) // cfg.datamodule.batch_size)
    stats = datamodule.box_statistics()
    visits_per_epoch = stats.images * stats.boxes_per_input / len(stats.boxes)
    want = max(-(-600 // per_epoch), math.ceil(4 / visits_per_epoch))
    assert cfg.trainer.max_epochs == want and record["budget"]["max_epochs"] == want
    assert record["budget"]["box_visits_per_epoch"] == pytest.approx(visits_per_epoch, abs=1e-4)


def test_every_loss_and_seed_gets_the_same_fit(run_config, cells: Path) -> None:
    fits = []
    for index, (loss, seed) in enumerate([("giou", 1), ("nwd", 2), ("l1", 3)]):
        cfg = run_config(*_coco(cells), f"loss={loss}", f"seed={seed}", subdir=f"r{index}")
        fits.append(wire_detection(cfg, hydra.utils.instantiate(cfg.datamodule, _convert_="all"))["anchor_fit"])
    assert fits[0] == fits[1] == fits[2]


def test_explicit_sizes_and_other_data_are_left_alone(run_config, cells: Path) -> None:
    cfg = run_config(*_coco(cells), "model.detector.anchor_sizes=[[8],[16],[32],[64]]", "model=fcos",
                     "trainer.min_steps=null", "detection_budget.box_visits=null")
    assert wire_detection(cfg, hydra.utils.instantiate(cfg.datamodule, _convert_="all")) == {}
    synthetic = run_config("task=detection", subdir="synthetic")
    assert synthetic.model.detector.anchor_sizes[0] == [4] and synthetic.trainer.get("min_steps") is None
    assert synthetic.detection_budget.box_visits is None
    segmentation = run_config("datamodule=dsb2018", "datamodule.root=/nowhere", subdir="dsb_seg")
    assert "detection_budget" not in segmentation and segmentation.trainer.get("min_steps") is None


def test_fcos_auto_fits_sizes_and_radius(run_config, cells: Path) -> None:
    cfg = run_config(*_coco(cells))
    record = wire_detection(cfg, hydra.utils.instantiate(cfg.datamodule, _convert_="all"))
    assert cfg.model.detector.anchor_sizes == [[1.5], [3.0], [6.0], [12.0]]
    assert cfg.model.detector.center_sampling_radius == record["anchor_fit"]["center_sampling_radius"]


def test_short_coco_run_records_the_fit(run_config, cells: Path) -> None:
    cfg = run_config(*_coco(cells), "debug=fast", "logger=csv", "trainer.min_steps=null", "trainer.max_epochs=1",
                     "detection_budget.box_visits=null",
                     "trainer.limit_train_batches=2", "datamodule.train_crop=96", "datamodule.batch_size=2",
                     "model.detector.fpn_channels=32")
    record = train(cfg)
    assert record["status"] == "completed"
    stored = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert stored["anchor_fit"] == record["anchor_fit"] and stored["box_statistics"]["images"] == 8
    saved = OmegaConf.load(Path(cfg.paths.output_dir) / "config.yaml")
    assert saved.model.detector.anchor_sizes == [[s] for s in record["anchor_fit"]["sizes"]]  # what the run used
    assert 0.0 <= stored["metrics"]["test/map_50"] <= 1.0


def _stats(boxes_per_image: list[int], crop_boxes: float | None) -> BoxStatistics:
    boxes = np.tile([[0.0, 0.0, 10.0, 10.0]], (sum(boxes_per_image), 1))
    return BoxStatistics(boxes, len(boxes_per_image), 0, 1024, crop_boxes)


@pytest.mark.parametrize(
    ("max_epochs", "per_epoch", "min_steps", "visits", "crop_boxes", "want"),
    [
        (7, 36, 0, 0.0, None, 7),          # no rule: the configured epochs
        (7, 36, 600, 0.0, None, 17),       # the step floor: ceil(600 / 36)
        (7, 36, 0, 20.0, None, 20),        # whole images: an epoch visits every box once
        (7, 36, 0, 20.0, 5.0, 40),         # crops holding half an image's 10 boxes: 0.5 visits per epoch
        (7, 36, 600, 20.0, 1.0, 200),      # crops holding a tenth: 0.1 visits per epoch, beats the floor
        (300, 36, 600, 20.0, 5.0, 300),    # the configured epochs already exceed both
    ],
)
def test_budget_epochs_take_the_largest_rule(max_epochs, per_epoch, min_steps, visits, crop_boxes, want) -> None:
    stats = _stats([10] * 12, crop_boxes)  # 12 images of 10 boxes
    epochs, record = budget_epochs(max_epochs, per_epoch, min_steps, visits, stats)
    assert epochs == want and record["max_epochs"] == want and record["steps"] == want * per_epoch
    if visits:
        per_epoch_visits = 12 * (crop_boxes if crop_boxes is not None else 10) / 120
        assert record["box_visits_per_epoch"] == pytest.approx(per_epoch_visits)
        assert epochs * per_epoch_visits >= visits - 1e-9


def test_budget_scales_with_boxes_not_only_images() -> None:
    # the same 12 images: dense ones whose crops hold a fifth of their boxes need five times the epochs
    sparse, _ = budget_epochs(1, 3, 0, 10.0, _stats([10] * 12, None))
    dense, _ = budget_epochs(1, 3, 0, 10.0, _stats([100] * 12, 20.0))
    assert (sparse, dense) == (10, 50)
