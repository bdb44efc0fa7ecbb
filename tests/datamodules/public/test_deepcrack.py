"""``datamodule=deepcrack`` on files written in the published layout: 8-bit and 1-bit labels, jpg/png pairs
by stem, the official and dev splits, layout and bad-file errors, a tiny training run, the download path,
and (slow) the development copy."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.public import deepcrack
from datamodules.public.deepcrack import DeepCrackDataModule
from datamodules.public.download import DownloadError
from datamodules.public.layout import LayoutError
from datamodules.public.splits import SplitSpec
from datamodules.seg_samples import DataProblems
from tests.datamodules.public.serve import served_source, served_zip, serving
from tests.real_data import DEEPCRACK, real_data

OFFICIAL = SplitSpec.load("deepcrack")
DEV = SplitSpec.load("deepcrack_dev")
SIZE = (48, 64)  # H, W


def crack(stem: str, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A diagonal crack 2 px wide whose position depends on the stem (bool, H x W)."""
    height, width = size
    offset = int(hashlib.sha256(stem.encode()).hexdigest()[:4], 16) % (width // 2)
    rows, cols = np.mgrid[:height, :width]
    return np.abs(cols - rows - offset) <= 1


def write_case(folder: Path, prefix: str, stem: str, one_bit: bool = False, size: tuple[int, int] = SIZE) -> np.ndarray:
    (folder / f"{prefix}_img").mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}_lab").mkdir(parents=True, exist_ok=True)
    truth = crack(stem, size)
    rgb = np.full((*size, 3), 150, np.uint8)
    rgb[truth] = 40
    Image.fromarray(rgb).save(folder / f"{prefix}_img" / f"{stem}.jpg", quality=95)
    label = Image.fromarray(truth.astype(np.uint8) * 255)
    (label.convert("1") if one_bit else label).save(folder / f"{prefix}_lab" / f"{stem}.png")
    return truth


def make_deepcrack(root: Path, train_ids: list[str], test_ids: list[str] = (), one_bit: set[str] = frozenset()) -> dict:
    truths = {stem: write_case(root, "train", stem, stem in one_bit) for stem in train_ids}
    truths.update({stem: write_case(root, "test", stem, stem in one_bit) for stem in test_ids})
    return truths


def some_ids(spec: SplitSpec, per_split: int = 3) -> list[str]:
    return [stem for split in ("train", "val", "test") for stem in spec.splits[split][:per_split]]


def test_reads_8_bit_and_1_bit_labels_paired_by_stem_as_background_and_crack(tmp_path):
    train_ids = some_ids(OFFICIAL)
    truths = make_deepcrack(tmp_path, train_ids, ["t1", "t2"], one_bit={train_ids[0], "t1"})
    assert Image.open(tmp_path / "train_lab" / f"{train_ids[0]}.png").mode == "1"
    data = DeepCrackDataModule(tmp_path, num_workers=0)
    assert (data.mode, data.num_classes, data.class_names) == ("binary", 2, ["background", "crack"])
    for split in ("train", "val", "test"):
        for files, mask in zip(data.samples[split], data.split_masks(split)):
            assert files.image.suffix == ".jpg" and files.mask.suffix == ".png"
            np.testing.assert_array_equal(mask, truths[files.stem].astype(np.uint8))
    counts = data.class_pixel_counts()
    expected = sum(truths[files.stem].sum() for files in data.samples["train"])
    assert counts[1].item() == expected and counts.sum().item() == len(data.samples["train"]) * SIZE[0] * SIZE[1]


def test_official_split_uses_the_committed_val_carve_and_the_publisher_test_folder(tmp_path, caplog):
    train_ids = OFFICIAL.splits["train"][:4] + OFFICIAL.splits["val"][:2]
    make_deepcrack(tmp_path, train_ids, ["t1", "t2", "t3"])
    with caplog.at_level(logging.WARNING):
        data = DeepCrackDataModule(tmp_path, num_workers=0)
    stems = {split: [files.stem for files in data.samples[split]] for split in ("train", "val", "test")}
    assert stems == {"train": sorted(OFFICIAL.splits["train"][:4]), "val": sorted(OFFICIAL.splits["val"][:2]),
                     "test": ["t1", "t2", "t3"]}
    assert data.split_info.name == "deepcrack@v1" and data.split_info.missing == 300 - 6
    assert "294 of 300 cases listed in split deepcrack@v1 are not under the root" in caplog.text
    full = data.split_info.hash
    (tmp_path / "test_img" / "t3.jpg").unlink()
    (tmp_path / "test_lab" / "t3.png").unlink()
    assert DeepCrackDataModule(tmp_path, num_workers=0).split_info.hash != full


def test_dev_split_carves_all_three_from_the_training_folder(tmp_path):
    make_deepcrack(tmp_path, some_ids(DEV))
    data = DeepCrackDataModule(tmp_path, split="dev", num_workers=0)
    assert {split: [f.stem for f in data.samples[split]] for split in ("train", "val", "test")} == \
        {split: sorted(DEV.splits[split][:3]) for split in ("train", "val", "test")}
    assert data.split_info.name == "deepcrack_dev@v1" and data.split_info.counts == {"train": 3, "val": 3, "test": 3}


def test_the_zip_wrapper_folder_is_accepted(tmp_path):
    make_deepcrack(tmp_path / "DeepCrack", some_ids(DEV))
    assert DeepCrackDataModule(tmp_path, split="dev", num_workers=0).split_info.counts["train"] == 3


def test_official_split_without_test_folders_says_to_use_split_dev(tmp_path):
    make_deepcrack(tmp_path, some_ids(DEV))
    with pytest.raises(LayoutError, match=r"missing \(2\): test_img/, test_lab/") as error:
        DeepCrackDataModule(tmp_path, num_workers=0)
    assert "datamodule.split=dev" in str(error.value)


