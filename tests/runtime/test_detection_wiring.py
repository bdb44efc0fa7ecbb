"""runtime/detection_wiring.py on the real configs: `anchor_sizes: auto` is fitted from the coco
datamodule's training boxes, identically for every loss and seed; `trainer.min_steps` raises the
epochs of a small data set; and a short coco run records the fit in metrics.json."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from datamodules.blob_coco import BlobSpec, write_blob_coco
from runtime.detection_wiring import wire_detection
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
    assert cfg.model.detector.anchor_sizes == "auto" and cfg.trainer.min_steps == 200
    datamodule = hydra.utils.instantiate(cfg.datamodule, _convert_="all")
    record = wire_detection(cfg, datamodule)
    sizes = OmegaConf.to_container(cfg.model.detector.anchor_sizes)
    assert len(sizes) == 4 and all(len(level) == 2 for level in sizes)
    assert record["anchor_fit"]["sizes"] == sizes and record["anchor_fit"]["matched_share_iou50"] > 0.9
    assert record["box_statistics"]["boxes"] == len(datamodule.box_statistics().boxes)
    per_epoch = record["budget"]["steps_per_epoch"]
    assert per_epoch == -(-len(datamodule.datasets["train"]) // cfg.datamodule.batch_size)
    assert cfg.trainer.max_epochs == -(-200 // per_epoch) and cfg.trainer.max_epochs * per_epoch >= 200


def test_every_loss_and_seed_gets_the_same_fit(run_config, cells: Path) -> None:
    fits = []
    for index, (loss, seed) in enumerate([("giou", 1), ("nwd", 2), ("l1", 3)]):
        cfg = run_config(*_coco(cells), f"loss={loss}", f"seed={seed}", subdir=f"r{index}")
        fits.append(wire_detection(cfg, hydra.utils.instantiate(cfg.datamodule, _convert_="all"))["anchor_fit"])
    assert fits[0] == fits[1] == fits[2]


def test_explicit_sizes_and_other_data_are_left_alone(run_config, cells: Path) -> None:
    cfg = run_config(*_coco(cells), "model.detector.anchor_sizes=[[8],[16],[32],[64]]", "model=fcos",
                     "trainer.min_steps=null")
    assert wire_detection(cfg, hydra.utils.instantiate(cfg.datamodule, _convert_="all")) == {}
    synthetic = run_config("task=detection", subdir="synthetic")
    assert synthetic.model.detector.anchor_sizes[0] == [4, 6] and synthetic.trainer.get("min_steps") is None


def test_fcos_auto_fits_sizes_and_radius(run_config, cells: Path) -> None:
    cfg = run_config(*_coco(cells), "model=fcos")
    record = wire_detection(cfg, hydra.utils.instantiate(cfg.datamodule, _convert_="all"))
    assert cfg.model.detector.anchor_sizes == [[1.5], [3.0], [6.0], [12.0]]
    assert cfg.model.detector.center_sampling_radius == record["anchor_fit"]["center_sampling_radius"]


def test_short_coco_run_records_the_fit(run_config, cells: Path) -> None:
    cfg = run_config(*_coco(cells), "debug=fast", "logger=csv", "trainer.min_steps=null", "trainer.max_epochs=1",
                     "trainer.limit_train_batches=2", "datamodule.train_crop=96", "datamodule.batch_size=2",
                     "model.detector.fpn_channels=32")
    record = train(cfg)
    assert record["status"] == "completed"
    stored = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert stored["anchor_fit"] == record["anchor_fit"] and stored["box_statistics"]["images"] == 8
    saved = OmegaConf.load(Path(cfg.paths.output_dir) / "config.yaml")
    assert saved.model.detector.anchor_sizes == record["anchor_fit"]["sizes"]  # the run's config says what it used
    assert 0.0 <= stored["metrics"]["test/map_50"] <= 1.0
