"""The synthetic cell folder (datamodules/blob_coco.py): COCO layout, real-looking size statistics,
determinism, and the coco datamodule's resolution policy and box statistics on it."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.blob_coco import BlobSpec, write_blob_coco
from datamodules.coco import CocoDataModule

SMALL = dataclasses.replace(BlobSpec(), images=10, image_sides=(96, 320), px_per_object=1200.0)


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cells")
    write_blob_coco(root, SMALL)
    return root


def test_sizes_are_small_and_inside_their_images(cells: Path) -> None:
    coco = json.loads((cells / "annotations.json").read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    assert len(coco["images"]) == 10 and all(96 <= s <= 320 for wh in sizes.values() for s in wh)
    wh = np.array([a["bbox"][2:] for a in coco["annotations"]])
    assert len(wh) > 150  # ≈ one cell per px_per_object pixels
    assert 16 <= np.median(np.sqrt(wh.prod(axis=1))) <= 24  # median ≈ 20 px
    assert 0.75 <= np.mean(wh.prod(axis=1) < 32**2) <= 0.97  # ≈ 88 % COCO-small
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        width, height = sizes[ann["image_id"]]
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height and w > 0 and h > 0


def test_deterministic_per_seed(tmp_path: Path, cells: Path) -> None:
    again = write_blob_coco(tmp_path, SMALL)
    assert again == json.loads((cells / "annotations.json").read_text())
    assert (tmp_path / "images" / "cells_003.png").read_bytes() == (cells / "images" / "cells_003.png").read_bytes()


def _dm(cells: Path, **kwargs) -> CocoDataModule:
    args = dict(root=str(cells), num_classes=1, val_share=0.2, test_share=0.2, augment=None, batch_size=2)
    args.update(kwargs)
    dm = CocoDataModule(**args)
    dm.setup()
    return dm


def test_eval_images_stay_native_training_reads_crops(cells: Path) -> None:
    dm = _dm(cells, image_size=200, train_crop=64)
    split = dm.datasets["test"]
    image, _ = split[0]
    info = split.coco.imgs[split.ids[0]]
    assert image.shape[-2:] == (info["height"], info["width"])  # whole and unscaled; the detector caps it
    for index in range(len(dm.datasets["train"])):
        image, target = dm.datasets["train"][index]
        assert image.shape[-2:] == (64, 64)
        boxes = target["boxes"]
        assert ((boxes >= 0) & (boxes <= 64)).all() and len(boxes) == len(target["labels"])


def test_box_statistics_are_in_network_pixels(cells: Path) -> None:
    native = _dm(cells, image_size=1024).box_statistics()
    capped = _dm(cells, image_size=160).box_statistics()
    assert native.downscaled == 0 and capped.downscaled > 0 and native.images == capped.images
    assert len(native.boxes) == len(capped.boxes) and (capped.sizes <= native.sizes + 1e-9).all()
    assert capped.sizes.sum() < native.sizes.sum()
    summary = native.summary()
    assert summary["boxes"] == len(native.boxes) and 0.5 < summary["small_share"] <= 1.0


def test_split_seed_keeps_the_split_across_seeds(cells: Path) -> None:
    first, second = _dm(cells, seed=1, split_seed=7), _dm(cells, seed=2, split_seed=7)
    assert first.datasets["train"].ids == second.datasets["train"].ids
    np.testing.assert_array_equal(first.box_statistics().boxes, second.box_statistics().boxes)
    assert _dm(cells, seed=1).datasets["train"].ids != _dm(cells, seed=3).datasets["train"].ids


def test_bad_resolution_options_are_named(cells: Path) -> None:
    with pytest.raises(ValueError, match="train_crop"):
        CocoDataModule(root=str(cells), num_classes=1, train_crop=8)
    with pytest.raises(ValueError, match="scale_range"):
        CocoDataModule(root=str(cells), num_classes=1, scale_range=[2.0, 1.0])


def test_multi_scale_training_changes_crop_content_scale(cells: Path) -> None:
    torch.manual_seed(0)
    dm = _dm(cells, image_size=1024, train_crop=None, scale_range=[0.5, 0.5])
    image, _ = dm.datasets["train"][0]
    info = dm.datasets["train"].coco.imgs[dm.datasets["train"].ids[0]]
    assert image.shape[-2:] == (round(info["height"] / 2), round(info["width"] / 2))
