"""``datamodule=dsb2018`` on files written in the Kaggle layout: RGBA/gray images, one mask per nucleus,
overlapping masks, the derived semantic mask / instance map / boxes and their cache, the committed split,
layout and bad-file errors, tiny segmentation and detection runs, and (slow) the development copy."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.image_io import read_mask
from datamodules.public import dsb2018 as dsb
from datamodules.public.download import DownloadError
from datamodules.public.dsb2018 import DSB2018DetDataModule, DSB2018SegDataModule, dsb2018, modality
from datamodules.public.layout import LayoutError
from datamodules.public.splits import SplitSpec
from datamodules.seg_samples import DataProblems
from tests.real_data import DSB2018, real_data
from train import train

SPEC = SplitSpec.load("dsb2018")
SIZE = (40, 48)  # H, W


def some_ids(per_split: int = 2) -> list[str]:
    return [case for split in ("train", "val", "test") for case in SPEC.splits[split][:per_split]]


def disc(center: tuple[int, int], radius: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    rows, cols = np.mgrid[:size[0], :size[1]]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius ** 2


def write_case(stage1: Path, case_id: str, masks: list[np.ndarray], mode: str = "RGBA") -> None:
    (stage1 / case_id / "images").mkdir(parents=True)
    (stage1 / case_id / "masks").mkdir()
    union = np.any(masks, axis=0)
    gray = np.where(union, 200, 20).astype(np.uint8)
    if mode == "L":
        Image.fromarray(gray).save(stage1 / case_id / "images" / f"{case_id}.png")
    else:
        rgba = np.stack([gray, gray, gray, np.full_like(gray, 255)], axis=2)
        Image.fromarray(rgba, "RGBA").save(stage1 / case_id / "images" / f"{case_id}.png")
    for k, mask in enumerate(masks):
        Image.fromarray(mask.astype(np.uint8) * 255).save(stage1 / case_id / "masks" / f"m{k:02d}.png")


def make_dsb(root: Path, ids: list[str]) -> Path:
    """Two discs per case (the second one small and overlapping the first in the first case); the
    second case's image is gray. Returns the stage1_train folder."""
    stage1 = root / "stage1_train"
    for k, case_id in enumerate(ids):
        big, small = disc((18, 20), 10), disc((18, 28 + k % 3), 4)
        masks = [big, small] if k == 0 else [big, disc((8, 40), 3)]
        write_case(stage1, case_id, masks, mode="L" if k == 1 else "RGBA")
    return stage1


def seg(root: Path, tmp_path: Path, **kwargs) -> DSB2018SegDataModule:
    return DSB2018SegDataModule(root, cache_dir=tmp_path / "cache", num_workers=0, **kwargs)


def test_derives_semantic_union_instances_smaller_wins_and_pixel_edge_boxes(tmp_path):
    ids = some_ids()
    make_dsb(tmp_path / "data", ids)
    data = seg(tmp_path / "data", tmp_path)
    case = next(c for split in data.data.splits.values() for c in split if c.id == ids[0])
    big, small = disc((18, 20), 10), disc((18, 28), 4)
    semantic, instances = read_mask(case.semantic), read_mask(case.instances)
    assert np.array_equal(semantic, (big | small).astype(np.uint8))
    assert np.array_equal(instances == 2, small) and np.array_equal(instances == 1, big & ~small)
    assert case.boxes == [[10.0, 8.0, 31.0, 29.0], [24.0, 14.0, 33.0, 23.0]]  # x2 = last column + 1
    assert case.areas == [int(big.sum()), int(small.sum())]
    assert data.num_classes == 2 and data.class_names == ["background", "nucleus"] and data.in_channels == 3
    counts = data.class_pixel_counts()
    train_union = sum(int(read_mask(c.semantic).sum()) for c in data.data.splits["train"])
    assert counts[1] == train_union and counts.sum() == len(data.data.splits["train"]) * SIZE[0] * SIZE[1]


def test_rgba_drops_alpha_and_gray_images_become_three_channels(tmp_path):
    ids = some_ids()
    make_dsb(tmp_path / "data", ids)
    data = seg(tmp_path / "data", tmp_path, normalize="none")
    data.setup()
    images = {files.stem: data._stores[split].get(k)[0] for split in ("train", "val", "test")
              for k, files in enumerate(data.samples[split])}
    assert images[ids[0]].shape == (*SIZE, 3) and images[ids[1]].shape == (*SIZE, 1)
    batch = next(iter(data.val_dataloader()))
    assert batch["image"].shape == (1, 3, *SIZE) and batch["case"] == [data.samples["val"][0].stem]


