"""datamodule=drive: a DRIVE folder written at test time as distributed (training/ and test/ with images/*.tif,
1st_manual/*.gif, mask/*.gif, plus 2nd_manual/ and Thumbs.db quirks): vessels are class 1, outside the field
of view is ignored, the committed split (publisher train/test + val carve), errors, the manual-download
message and a tiny train.py run."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from datamodules.public.download import DownloadError
from datamodules.public.drive import DRIVEDataModule
from datamodules.public.layout import LayoutError
from datamodules.public.splits import SplitSpec
from datamodules.seg_samples import DataProblems

H, W = 36, 40
SPLIT = SplitSpec.load("drive")
TRAIN_IDS = ["21", "23"] + SPLIT.splits["val"][:1]  # two training images and one of the carved val images
TEST_IDS = ["01", "02"]


def fov() -> np.ndarray:
    rows, cols = np.mgrid[:H, :W]
    return ((rows - H / 2) ** 2 + (cols - W / 2) ** 2 <= 16 ** 2).astype(np.uint8) * 255


def write_drive(root: Path, train_ids=TRAIN_IDS, test_ids=TEST_IDS) -> Path:
    rng = np.random.default_rng(0)
    for folder, ids in (("training", train_ids), ("test", test_ids)):
        for case in ids:
            vessels = np.zeros((H, W), np.uint8)
            vessels[:, 18:21] = 255  # a 3-px vertical vessel
            vessels[fov() == 0] = 0
            image = rng.integers(90, 160, (H, W, 3)).astype(np.uint8)
            image[vessels > 0] = (40, 20, 10)
            image[fov() == 0] = 0
            (root / folder / "images").mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(root / folder / "images" / f"{case}_{folder}.tif", image, photometric="rgb",
                             compression="lzw")
            for sub, name, array in (("1st_manual", f"{case}_manual1.gif", vessels),
                                     ("2nd_manual", f"{case}_manual2.gif", vessels),
                                     ("mask", f"{case}_{folder}_mask.gif", fov())):
                (root / folder / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(root / folder / sub / name)
        (root / folder / "images" / "Thumbs.db").write_bytes(b"windows thumbnail cache")
    return root


def test_vessels_are_class_1_outside_the_fov_is_ignored_and_the_split_is_the_publishers(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        dm = DRIVEDataModule(write_drive(tmp_path / "DRIVE"), patch_size=[16, 16], num_workers=0)
    stems = {split: [s.stem for s in dm.samples[split]] for split in ("train", "val", "test")}
    assert stems == {"train": ["21", "23"], "val": SPLIT.splits["val"][:1], "test": ["01", "02"]}
    assert dm.samples["train"][0].roi.name == "21_training_mask.gif" and dm.in_channels == 3
    mask = next(dm.split_masks("test"))
    inside = fov() > 0
    assert (mask[~inside] == 255).all() and set(np.unique(mask[inside]).tolist()) == {0, 1}
    vessel = int(inside[:, 18:21].sum())
    assert dm.class_pixel_counts().tolist() == [2 * (int(inside.sum()) - vessel), 2 * vessel]  # 2 training images
    listed = sum(len(v) for v in SPLIT.splits.values())
    assert dm.split_info.missing == listed - 5 and f"{listed - 5} of {listed} cases listed in split drive@v1" in caplog.text
    fewer = DRIVEDataModule(write_drive(tmp_path / "fewer", test_ids=["01"]), patch_size=[16, 16])
    assert fewer.split_info.hash != dm.split_info.hash and fewer.split_info.counts["test"] == 1


def test_wrong_root_names_the_missing_folders(tmp_path):
    root = write_drive(tmp_path / "DRIVE")
    for sub in ("1st_manual", "2nd_manual"):
        for path in (root / "test" / sub).iterdir():
            path.unlink()
        (root / "test" / sub).rmdir()
    with pytest.raises(LayoutError, match=r"(?s)drive: .*missing \(1\): test/1st_manual.*full release"):
        DRIVEDataModule(root)


def test_bad_files_are_all_named(tmp_path):
    root = write_drive(tmp_path / "DRIVE")
    (root / "training" / "mask" / "23_training_mask.gif").unlink()
    (root / "test" / "1st_manual" / "02_manual1.gif").rename(root / "test" / "1st_manual" / "02_manual.gif")
    with pytest.raises(DataProblems) as caught:
        DRIVEDataModule(root)
    problems = caught.value.problems
    assert len(problems) == 3
    assert any("23_training.tif: case 23 has no mask file" in p for p in problems)
    assert any("02_manual.gif: not a DRIVE 1st_manual file name (expected like 01_manual1.gif)" in p for p in problems)
    assert any("02_test.tif: case 02 has no 1st_manual file" in p for p in problems)


def test_a_manual_of_the_wrong_size_is_named_at_setup(tmp_path):
    root = write_drive(tmp_path / "DRIVE")
    Image.fromarray(np.zeros((H, W + 2), np.uint8)).save(root / "test" / "1st_manual" / "01_manual1.gif")
    Image.fromarray(np.full((H, W), 7, np.uint8)).save(root / "training" / "1st_manual" / "21_manual1.gif")
    dm = DRIVEDataModule(root, patch_size=[16, 16], num_workers=0)
    with pytest.raises(DataProblems) as caught:
        dm.setup("fit")
    assert len(caught.value.problems) == 2 and "01_manual1.gif" in str(caught.value) and "21_manual1.gif" in str(caught.value)


def test_download_needs_a_registration_and_says_where(tmp_path):
    assert DRIVEDataModule(write_drive(tmp_path / "DRIVE"), download=True).split_info.counts["test"] == 2
    with pytest.raises(DownloadError, match=r"(?s)drive: cannot be downloaded automatically.*drive.grand-challenge.org"):
        DRIVEDataModule(tmp_path / "absent", download=True)


def test_tiny_train_run(tiny_run, tmp_path):
    record = tiny_run("drive", write_drive(tmp_path / "DRIVE"), eval_patch=(48, 48))
    assert record["status"] == "completed" and record["split"]["counts"] == {"train": 2, "val": 1, "test": 2}
    assert 0.0 <= record["metrics"]["test/dice_fg"] <= 1.0


def test_the_committed_split_file_is_remade_identically(tmp_path):
    from scripts.splits.drive import make_drive

    committed = Path(__file__).resolve().parents[3] / "datamodules" / "public" / "splits" / "drive.json"
    assert make_drive(out_dir=tmp_path).read_text() == committed.read_text()
    assert len(SPLIT.splits["train"]) == 16 and len(SPLIT.splits["val"]) == 4 and SPLIT.splits["test"][0] == "01"
