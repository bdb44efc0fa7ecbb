"""``datamodule=crackforest`` on files written in the published layout: MATLAB v5 ``.mat`` ground truth in
the ``groundTruth{1}.Segmentation`` nesting (1 = background, 2 = crack), the content-keyed mask cache, the
committed split, layout and bad-file errors, a tiny training run and the download path."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from datamodules.public import crackforest
from datamodules.public.crackforest import CrackForestDataModule, read_segmentation
from datamodules.public.download import DownloadError
from datamodules.public.layout import LayoutError
from datamodules.public.splits import SplitSpec
from datamodules.seg_samples import DataProblems
from tests.datamodules.public.serve import served_source, served_zip, serving

SPEC = SplitSpec.load("crackforest")
SIZE = (32, 48)  # H, W (the published images are 320x480)


def write_mat(path: Path, segmentation: np.ndarray) -> None:
    """A CFD ground truth exactly as published: a 1x1 cell holding a struct (Segmentation, Boundaries)."""
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = {"Segmentation": segmentation.astype(np.uint8), "Boundaries": segmentation == 2}
    scipy.io.savemat(str(path), {"groundTruth": cell})


def make_crackforest(root: Path, ids: list[str], seg_folder: bool = True) -> dict[str, np.ndarray]:
    (root / "image").mkdir(parents=True, exist_ok=True)
    (root / "groundTruth").mkdir(exist_ok=True)
    if seg_folder:
        (root / "seg").mkdir(exist_ok=True)
    truths = {}
    for number, stem in enumerate(ids):
        truth = np.zeros(SIZE, bool)
        truth[:, 5 + 3 * number: 7 + 3 * number] = True
        rgb = np.full((*SIZE, 3), 160, np.uint8)
        rgb[truth] = 50
        Image.fromarray(rgb).save(root / "image" / f"{stem}.jpg", quality=95)
        write_mat(root / "groundTruth" / f"{stem}.mat", np.where(truth, 2, 1))
        if seg_folder:
            (root / "seg" / f"{stem}.seg").write_text("ignored")
        truths[stem] = truth
    return truths


def some_ids(per_split: int = 2) -> list[str]:
    return [stem for split in ("train", "val", "test") for stem in SPEC.splits[split][:per_split]]


def test_mat_struct_nesting_reads_as_segmentation_values(tmp_path):
    write_mat(tmp_path / "001.mat", np.array([[1, 2], [2, 1]]))
    segmentation = read_segmentation(tmp_path / "001.mat")
    assert segmentation.dtype == np.uint8
    np.testing.assert_array_equal(segmentation, [[1, 2], [2, 1]])


def test_reads_cracks_through_the_content_keyed_cache(tmp_path):
    root, cache = tmp_path / "cfd", tmp_path / "cache"
    truths = make_crackforest(root, some_ids())
    data = CrackForestDataModule(root, cache_dir=cache, num_workers=0)
    assert (data.mode, data.class_names) == ("binary", ["background", "crack"])
    for split in ("train", "val", "test"):
        for files, mask in zip(data.samples[split], data.split_masks(split)):
            np.testing.assert_array_equal(mask, truths[files.stem].astype(np.uint8))
            digest = hashlib.sha256((root / "groundTruth" / f"{files.stem}.mat").read_bytes()).hexdigest()
            assert files.mask == cache / f"{digest[:32]}.png"
    assert len(list(cache.glob("*.png"))) == 6 and not list(cache.glob("*.tmp*"))
    # A changed .mat gets a new cache entry; the old one is not reused.
    stem = SPEC.splits["train"][0]
    write_mat(root / "groundTruth" / f"{stem}.mat", np.full(SIZE, 1))
    again = CrackForestDataModule(root, cache_dir=cache, num_workers=0)
    assert len(list(cache.glob("*.png"))) == 7
    first = next(files for files in again.samples["train"] if files.stem == stem)
    assert np.asarray(Image.open(first.mask)).max() == 1


def test_committed_split_is_intersected_with_a_warning(tmp_path, caplog):
    make_crackforest(tmp_path / "cfd", some_ids())
    with caplog.at_level(logging.WARNING):
        data = CrackForestDataModule(tmp_path / "cfd", cache_dir=tmp_path / "cache", num_workers=0)
    assert {split: [f.stem for f in data.samples[split]] for split in ("train", "val", "test")} == \
        {split: sorted(SPEC.splits[split][:2]) for split in ("train", "val", "test")}
    assert data.split_info.name == "crackforest@v1" and data.split_info.missing == 118 - 6
    assert "112 of 118 cases listed in split crackforest@v1 are not under the root" in caplog.text
    assert SPEC.splits["train"] and len(SPEC.splits["train"]) == 82 and len(SPEC.splits["test"]) == 18


def test_wrong_root_names_the_missing_folders(tmp_path):
    (tmp_path / "image").mkdir()
    with pytest.raises(LayoutError, match=r"crackforest: root=.*\n  expected root/image/<NNN>.jpg.*\n  missing \(1\): groundTruth"):
        CrackForestDataModule(tmp_path, cache_dir=tmp_path / "cache")


def test_bad_mat_files_are_all_named(tmp_path):
    root = tmp_path / "cfd"
    ids = some_ids()
    make_crackforest(root, ids)
    (root / "groundTruth" / f"{ids[0]}.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    scipy.io.savemat(str(root / "groundTruth" / f"{ids[1]}.mat"), {"gt": np.ones(SIZE)})
    write_mat(root / "groundTruth" / f"{ids[2]}.mat", np.ones((10, 10)))
    (root / "image" / f"{ids[3]}.jpg").unlink()
    with pytest.raises(DataProblems) as error:
        CrackForestDataModule(root, cache_dir=tmp_path / "cache", num_workers=0)
    problems = error.value.problems
    assert len(problems) == 4
    named = "\n".join(problems)
    assert f"{ids[0]}.mat: not a readable MATLAB v5 file" in named
    assert f"{ids[1]}.mat: no variable 'groundTruth' (found ['gt'])" in named
    assert f"{ids[2]}.mat: Segmentation is 10x10 (WxH), its image {ids[2]}.jpg is 48x32" in named
    assert f"{ids[3]}.mat: no image with stem '{ids[3]}'" in named


def test_unknown_segmentation_values_are_named_by_the_setup_pass(tmp_path):
    root = tmp_path / "cfd"
    ids = some_ids()
    make_crackforest(root, ids)
    write_mat(root / "groundTruth" / f"{ids[0]}.mat", np.full(SIZE, 3))
    data = CrackForestDataModule(root, cache_dir=tmp_path / "cache", num_workers=0)
    with pytest.raises(DataProblems, match=r"stored values \[3\] are not in mask_values \[1, 2\]"):
        data.setup("fit")


def test_tiny_training_run_records_the_split(tmp_path, tiny_run):
    root = tmp_path / "cfd"
    make_crackforest(root, some_ids())
    record = tiny_run("crackforest", root, f"datamodule.cache_dir={tmp_path / 'cache'}")
    assert record["status"] == "completed" and record["split"]["name"] == "crackforest@v1"
    assert record["split"]["counts"] == {"train": 2, "val": 2, "test": 2}


def _repository(tree: Path) -> None:
    """The GitHub archive's content: everything inside CrackForest-dataset-master/."""
    make_crackforest(tree / "CrackForest-dataset-master", some_ids())
    (tree / "CrackForest-dataset-master" / "README.md").write_text("CrackForest Dataset")


