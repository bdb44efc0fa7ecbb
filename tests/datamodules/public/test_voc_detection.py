"""``datamodule=voc_detection`` / ``bccd`` on files written in the Pascal VOC layout: 1-based boxes, difficult
objects, classes from the config or the XML, boxes outside the image, bad files, the publisher's split, a
tiny training run, the download path, and (slow) the BCCD development copy."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.public import voc_detection as voc
from datamodules.public.download import DownloadError, Source
from datamodules.public.layout import LayoutError
from datamodules.public.voc_detection import VOCDetectionDataModule, clip_box
from datamodules.seg_samples import DataProblems
from tests.datamodules.public.serve import served_source, served_zip, serving
from tests.real_data import BCCD, real_data
from train import train

W, H = 64, 48


def xml(filename: str, objects: list[tuple[str, tuple[int, int, int, int], int]], size=(W, H)) -> str:
    body = "".join(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
                   f"<difficult>{difficult}</difficult><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
                   f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>" for name, box, difficult in objects)
    return (f"<annotation><folder>JPEGImages</folder><filename>{filename}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size><segmented>0</segmented>{body}</annotation>")


def write_voc(root: Path, splits: dict[str, list[str]], objects: dict[str, list] | None = None) -> Path:
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{i}\n" for i in splits["train"] + splits["val"]))
    for k, image_id in enumerate(i for ids in splits.values() for i in ids):
        rgb = np.full((H, W, 3), 200, np.uint8)
        rgb[10:30, 10:40] = (150, 40, 160)
        Image.fromarray(rgb).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        found = (objects or {}).get(image_id, [("RBC", (11, 11, 40, 30), 0), ("Platelets", (45, 5, 52, 12), 0)])
        (root / "Annotations" / f"{image_id}.xml").write_text(xml(f"{image_id}.jpg", found))
    return root


SPLITS = {"train": ["img_0", "img_1"], "val": ["img_2"], "test": ["img_3"]}


def data(root: Path, tmp_path: Path, **kwargs) -> VOCDetectionDataModule:
    return VOCDetectionDataModule(root, cache_dir=tmp_path / "cache", image_size=64, **kwargs)


def test_reads_publisher_split_with_1_based_boxes_and_sorted_xml_classes(tmp_path):
    module = data(write_voc(tmp_path / "voc", SPLITS), tmp_path)
    assert module.class_names == ["Platelets", "RBC"] and module.num_classes == 2
    assert module.split_info.counts == {"train": 2, "val": 1, "test": 1}
    assert module.split_info.name == "voc@ImageSets/Main"
    module.setup()
    image, target = module.datasets["val"][0]
    assert image.shape == (3, H, W)
    assert target["boxes"].tolist() == [[10.0, 10.0, 40.0, 30.0], [44.0, 4.0, 52.0, 12.0]]
    assert target["labels"].tolist() == [2, 1] and target["iscrowd"].tolist() == [0, 0]


def test_config_class_order_is_kept_and_an_unknown_class_is_named_by_file(tmp_path):
    root = write_voc(tmp_path / "voc", SPLITS, {"img_1": [("WBC", (5, 5, 20, 20), 0)]})
    with pytest.raises(DataProblems) as error:
        data(root, tmp_path, class_names=["RBC", "Platelets"])
    assert len(error.value.problems) == 1 and "img_1.xml: class(es) ['WBC'] not in class_names" in error.value.problems[0]
    module = data(root, tmp_path, class_names=["RBC", "WBC", "Platelets"])
    module.setup()
    assert module.label_of == {1: 1, 2: 2, 3: 3} and module.class_names == ["RBC", "WBC", "Platelets"]
    assert module.datasets["val"][0][1]["labels"].tolist() == [1, 3]
    with pytest.raises(ValueError, match=r"num_classes=2 but the classes are \['RBC', 'WBC', 'Platelets'\]"):
        data(root, tmp_path, class_names=["RBC", "WBC", "Platelets"], num_classes=2)


def test_difficult_is_crowd_in_evaluation_and_left_out_of_training(tmp_path):
    boxes = [("RBC", (11, 11, 40, 30), 0), ("RBC", (41, 31, 60, 45), 1)]
    root = write_voc(tmp_path / "voc", SPLITS, {i: boxes for i in ("img_0", "img_2")})
    module = data(root, tmp_path, augment=None, train_crop=None)
    module.setup()
    train_target = module.datasets["train"][0][1]
    val_target = module.datasets["val"][0][1]
    assert train_target["boxes"].tolist() == [[10.0, 10.0, 40.0, 30.0]]
    assert val_target["iscrowd"].tolist() == [0, 1] and val_target["boxes"][1].tolist() == [40.0, 30.0, 60.0, 45.0]


def test_boxes_outside_the_image_are_clipped_or_dropped_and_reported_per_file(tmp_path):
    root = write_voc(tmp_path / "voc", SPLITS, {"img_2": [("RBC", (50, 40, 80, 60), 0), ("RBC", (70, 10, 90, 20), 0),
                                                          ("RBC", (10, 10, 9, 20), 0), ("RBC", (5, 5, 9, 9), 0)]})
    with pytest.warns(UserWarning, match=r"1 file\(s\) hold boxes.*img_2.xml: 1 clipped, 2 dropped"):
        module = data(root, tmp_path)
    module.setup()
    assert module.datasets["val"][0][1]["boxes"].tolist() == [[49.0, 39.0, 64.0, 48.0], [4.0, 4.0, 9.0, 9.0]]
    assert clip_box((-3.0, 2.0, 5.0, 4.0), 10, 10) == ((0.0, 2.0, 5.0, 4.0), True)


def test_wrong_root_names_the_missing_layout_paths(tmp_path):
    (tmp_path / "voc" / "Annotations").mkdir(parents=True)
    with pytest.raises(LayoutError) as error:
        data(tmp_path / "voc", tmp_path)
    message = str(error.value)
    assert "voc_detection" in message and "missing (4): JPEGImages, ImageSets/Main/train.txt" in message


def test_bad_files_are_all_named_before_training(tmp_path):
    root = write_voc(tmp_path / "voc", {**SPLITS, "test": ["img_3", "img_1"]})
    (root / "Annotations" / "img_0.xml").write_text("<annotation><object>")
    (root / "JPEGImages" / "img_2.jpg").unlink()
    (root / "Annotations" / "img_3.xml").write_text(xml("img_3.jpg", [("RBC", (1, 1, 5, 5), 0)], size=(100, 100)))
    with pytest.raises(DataProblems) as error:
        data(root, tmp_path)
    problems = "\n".join(error.value.problems)
    assert len(error.value.problems) == 4
    assert "img_0.xml: unreadable VOC XML" in problems and "img_2.jpg: image missing" in problems
    assert "img_3.xml: <size> 100x100 (WxH) differs from img_3.jpg 64x48" in problems
    assert "test.txt: id img_1 is also listed in train.txt" in problems


def test_tiny_bccd_training_run_records_the_publisher_split(tmp_path, run_config):
    root = write_voc(tmp_path / "BCCD", SPLITS, {i: [("RBC", (11, 11, 40, 30), 0), ("WBC", (41, 5, 60, 25), 0),
                                                     ("Platelets", (45, 30, 52, 37), 0)] for i in ("img_0", "img_1")})
    cfg = run_config("debug=fast", "logger=csv", "task=detection", "datamodule=bccd", f"datamodule.root={root}",
                     f"datamodule.cache_dir={tmp_path / 'cache'}", "datamodule.image_size=64",
                     "datamodule.train_crop=32", "trainer.max_epochs=1")
    train(cfg)
    record = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert record["status"] == "completed" and record["datamodule"] == "bccd"
    assert record["split"]["name"] == "BCCD@ImageSets/Main" and record["split"]["counts"] == {"train": 2, "val": 1, "test": 1}
    assert 0.0 <= record["metrics"]["test/map"] <= 1.0 and "test/ap/2" in record["metrics"]


def _github_archive(tree: Path) -> None:
    """The GitHub archive's content: BCCD_Dataset-master/BCCD/<VOC folders>."""
    write_voc(tree / "BCCD_Dataset-master" / "BCCD", SPLITS)
    (tree / "BCCD_Dataset-master" / "README.md").write_text("readme")