def test_wrong_root_names_the_dataset_layout_and_missing_folders(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(LayoutError) as error:
        DeepCrackDataModule(tmp_path, split="dev", num_workers=0)
    message = str(error.value)
    assert message.startswith("deepcrack: root=") and "train_img/, train_lab/" in message and "train_img" in message
    with pytest.raises(ValueError, match=r"split='both'; accepted: \['dev', 'official'\]"):
        DeepCrackDataModule(tmp_path, split="both")


def test_unpaired_files_are_all_named(tmp_path):
    ids = some_ids(DEV)
    make_deepcrack(tmp_path, ids)
    (tmp_path / "train_lab" / f"{ids[0]}.png").unlink()
    (tmp_path / "train_img" / f"{ids[1]}.jpg").unlink()
    with pytest.raises(DataProblems) as error:
        DeepCrackDataModule(tmp_path, split="dev", num_workers=0)
    assert len(error.value.problems) == 2
    assert f"{ids[0]}.jpg: no label with stem '{ids[0]}'" in str(error.value)
    assert f"{ids[1]}.png: no image with stem '{ids[1]}'" in str(error.value)


def test_bad_labels_are_all_named_before_training(tmp_path):
    ids = some_ids(DEV)
    make_deepcrack(tmp_path, ids)
    Image.fromarray(np.full(SIZE, 128, np.uint8)).save(tmp_path / "train_lab" / f"{ids[0]}.png")  # not 0/255
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "train_lab" / f"{ids[4]}.png")  # wrong size
    (tmp_path / "train_lab" / f"{ids[7]}.png").write_bytes(b"not a png")
    data = DeepCrackDataModule(tmp_path, split="dev", num_workers=0)
    with pytest.raises(DataProblems) as error:
        data.setup("fit")
    named = "\n".join(error.value.problems)
    assert len(error.value.problems) == 3
    assert f"{ids[0]}.png: stored values [128] are not in mask_values [0, 1, 255]" in named
    assert f"{ids[4]}.png: mask size 20x20" in named and f"{ids[7]}.png" in named


def test_tiny_training_run_records_the_dev_split(tmp_path, tiny_run):
    root = tmp_path / "data"
    make_deepcrack(root, some_ids(DEV, 2))
    record = tiny_run("deepcrack", root, "datamodule.split=dev", eval_patch=(48, 64))
    assert record["status"] == "completed" and record["datamodule"] == "deepcrack"
    assert record["split"]["name"] == "deepcrack_dev@v1" and record["split"]["counts"] == {"train": 2, "val": 2, "test": 2}
    assert 0.0 <= record["metrics"]["test/dice_fg"] <= 1.0


def _zipped_layout(tmp_path: Path) -> tuple[Path, str]:
    """The published zip: the four folders inside a DeepCrack/ folder; returns (zip, its sha256)."""
    return served_zip(tmp_path, "DeepCrack.zip",
                      lambda tree: make_deepcrack(tree / "DeepCrack", some_ids(OFFICIAL), ["t1", "t2"]))


def test_download_fetches_verifies_and_reads_the_zip(tmp_path, monkeypatch):
    archive, digest = _zipped_layout(tmp_path)
    with serving(archive.parent) as url:
        monkeypatch.setattr(DeepCrackDataModule, "download_source", served_source("deepcrack", url, archive))
        data = DeepCrackDataModule(tmp_path / "root", download=True, archive_sha256=digest, num_workers=0)
    assert (tmp_path / "root" / "DeepCrack" / "train_img").is_dir()
    assert data.split_info.counts == {"train": 3, "val": 3, "test": 2}


def test_download_with_a_wrong_checksum_is_refused_and_leaves_no_root(tmp_path, monkeypatch):
    archive, digest = _zipped_layout(tmp_path)
    wrong = "0" * 64
    with serving(archive.parent) as url:
        monkeypatch.setattr(DeepCrackDataModule, "download_source", served_source("deepcrack", url, archive))
        with pytest.raises(DownloadError, match=f"sha256 of DeepCrack.zip is {digest}, expected {wrong}"):
            DeepCrackDataModule(tmp_path / "root", download=True, archive_sha256=wrong, num_workers=0)
    assert not (tmp_path / "root").exists()


@pytest.mark.slow
@real_data(DEEPCRACK)
def test_development_copy_reads_with_the_dev_split():
    data = DeepCrackDataModule(DEEPCRACK, split="dev", num_workers=0)
    assert data.split_info.counts == {"train": 210, "val": 45, "test": 45} and data.split_info.missing == 0
    counts = data.class_pixel_counts()
    share = (counts[1] / counts.sum()).item()
    assert 0.02 < share < 0.04  # 2.9 % crack pixels over the 300 training labels
    assert all(set(np.unique(mask).tolist()) <= {0, 1} for mask in data.split_masks("val"))


@pytest.mark.slow
@real_data(DEEPCRACK)
def test_split_script_remakes_the_committed_files_stratified_by_crack_share(tmp_path):
    from scripts.splits.deepcrack import crack_share_tertiles, make_deepcrack as make_splits

    for path in make_splits(DEEPCRACK, tmp_path):
        committed = Path(deepcrack.__file__).parent / "splits" / path.name
        assert json.loads(path.read_text()) == json.loads(committed.read_text())
    strata = crack_share_tertiles(DEEPCRACK)
    for split, size in (("train", 210), ("val", 45), ("test", 45)):
        per_tertile = np.bincount([strata[stem] for stem in DEV.splits[split]], minlength=3)
        assert per_tertile.sum() == size and per_tertile.max() - per_tertile.min() <= 1  # 100 per tertile, cut evenly