def test_modality_rule_from_pixels():
    dark = np.full((8, 8, 3), 10, np.uint8)
    bright = np.full((8, 8, 3), 220, np.uint8)
    purple = np.stack([np.full((8, 8), 150), np.full((8, 8), 80), np.full((8, 8), 160)], axis=2).astype(np.uint8)
    assert [modality(dark), modality(bright), modality(purple), modality(dark[..., :1])] == \
        ["fluorescence", "brightfield", "stained", "fluorescence"]


def test_committed_split_is_intersected_with_a_warning_and_the_hash_follows_the_cases(tmp_path, caplog):
    ids = some_ids()
    make_dsb(tmp_path / "data", ids)
    with caplog.at_level(logging.WARNING):
        full = seg(tmp_path / "data", tmp_path)
    assert {split: [c.id for c in cases] for split, cases in full.data.splits.items()} == \
        {split: sorted(SPEC.splits[split][:2]) for split in ("train", "val", "test")}
    assert full.split_info.missing == sum(len(v) for v in SPEC.splits.values()) - 6
    assert "cases listed in split dsb2018@v1 are not under the root" in caplog.text
    make_dsb(tmp_path / "more", ids + ["unlisted_case"])
    more = seg(tmp_path / "more", tmp_path / "m")
    assert more.split_info.unlisted == 1 and more.split_info.hash != full.split_info.hash
    assert full.split_record()["hash"] == full.split_info.hash


def test_root_may_be_stage1_train_itself(tmp_path):
    stage1 = make_dsb(tmp_path / "data", some_ids())
    assert seg(stage1, tmp_path).split_info.hash == seg(tmp_path / "data", tmp_path / "b").split_info.hash


def test_wrong_root_names_the_layout_and_what_is_missing(tmp_path):
    (tmp_path / "stage1_test").mkdir()
    with pytest.raises(LayoutError) as error:
        seg(tmp_path, tmp_path)
    message = str(error.value)
    assert "dsb2018" in message and "stage1_train/<id>/images/<id>.png" in message
    assert "missing (2): stage1_train/" in message and "unexpected (1): stage1_test" in message