def _served_zip(tmp_path: Path) -> tuple[Path, str]:
    return served_zip(tmp_path, "master.zip", _github_archive)


def _bccd_source(url: str) -> Source:
    return served_source("bccd", url, Path("master.zip"), subdir="BCCD_Dataset-master/BCCD")


def test_download_fetches_the_github_archive_and_reads_its_bccd_folder(tmp_path, monkeypatch):
    archive, digest = _served_zip(tmp_path)
    with serving(archive.parent) as url:
        monkeypatch.setitem(voc.SOURCES, "bccd", _bccd_source(url))
        module = data(tmp_path / "BCCD", tmp_path, download=True, source="bccd", archive_sha256=digest)
    assert (tmp_path / "BCCD" / "Annotations" / "img_0.xml").is_file()
    assert module.split_info.counts == {"train": 2, "val": 1, "test": 1}


def test_download_unpinned_prints_the_digest_and_refuses(tmp_path, monkeypatch):
    archive, digest = _served_zip(tmp_path)
    with serving(archive.parent) as url:
        monkeypatch.setitem(voc.SOURCES, "bccd", _bccd_source(url))
        with pytest.raises(DownloadError, match=f"has SHA-256 {digest}.*archive_sha256={digest}"):
            data(tmp_path / "BCCD", tmp_path, download=True, source="bccd")
        with pytest.raises(ValueError, match=r"download=true needs source= one of \['bccd'\]"):
            data(tmp_path / "BCCD", tmp_path, download=True)
    assert not (tmp_path / "BCCD").exists()


@pytest.mark.slow
@real_data(BCCD)
def test_bccd_development_copy(tmp_path):
    module = VOCDetectionDataModule(BCCD, class_names=["RBC", "WBC", "Platelets"], cache_dir=tmp_path / "cache")
    assert module.split_info.counts == {"train": 205, "val": 87, "test": 72}
    module.setup()
    labels = np.concatenate([module.datasets["train"].target(i)[0]["labels"].numpy()
                             for i in range(len(module.datasets["train"]))])
    assert np.bincount(labels, minlength=4)[1:].tolist() == [2382, 214, 209]
