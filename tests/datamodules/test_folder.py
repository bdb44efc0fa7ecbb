"""``datamodule=folder``: formats, value mapping, roi, splits, normalisation, batches, bad data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.folder import FolderSegDataModule
from tests.datamodules.folder_fixtures import blob_mask, make_folder, write_array

SIZES = [(40, 56), (48, 40), (36, 60), (52, 44), (30, 30), (44, 50)]


def build(root: Path, **kwargs) -> FolderSegDataModule:
    options = dict(patch_size=(32, 32), patches_per_epoch=16, batch_size=4, num_workers=0, augment=None)
    options.update(kwargs)
    return FolderSegDataModule(root, **options)


def brute_counts(masks, num_classes: int) -> np.ndarray:
    return sum(np.bincount(m.ravel(), minlength=256)[:num_classes] for m in masks).astype(np.float64)


@pytest.mark.parametrize("image_suffix, mask_suffix, channels", [
    (".png", ".png", 3), (".jpg", ".png", 3), (".tif", ".tif", 1), (".bmp", ".bmp", 1), (".png", ".gif", 1),
])
def test_formats_load_and_count_exactly(tmp_path, image_suffix, mask_suffix, channels):
    written = make_folder(tmp_path, SIZES, image_suffix, mask_suffix, channels=channels, num_classes=3)
    dm = build(tmp_path, num_classes=3, in_channels=None)
    assert dm.in_channels == channels
    train = [written[s.stem][1] for s in dm.samples["train"]]
    np.testing.assert_array_equal(dm.class_pixel_counts().numpy(), brute_counts(train, 3))
    assert dm.class_pixel_counts().dtype == torch.float64
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, channels, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (4, 32, 32) and batch["mask"].dtype == torch.int64


def test_16_bit_images_and_gray_replicated_to_rgb(tmp_path):
    rng = np.random.default_rng(1)
    for k, (h, w) in enumerate(SIZES[:4]):
        write_array(tmp_path / "images" / f"a{k}.png", rng.integers(0, 4096, (h, w), dtype=np.uint16))
        write_array(tmp_path / "masks" / f"a{k}.png", blob_mask(h, w, rng))
    write_array(tmp_path / "images" / "rgb.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    write_array(tmp_path / "masks" / "rgb.png", blob_mask(40, 40, rng))
    dm = build(tmp_path, in_channels=None)
    assert dm.in_channels == 3  # one colour image makes the data RGB
    item = next(iter(dm.val_dataloader()))
    assert item["image"].shape[1] == 3
    with pytest.raises(ValueError, match=r"rgb\.png: colour image but in_channels=1"):
        build(tmp_path, in_channels=1).setup("fit")


def test_auto_normalisation_matches_numpy(tmp_path):
    written = make_folder(tmp_path, SIZES, channels=3)
    dm = build(tmp_path)
    pixels = np.concatenate([written[s.stem][0].reshape(-1, 3) for s in dm.samples["train"]]) / 255.0
    np.testing.assert_allclose(dm.normalization["mean"], pixels.mean(0), rtol=1e-5)
    np.testing.assert_allclose(dm.normalization["std"], pixels.std(0), rtol=1e-5)
    stem = dm.samples["val"][0].stem
    image = next(iter(dm.val_dataloader()))["image"][0]
    expected = (written[stem][0] / 255.0 - pixels.mean(0)) / pixels.std(0)
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), expected, atol=1e-5)
    given = build(tmp_path, normalize={"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})
    assert given.normalization == {"mean": [0.5] * 3, "std": [0.25] * 3}
    with pytest.raises(ValueError, match="normalize needs mean and std with 3 values"):
        build(tmp_path, normalize={"mean": [0.5], "std": [0.25]}).setup("fit")


def test_binary_0_255_masks_map_to_0_1(tmp_path):
    make_folder(tmp_path, SIZES)
    for path in (tmp_path / "masks").iterdir():
        mask = np.array(Image.open(path))
        Image.fromarray((mask > 0).astype(np.uint8) * 255).save(path)
    dm = build(tmp_path)
    values = set(np.unique(np.concatenate([m.ravel() for m in dm.split_masks("train")])).tolist())
    assert values == {0, 1}


def test_mask_values_mapping_and_unmapped_values(tmp_path):
    make_folder(tmp_path, SIZES)
    for path in (tmp_path / "masks").iterdir():  # structure of interest is black: 0 → class 1
        mask = np.array(Image.open(path))
        Image.fromarray(np.where(mask > 0, 0, 255).astype(np.uint8)).save(path)
    dm = build(tmp_path, mask_values={0: 1, 255: 0})
    inverted = build(tmp_path)  # without the mapping 0/255 reads as background/foreground
    assert dm.class_pixel_counts().tolist() == inverted.class_pixel_counts().flip(0).tolist()
    write_array(tmp_path / "masks" / "img03.png", np.full(SIZES[3], 7, np.uint8))
    with pytest.raises(ValueError, match=r"img03\.png: stored values \[7\] are not in mask_values \[0, 255\]"):
        build(tmp_path, mask_values={0: 1, 255: 0}).setup("fit")
    with pytest.raises(ValueError, match=r"img03\.png: values \[7\] are not class ids in \[0, 2\)"):
        build(tmp_path).setup("fit")


def test_roi_zero_becomes_ignore(tmp_path):
    written = make_folder(tmp_path, SIZES)
    for stem, (image, _) in written.items():
        roi = np.zeros(image.shape[:2], np.uint8)
        roi[:, : image.shape[1] // 2] = 1
        write_array(tmp_path / "roi" / f"{stem}.png", roi)
    dm = build(tmp_path)
    for files, mask in zip(dm.samples["train"], dm.split_masks("train")):
        half = mask.shape[1] // 2
        assert (mask[:, half:] == 255).all()
        np.testing.assert_array_equal(mask[:, :half], written[files.stem][1][:, :half])
    expected = brute_counts([written[s.stem][1][:, : written[s.stem][1].shape[1] // 2] for s in dm.samples["train"]], 2)
    np.testing.assert_array_equal(dm.class_pixel_counts().numpy(), expected)


def test_split_files(tmp_path):
    make_folder(tmp_path, SIZES)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("img00\nimg01\n# a comment\n\nimg02\n")
    (tmp_path / "splits" / "val.txt").write_text("img03\n")
    dm = build(tmp_path)
    assert [s.stem for s in dm.samples["train"]] == ["img00", "img01", "img02"]
    assert [s.stem for s in dm.samples["test"]] == ["img03"]  # no test.txt: test reuses val
    (tmp_path / "splits" / "test.txt").write_text("img04\nimg99\n")
    with pytest.raises(ValueError, match=r"test\.txt names stems without an image in images/: img99"):
        build(tmp_path)
    (tmp_path / "splits" / "test.txt").write_text("img03\n")
    with pytest.raises(ValueError, match=r"both splits/val\.txt and splits/test\.txt.*img03"):
        build(tmp_path)
    (tmp_path / "splits" / "val.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"val\.txt lists no stems \(empty split\)"):
        build(tmp_path)


def test_seeded_split_is_disjoint_complete_and_deterministic(tmp_path):
    make_folder(tmp_path, SIZES * 2)
    first, again = build(tmp_path, split_seed=3), build(tmp_path, split_seed=3)
    stems = {split: [s.stem for s in first.samples[split]] for split in ("train", "val", "test")}
    assert stems == {split: [s.stem for s in again.samples[split]] for split in ("train", "val", "test")}
    assert [len(stems[s]) for s in ("train", "val", "test")] == [8, 2, 2]
    assert sorted(sum(stems.values(), [])) == sorted(f"img{k:02d}" for k in range(12))
    other = build(tmp_path, split_seed=4)
    assert [s.stem for s in other.samples["train"]] != stems["train"]
    with pytest.raises(ValueError, match="split_fractions must be three shares"):
        build(tmp_path, split_fractions=[0.5, 0.6, 0.1])


def test_small_images_are_padded_with_ignore(tmp_path):
    make_folder(tmp_path, [(12, 20)] * 4)
    dm = build(tmp_path, patches_per_epoch=8, batch_size=8, foreground_share=0.0)
    batch = next(iter(dm.train_dataloader()))
    ignored = (batch["mask"] == 255).sum(dim=(1, 2))
    assert (ignored == 32 * 32 - 12 * 20).all()  # every patch holds the whole image plus ignored padding
    # padding is the channel mean, which normalises to 0 (up to the uint8 rounding of the mean)
    padding = batch["image"].permute(1, 0, 2, 3)[:, batch["mask"] == 255]
    assert padding.abs().max() < 0.5 / 255 / min(dm.normalization["std"])


def test_eval_batches_are_whole_images_and_padded_collate(tmp_path):
    make_folder(tmp_path, SIZES)
    dm = build(tmp_path, eval_batch_size=2, split_fractions=[0.34, 0.33, 0.33])
    batch = next(iter(dm.val_dataloader()))
    sizes = [np.array(Image.open(files.mask)).shape for files in dm.samples["val"][:2]]
    assert batch["image"].shape[-2:] == (max(h for h, _ in sizes), max(w for _, w in sizes))
    for k, (h, w) in enumerate(sizes):
        assert (batch["mask"][k, h:, :] == 255).all() and (batch["mask"][k, :, w:] == 255).all()
        assert (batch["mask"][k, :h, :w] != 255).all()


@pytest.mark.parametrize("damage, message", [
    ("orphan_image", r"image\(s\) without a mask in .*masks: img00"),
    ("orphan_mask", r"mask\(s\) without an image in .*images: extra"),
    ("corrupt", r"cannot read .*img02\.png.*unreadable or corrupt"),
    ("mask_size", r"img01\.png: mask size 10x9 \(WxH\) differs from image img01\.png size"),
    ("roi_size", r"img00\.png: roi size 5x5 \(WxH\) differs"),
    ("roi_missing", r"image\(s\) without a roi in .*roi: img01"),
    ("too_few", r"cannot fill train, val and test"),
    ("no_images", r"no images in"),
    ("no_masks_dir", r"missing folder\(s\) \['masks'\]"),
])
def test_bad_data_gives_one_clear_error(tmp_path, damage, message):
    make_folder(tmp_path, SIZES[:4])
    images, masks = tmp_path / "images", tmp_path / "masks"
    if damage == "orphan_image":
        (masks / "img00.png").unlink()
    elif damage == "orphan_mask":
        write_array(masks / "extra.png", np.zeros((5, 5), np.uint8))
    elif damage == "corrupt":
        (images / "img02.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    elif damage == "mask_size":
        write_array(masks / "img01.png", np.zeros((9, 10), np.uint8))
    elif damage in ("roi_size", "roi_missing"):
        for k in range(4):
            write_array(tmp_path / "roi" / f"img{k:02d}.png", np.ones(SIZES[k], np.uint8))
        if damage == "roi_size":
            write_array(tmp_path / "roi" / "img00.png", np.ones((5, 5), np.uint8))
        else:
            (tmp_path / "roi" / "img01.png").unlink()
    elif damage == "too_few":
        for k in (1, 2, 3):
            (images / f"img{k:02d}.png").unlink()
            (masks / f"img{k:02d}.png").unlink()
    elif damage == "no_images":
        for path in [*images.iterdir(), *masks.iterdir()]:
            path.unlink()
    elif damage == "no_masks_dir":
        for path in masks.iterdir():
            path.unlink()
        masks.rmdir()
    with pytest.raises(ValueError, match=message):
        build(tmp_path).setup("fit")


def test_all_problems_are_listed_in_one_error(tmp_path):
    make_folder(tmp_path, SIZES)
    write_array(tmp_path / "masks" / "img01.png", np.zeros((9, 10), np.uint8))
    (tmp_path / "images" / "img04.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="2 problem") as info:
        build(tmp_path).setup("fit")
    assert "img01.png" in str(info.value) and "img04.png" in str(info.value)


def test_constructor_rejects_bad_arguments(tmp_path):
    make_folder(tmp_path, SIZES)
    with pytest.raises(ValueError, match="ignore_index=None is invalid; expected an int in \\[num_classes, 65535\\]"):
        build(tmp_path, ignore_index=None)
    with pytest.raises(ValueError, match="num_classes=3 is invalid; expected 2 when mode='binary'"):
        build(tmp_path, mode="binary", num_classes=3)
    with pytest.raises(ValueError, match="foreground_share=1.5 is invalid; expected a share in \\[0, 1\\]"):
        build(tmp_path, foreground_share=1.5)
    with pytest.raises(ValueError, match="FolderSegDataModule: batch_size=0 is invalid; expected an int >= 1"):
        build(tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="mask_values maps stored values"):
        build(tmp_path, mask_values={0: 5})
    with pytest.raises(ValueError, match="augment: unknown keys \\['flip'\\]"):
        build(tmp_path, augment={"flip": 0.5})


def test_no_cache_decodes_on_demand_with_identical_batches(tmp_path):
    make_folder(tmp_path, SIZES)
    cached, lazy = build(tmp_path, seed=5), build(tmp_path, seed=5, cache=False)
    assert lazy.class_pixel_counts().tolist() == cached.class_pixel_counts().tolist()
    a, b = next(iter(cached.train_dataloader())), next(iter(lazy.train_dataloader()))
    assert torch.equal(a["mask"], b["mask"]) and torch.allclose(a["image"], b["image"])
    assert lazy._stores["train"].cached is None and cached._stores["train"].cached is not None
    with pytest.warns(FutureWarning, match="'cache_images' is deprecated"):
        old_name = build(tmp_path, seed=5, cache_images=False)
    assert old_name.cache is False
