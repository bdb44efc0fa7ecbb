"""VOC, Oxford-IIIT Pet and Cityscapes from tiny fake trees in torchvision's standard layouts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datamodules.torchvision_sets import (CITYSCAPES_CLASSES, CityscapesSegDataModule, OxfordPetSegDataModule,
                                          VOCSegDataModule)
from tests.datamodules.folder_fixtures import write_array

RNG = np.random.default_rng(0)
FAST = dict(patch_size=(32, 32), patches_per_epoch=8, batch_size=4, num_workers=0, augment=None)


def make_voc(root: Path) -> dict[str, np.ndarray]:
    base = root / "VOCdevkit" / "VOC2012"
    masks = {}
    for split, names in (("train", ["2007_000001", "2007_000002"]), ("val", ["2007_000003", "2007_000004", "2007_000005"])):
        for name in names:
            write_array(base / "JPEGImages" / f"{name}.jpg", RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8))
            mask = np.zeros((30, 40), np.uint8)
            mask[5:10, 5:12] = 15  # person
            mask[4, :] = 255  # VOC's object border
            write_array(base / "SegmentationClass" / f"{name}.png", mask, mode="P", palette=True)
            masks[name] = mask
        (base / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return masks


def test_voc_layout_palette_masks_and_border_ignored(tmp_path):
    make_voc(tmp_path)
    dm = VOCSegDataModule(tmp_path, **FAST)
    assert dm.num_classes == 21 and dm.class_names[15] == "person"
    assert [s.stem for s in dm.samples["train"]] == ["2007_000001", "2007_000002"]
    assert len(dm.samples["val"]) + len(dm.samples["test"]) == 3  # VOC val cut into val and test
    assert not {s.stem for s in dm.samples["val"]} & {s.stem for s in dm.samples["test"]}
    counts = dm.class_pixel_counts()
    assert counts[15] == 2 * 35 and counts[0] == 2 * (30 * 40 - 35 - 40) and counts.sum() == 2 * (30 * 40 - 40)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and set(batch["mask"].unique().tolist()) <= {0, 15, 255}


def test_oxford_pet_trimap_mapping(tmp_path):
    base = tmp_path / "oxford-iiit-pet"
    for split, ids in (("trainval", ["Abyssinian_1", "Abyssinian_2", "beagle_1"]), ("test", ["beagle_2"])):
        lines = []
        for image_id in ids:
            write_array(base / "images" / f"{image_id}.jpg", RNG.integers(0, 256, (24, 28, 3), dtype=np.uint8))
            trimap = np.full((24, 28), 2, np.uint8)  # background
            trimap[6:14, 6:14] = 3  # border band
            trimap[8:12, 8:12] = 1  # pet
            write_array(base / "annotations" / "trimaps" / f"{image_id}.png", trimap)
            lines.append(f"{image_id} 1 1 1")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    dm = OxfordPetSegDataModule(tmp_path, val_share=0.34, **FAST)
    assert dm.class_names == ["background", "pet"]
    assert [len(dm.samples[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    mask = next(iter(dm.split_masks("test")))
    assert (mask[8:12, 8:12] == 1).all() and mask[6, 6] == 255 and mask[0, 0] == 0
    assert dm.class_pixel_counts().tolist() == [2 * (24 * 28 - 64), 2 * 16]


def test_cityscapes_label_ids_map_to_train_ids(tmp_path):
    for split, cities in (("train", ["aachen", "bochum"]), ("val", ["frankfurt", "lindau"])):
        for city in cities:
            stem = f"{city}_000000_000019"
            write_array(tmp_path / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                        RNG.integers(0, 256, (32, 64, 3), dtype=np.uint8))
            labels = np.full((32, 64), 7, np.uint8)  # road (train id 0)
            labels[:8] = 23  # sky (train id 10)
            labels[-2:] = 1  # ego vehicle: ignored
            labels[10:12, 10:12] = 26  # car (train id 13)
            write_array(tmp_path / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", labels)
    dm = CityscapesSegDataModule(tmp_path, **FAST)
    assert dm.num_classes == 19 and CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_CLASSES[13] == "car"
    counts = dm.class_pixel_counts()
    assert counts[0] == 2 * (22 * 64 - 4) and counts[10] == 2 * 8 * 64 and counts[13] == 2 * 4
    assert counts.sum() == 2 * 30 * 64  # the two ego-vehicle rows are ignored


@pytest.mark.parametrize("factory, hint", [
    (VOCSegDataModule, "VOCdevkit/VOC2012"), (OxfordPetSegDataModule, "oxford-iiit-pet"),
    (CityscapesSegDataModule, "leftImg8bit,gtFine"),
])
def test_missing_tree_names_root_and_layout_without_downloading(tmp_path, factory, hint):
    with pytest.raises(ValueError, match=f"dataset not found under root={tmp_path}.*{hint}"):
        factory(tmp_path, **FAST)
