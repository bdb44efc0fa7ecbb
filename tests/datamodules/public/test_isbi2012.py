"""datamodule=isbi2012: 30-page TIFF stacks written at test time as the challenge distributes them (membrane
stored 0, cell interior 255, an unlabelled test stack beside them): pages become slice_NN cases in a
content-keyed cache, membrane is class 1, the committed block split, errors, the manual-download message
and a tiny train.py run."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile

from datamodules.public.download import DownloadError
from datamodules.public.isbi2012 import ISBI2012DataModule
from datamodules.public.layout import LayoutError
from datamodules.seg_samples import DataProblems

SIDE = 32


def write_stacks(root: Path, pages: int = 30, label_pages: int | None = None, side: int = SIDE) -> Path:
    """train-volume.tif / train-labels.tif / test-volume.tif; labels: a membrane grid (0) of 4-px lines every
    16 px over cell interior (255), so 14 of every 16 rows and columns are interior."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    labels = np.full((label_pages or pages, side, side), 255, np.uint8)
    for start in range(0, side, 16):
        labels[:, start:start + 2, :] = 0
        labels[:, :, start:start + 2] = 0
    images = rng.integers(120, 220, (pages, side, side)).astype(np.uint8)
    images[:, labels[0] == 0] = 30
    tifffile.imwrite(root / "train-volume.tif", images)
    tifffile.imwrite(root / "train-labels.tif", labels)
    tifffile.imwrite(root / "test-volume.tif", images)  # unlabelled: must be ignored
    return root


def test_pages_become_cases_membrane_is_class_1_and_the_blocks_are_applied(tmp_path):
    dm = ISBI2012DataModule(write_stacks(tmp_path / "isbi"), cache_dir=tmp_path / "cache", patch_size=[16, 16],
                            num_workers=0)
    stems = {split: [s.stem for s in dm.samples[split]] for split in ("train", "val", "test")}
    assert stems == {"train": [f"slice_{k:02d}" for k in range(20)], "val": [f"slice_{k:02d}" for k in range(20, 25)],
                     "test": [f"slice_{k:02d}" for k in range(25, 30)]}
    assert dm.split_info.name == "isbi2012@v1" and dm.in_channels == 1
    membrane = SIDE * SIDE - (SIDE - 4) ** 2  # two 2-px lines per axis
    assert dm.class_pixel_counts().tolist() == [20 * (SIDE - 4) ** 2, 20 * membrane]
    mask = next(dm.split_masks("val"))
    assert mask[0, 5] == 1 and mask[5, 5] == 0  # stored 0 (membrane) -> 1, stored 255 (interior) -> 0


def test_the_page_cache_is_keyed_by_content(tmp_path):
    root = write_stacks(tmp_path / "isbi")
    first = ISBI2012DataModule(root, cache_dir=tmp_path / "cache", patch_size=[16, 16], num_workers=0)
    again = ISBI2012DataModule(root, cache_dir=tmp_path / "cache", patch_size=[16, 16], num_workers=0)
    assert first.samples["train"][0].image == again.samples["train"][0].image
    labels = tifffile.imread(root / "train-labels.tif")
    labels[:, 8, 8] = 0
    tifffile.imwrite(root / "train-labels.tif", labels)
    edited = ISBI2012DataModule(root, cache_dir=tmp_path / "cache", patch_size=[16, 16], num_workers=0)
    assert edited.samples["train"][0].image.parent != first.samples["train"][0].image.parent
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 2


def test_a_shorter_stack_is_intersected_with_a_warning_and_changes_the_hash(tmp_path, caplog):
    full = ISBI2012DataModule(write_stacks(tmp_path / "full"), cache_dir=tmp_path / "cache", patch_size=[16, 16])
    with caplog.at_level(logging.WARNING):
        short = ISBI2012DataModule(write_stacks(tmp_path / "short", pages=28), cache_dir=tmp_path / "cache",
                                   patch_size=[16, 16])
    assert short.split_info.counts == {"train": 20, "val": 5, "test": 3} and short.split_info.missing == 2
    assert "2 of 30 cases listed in split isbi2012@v1 are not under the root" in caplog.text
    assert short.split_info.hash != full.split_info.hash


def test_wrong_root_names_the_missing_stack(tmp_path):
    root = write_stacks(tmp_path / "isbi")
    (root / "train-labels.tif").unlink()
    with pytest.raises(LayoutError, match=r"(?s)isbi2012: .*missing \(1\): train-labels.tif"):
        ISBI2012DataModule(root, cache_dir=tmp_path / "cache")


def test_bad_stacks_are_all_named(tmp_path):
    root = write_stacks(tmp_path / "bad", label_pages=29)
    labels = tifffile.imread(root / "train-labels.tif")
    labels[3, 0, 0] = 128
    tifffile.imwrite(root / "train-labels.tif", labels)
    with pytest.raises(DataProblems, match=r"train-labels.tif: 29 page\(s\), train-volume.tif has 30"):
        ISBI2012DataModule(root, cache_dir=tmp_path / "cache")
    tifffile.imwrite(root / "train-labels.tif", np.concatenate([labels, labels[:1]]))  # 30 pages again
    with pytest.raises(DataProblems, match=r"train-labels.tif page 3: values \[128\]"):
        ISBI2012DataModule(root, cache_dir=tmp_path / "cache")
    (root / "train-volume.tif").write_bytes(b"not a tiff")
    (root / "train-labels.tif").write_bytes(b"II*\x00 truncated")
    with pytest.raises(DataProblems) as caught:
        ISBI2012DataModule(root, cache_dir=tmp_path / "cache")
    assert len(caught.value.problems) == 2 and all("not a readable TIFF stack" in p for p in caught.value.problems)
    assert not any((tmp_path / "cache").glob("*/complete"))  # nothing half-extracted is kept


def test_download_needs_a_registration_and_says_where(tmp_path):
    root = write_stacks(tmp_path / "isbi")
    assert ISBI2012DataModule(root, download=True, cache_dir=tmp_path / "cache").split_info.counts["train"] == 20
    with pytest.raises(DownloadError, match=r"(?s)isbi2012: cannot be downloaded automatically.*registration.*"
                                            r"root/train-volume.tif"):
        ISBI2012DataModule(tmp_path / "absent", download=True)


def test_tiny_train_run(tiny_run, tmp_path):
    record = tiny_run("isbi2012", write_stacks(tmp_path / "isbi"), f"datamodule.cache_dir={tmp_path / 'cache'}",
                      eval_patch=(32, 32))
    assert record["status"] == "completed" and record["split"]["counts"] == {"train": 20, "val": 5, "test": 5}
    assert 0.0 <= record["metrics"]["test/dice_fg"] <= 1.0


def test_the_committed_split_file_is_remade_identically(tmp_path):
    from scripts.splits.isbi2012 import make_isbi2012

    committed = Path(__file__).resolve().parents[3] / "datamodules" / "public" / "splits" / "isbi2012.json"
    assert make_isbi2012(out_dir=tmp_path).read_text() == committed.read_text()
