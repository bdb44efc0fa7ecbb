"""``python train.py datamodule=folder datamodule.root=... loss=dice_focal`` end to end on a tiny folder."""
from __future__ import annotations

import json
from pathlib import Path

from models.inferer import WindowInferer
from runtime.builders import build_eval_inferer
from tests.datamodules.folder_fixtures import make_folder
from train import train


def test_folder_run_trains_on_patches_and_evaluates_whole_images(tmp_path, run_config):
    data = tmp_path / "data"
    # Gray images and `in_channels: null`: the channel count follows the data into the model.
    make_folder(data, [(40, 56), (48, 40), (36, 60), (52, 44), (20, 24), (44, 50)], channels=1, num_classes=2)
    cfg = run_config("debug=fast", "logger=csv", "loss=dice_focal", "datamodule=folder", f"datamodule.root={data}",
                     "datamodule.patch_size=[32,32]", "datamodule.patches_per_epoch=8", "trainer.max_epochs=1")
    record = train(cfg)
    on_disk = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert on_disk["status"] == "completed" and on_disk["datamodule"] == "folder"
    for key in ("val/miou", "test/miou", "test/dice_fg", "test/iou/1", "test/object_recall"):
        assert key in on_disk["metrics"], key
    assert 0.0 <= on_disk["metrics"]["test/miou"] <= 1.0
    assert record["metrics"]["test/miou"] == on_disk["metrics"]["test/miou"]
    assert cfg.datamodule.in_channels == 1
    assert json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["status"] == "completed"


def test_folder_datamodule_asks_for_a_sliding_window_inferer(tmp_path, run_config):
    import hydra

    data = tmp_path / "data"
    make_folder(data, [(40, 56)] * 4)
    cfg = run_config("datamodule=folder", f"datamodule.root={data}", "datamodule.sliding_window.overlap=0.5")
    datamodule = hydra.utils.instantiate(cfg.datamodule, _convert_="all")
    assert datamodule.eval_window["patch_size"] == (128, 128) and datamodule.eval_window["overlap"] == 0.5
    inferer = build_eval_inferer(datamodule)
    assert isinstance(inferer, WindowInferer)
    assert inferer.patch_size == (128, 128) and inferer.overlap == 0.5 and inferer.blend == "gaussian"
    assert (datamodule.num_classes, datamodule.mode, datamodule.in_channels, datamodule.ignore_index) == \
        (2, "multiclass", 3, 255)