def test_bad_files_are_all_named_before_training(tmp_path):
    ids = some_ids()
    stage1 = make_dsb(tmp_path / "data", ids)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(stage1 / ids[0] / "masks" / "m00.png")  # wrong size
    (stage1 / ids[1] / "masks" / "m01.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros(SIZE, np.uint8)).save(stage1 / ids[2] / "masks" / "m01.png")  # empty
    (stage1 / ids[3] / "images" / f"{ids[3]}.png").unlink()
    with pytest.raises(DataProblems) as error:
        seg(tmp_path / "data", tmp_path)
    problems = error.value.problems
    assert len(problems) == 4
    assert any(f"{ids[0]}/masks/m00.png: mask size 10x10" in p for p in problems)
    assert any(f"{ids[1]}/masks/m01.png" in p for p in problems)
    assert any(f"{ids[2]}/masks/m01.png: empty mask" in p for p in problems)
    assert any(f"{ids[3]}.png: image missing" in p for p in problems)


def test_cache_is_reused_and_a_changed_mask_rederives_only_its_case(tmp_path, monkeypatch):
    ids = some_ids()
    stage1 = make_dsb(tmp_path / "data", ids)
    seg(tmp_path / "data", tmp_path)
    derived = []
    original = dsb.derive
    monkeypatch.setattr(dsb, "derive", lambda image, masks: derived.append(len(masks)) or original(image, masks))
    seg(tmp_path / "data", tmp_path)
    assert derived == []
    mask = stage1 / ids[2] / "masks" / "m01.png"
    Image.fromarray(disc((30, 10), 5).astype(np.uint8) * 255).save(mask)
    os.utime(mask, ns=(1, 1))
    again = seg(tmp_path / "data", tmp_path)
    assert derived == [2]
    case = next(c for split in again.data.splits.values() for c in split if c.id == ids[2])
    assert case.boxes[1] == [5.0, 25.0, 16.0, 36.0]
    assert len(list((tmp_path / "cache" / ids[2]).iterdir())) == 3  # stale files of the old key removed


def test_default_cache_is_beside_the_data_when_writable_else_in_the_home_cache(tmp_path, monkeypatch):
    make_dsb(tmp_path / "data", some_ids())
    DSB2018SegDataModule(tmp_path / "data", num_workers=0)
    assert (tmp_path / "data" / ".lossbench_cache" / "dsb2018").is_dir()
    monkeypatch.setattr(dsb.os, "access", lambda path, mode: False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = dsb.DerivedCache.default_folder(tmp_path / "data")
    assert folder.parent == tmp_path / "home" / ".cache" / "lossbench" / "dsb2018" and len(folder.name) == 12


def test_download_gives_the_kaggle_instructions(tmp_path):
    with pytest.raises(DownloadError, match=r"Kaggle account.*stage1_train.zip.*<root>/stage1_train/<id>/images/<id>.png"):
        seg(tmp_path / "absent", tmp_path, download=True)


def test_detection_serves_the_same_cases_and_split_as_boxes(tmp_path):
    ids = some_ids()
    make_dsb(tmp_path / "data", ids)
    segmentation = dsb2018("segmentation", root=tmp_path / "data", cache_dir=tmp_path / "cache", num_workers=0)
    detection = dsb2018("detection", root=tmp_path / "data", cache_dir=tmp_path / "cache", num_workers=0,
                        image_size=64, detection={"train_crop": None, "augment": None})
    assert isinstance(detection, DSB2018DetDataModule) and detection.num_classes == 1
    assert detection.class_names == ["nucleus"] and detection.split_info == segmentation.split_info
    detection.setup()
    test_case = segmentation.data.splits["test"][0]
    image, target = detection.datasets["test"][0]
    assert image.shape == (3, *SIZE)
    assert target["boxes"].tolist() == test_case.boxes and target["labels"].tolist() == [1, 1]
    assert detection.box_statistics().boxes.shape == (2 * len(segmentation.data.splits["train"]), 4)
    with pytest.raises(ValueError, match="task='boxes' is invalid"):
        dsb2018("boxes", root=tmp_path / "data")


@pytest.mark.parametrize("task, extra", [
    ("segmentation", ("datamodule.patch_size=[32,32]", "datamodule.patches_per_epoch=8")),
    ("detection", ("task=detection", "datamodule.image_size=64", "datamodule.detection.train_crop=32")),
])
def test_tiny_run_records_the_split(tmp_path, run_config, task, extra):
    make_dsb(tmp_path / "data", some_ids())
    cfg = run_config("debug=fast", "logger=csv", "datamodule=dsb2018", f"datamodule.root={tmp_path / 'data'}",
                     f"datamodule.cache_dir={tmp_path / 'cache'}", "trainer.max_epochs=1", *extra)
    train(cfg)
    record = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert record["status"] == "completed" and record["task"] == task and record["datamodule"] == "dsb2018"
    assert record["split"]["name"] == "dsb2018@v1" and record["split"]["counts"] == {"train": 2, "val": 2, "test": 2}
    key = "test/dice_fg" if task == "segmentation" else "test/map"
    assert 0.0 <= record["metrics"][key] <= 1.0


@pytest.mark.slow
@real_data(DSB2018)
def test_development_copy_uses_the_committed_split(tmp_path):
    data = DSB2018SegDataModule(DSB2018, cache_dir=tmp_path / "cache", num_workers=0)
    assert data.split_info.counts == {"train": 141, "val": 30, "test": 29} and data.split_info.missing == 0
    assert sum(len(c.boxes) for split in data.data.splits.values() for c in split) == 8653  # one box per mask file
    share = data.class_pixel_counts()[1] / data.class_pixel_counts().sum()
    assert 0.10 < float(share) < 0.17


@pytest.mark.slow
@real_data(DSB2018)
def test_split_script_remakes_the_committed_file_stratified_by_size_and_modality(tmp_path):
    from scripts.splits.dsb2018 import make_dsb2018, strata

    (made,) = make_dsb2018(DSB2018, tmp_path)
    assert json.loads(made.read_text()) == SPEC.to_dict()
    groups = strata(DSB2018)
    for stratum in set(groups.values()):
        members = {case for case, value in groups.items() if value == stratum}
        if len(members) >= 3:  # every split holds every stratum of three or more images
            assert all(members & set(SPEC.splits[split]) for split in ("train", "val", "test")), stratum
