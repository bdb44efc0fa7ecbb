"""``python scripts/dataset_card.py``: card numbers, tables and preview for segmentation and detection data."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from scripts.dataset_card import main
from tests.datamodules.folder_fixtures import write_array


def test_segmentation_card_numbers_and_preview(tmp_path):
    root = tmp_path / "data"
    for k, stem in enumerate("abcdef"):
        mask = np.zeros((32, 32), np.uint8)
        mask[4:4 + k + 2, 4:4 + k + 2] = 1  # one square object of side k + 2
        write_array(root / "images" / f"{stem}.png", np.full((32, 32, 3), 40 * k, np.uint8))
        write_array(root / "masks" / f"{stem}.png", mask)
    (root / "splits").mkdir()
    for split, stems in (("train", "a\nb\nc\nd"), ("val", "e"), ("test", "f")):
        (root / "splits" / f"{split}.txt").write_text(stems + "\n")
    out = tmp_path / "card"
    stats = main(["datamodule=folder", f"datamodule.root={root}", "datamodule.patch_size=[32,32]", "--out", str(out)])
    assert json.loads((out / "card.json").read_text()) == json.loads(json.dumps(stats))
    assert [stats["splits"][s]["images"] for s in ("train", "val", "test")] == [4, 1, 1]
    assert stats["class_pixels"][1] == 4 + 9 + 16 + 25
    assert stats["objects"]["class_1"]["components"] == 4 and stats["objects"]["class_1"]["median_area"] == 12.5
    assert "split" not in stats  # a user folder has no committed split
    assert (out / "card.md").read_text().startswith("# Dataset card numbers: folder")
    preview = np.asarray(Image.open(out / "preview.png"))
    assert preview.shape[0] > 100 and preview.std() > 0


def test_detection_card_counts_boxes_per_class_and_size(tmp_path):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(1, 11):
        Image.fromarray(np.full((64, 96, 3), 20 * i, np.uint8)).save(root / "images" / f"im{i}.png")
        images.append({"id": i, "file_name": f"im{i}.png", "width": 96, "height": 64})
        if i <= 8:  # images 9 and 10 hold no boxes
            for j, (side, category) in enumerate(((8, 1), (40, 2))):
                annotations.append({"id": 10 * i + j, "image_id": i, "bbox": [4, 4, side, side], "category_id": category,
                                    "iscrowd": 0, "area": side * side})
    categories = [{"id": 1, "name": "small"}, {"id": 2, "name": "large"}]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    out = tmp_path / "card"
    stats = main(["task=detection", "datamodule=coco", f"datamodule.root={root}", "datamodule.num_classes=2",
                  "datamodule.val_share=0.2", "datamodule.test_share=0.2", "--out", str(out), "--no-preview"])
    splits = stats["splits"]
    assert sum(info["images"] for info in splits.values()) == 10
    assert sum(info["images_without_boxes"] for info in splits.values()) == 2
    assert sum(info["boxes_per_class"]["small"] for info in splits.values()) == 8
    train = splits["train"]
    assert train["boxes_per_class"]["small"] == train["boxes_per_class"]["large"]
    assert train["share_under_32px"] == pytest.approx(0.5)
    assert train["box_scale_px"]["p05"] == pytest.approx(8.0) and train["box_scale_px"]["p95"] == pytest.approx(40.0)
    assert not (out / "preview.png").exists()