def test_download_fetches_the_archive_and_refuses_a_wrong_checksum(tmp_path, monkeypatch):
    archive, digest = served_zip(tmp_path, "master.zip", _repository)
    with serving(archive.parent) as url:
        source = served_source("crackforest", url, archive, subdir="CrackForest-dataset-master")
        monkeypatch.setattr(CrackForestDataModule, "download_source", source)
        with pytest.raises(DownloadError, match=f"is {digest}, expected {'f' * 64}"):
            CrackForestDataModule(tmp_path / "bad", download=True, archive_sha256="f" * 64, cache_dir=tmp_path / "cache")
        assert not (tmp_path / "bad").exists()
        data = CrackForestDataModule(tmp_path / "root", download=True, archive_sha256=digest,
                                     cache_dir=tmp_path / "cache", num_workers=0)
    assert (tmp_path / "root" / "groundTruth").is_dir() and data.split_info.counts == {"train": 2, "val": 2, "test": 2}


def test_the_split_script_remakes_the_committed_file(tmp_path):
    from scripts.splits.crackforest import make_crackforest as make_split

    remade = json.loads(make_split(tmp_path).read_text())
    assert remade == json.loads((Path(crackforest.__file__).parent / "splits" / "crackforest.json").read_text())
    assert sorted(stem for stems in remade["splits"].values() for stem in stems) == [f"{k:03d}" for k in range(1, 119)]
