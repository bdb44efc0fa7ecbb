"""COCO-format folder: a fixture written here loads with the right boxes, before and after
transforms; crowd, empty images, category remapping, splits and bad annotations."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.coco import CocoDataModule

CATEGORIES = [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}, {"id": 12, "name": "bird"}]


def _write(root: Path, annotations: list[dict], n_images: int = 10, name: str = "annotations.json") -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(1, n_images + 1):
        pixels = np.zeros((40, 60, 3), dtype=np.uint8)
        pixels[..., 0] = i  # image i is recognisable by its red value
        Image.fromarray(pixels).save(root / "images" / f"im{i}.png")
        images.append({"id": i, "file_name": f"im{i}.png", "width": 60, "height": 40})
    (root / name).write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return root


def _ann(ann_id: int, image_id: int, bbox: list[float], category: int = 7, crowd: int = 0) -> dict:
    return {"id": ann_id, "image_id": image_id, "bbox": bbox, "category_id": category, "iscrowd": crowd,
            "area": bbox[2] * bbox[3]}


def _dm(root: Path, **kwargs) -> CocoDataModule:
    args = dict(root=str(root), num_classes=3, val_share=0.2, test_share=0.2, batch_size=2, augment=None)
    args.update(kwargs)
    dm = CocoDataModule(**args)
    dm.setup()
    return dm


def _find(dm: CocoDataModule, image_id: int) -> tuple[str, int]:
    for split, ds in dm.datasets.items():
        if image_id in ds.ids:
            return split, ds.ids.index(image_id)
    raise AssertionError(f"image {image_id} in no split")


def test_boxes_labels_and_names(tmp_path: Path) -> None:
    annotations = [_ann(1, 1, [5, 6, 10, 20], category=7), _ann(2, 1, [30, 2, 4, 4], category=3),
                   _ann(3, 2, [0, 0, 60, 40], category=12)]
    dm = _dm(_write(tmp_path, annotations))
    assert dm.class_names == ["dog", "cat", "bird"]  # sorted by category id: 3, 7, 12 -> labels 1, 2, 3
    split, index = _find(dm, 1)
    image, target = dm.datasets[split][index]
    assert image.shape == (3, 40, 60) and image[0, 0, 0].item() == pytest.approx(1 / 255)
    torch.testing.assert_close(target["boxes"], torch.tensor([[5.0, 6.0, 15.0, 26.0], [30.0, 2.0, 34.0, 6.0]]))
    assert target["labels"].tolist() == [2, 1]


def test_splits_are_seeded_disjoint_and_complete(tmp_path: Path) -> None:
    root = _write(tmp_path, [])
    a, b = _dm(root), _dm(root)
    ids = {split: ds.ids for split, ds in a.datasets.items()}
    assert ids == {split: ds.ids for split, ds in b.datasets.items()}
    assert sorted(sum(ids.values(), [])) == list(range(1, 11))
    assert (len(ids["train"]), len(ids["val"]), len(ids["test"])) == (6, 2, 2)
    assert ids != {split: ds.ids for split, ds in _dm(root, seed=5).datasets.items()}


def test_separate_split_files(tmp_path: Path) -> None:
    root = _write(tmp_path, [_ann(1, 1, [1, 1, 5, 5])])
    _write(tmp_path, [_ann(9, 2, [2, 2, 3, 3], category=12)], n_images=3, name="val.json")
    dm = _dm(root, val_annotations="val.json", test_share=0.3)
    assert dm.datasets["val"].ids == [1, 2, 3]
    assert len(dm.datasets["test"]) == 3 and len(dm.datasets["train"]) == 7
    _, target = dm.datasets["val"][1]
    assert target["labels"].tolist() == [3]


def test_flip_moves_boxes_with_the_image(tmp_path: Path) -> None:
    dm = _dm(_write(tmp_path, [_ann(k, k, [5, 6, 10, 20]) for k in range(1, 11)]), augment={"hflip": 1.0})
    image, target = dm.datasets["train"][0]
    torch.testing.assert_close(target["boxes"], torch.tensor([[60.0 - 15.0, 6.0, 60.0 - 5.0, 26.0]]))
    assert target["labels"].tolist() == [2]


def test_crowd_out_of_training_flagged_for_evaluation(tmp_path: Path) -> None:
    annotations = [_ann(k, k, [5, 6, 10, 20]) for k in range(1, 11)]
    annotations += [_ann(100 + k, k, [20, 10, 30, 20], crowd=1) for k in range(1, 11)]
    dm = _dm(_write(tmp_path, annotations))
    _, train_target = dm.datasets["train"][0]
    assert len(train_target["boxes"]) == 1 and "iscrowd" not in train_target
    _, val_target = dm.datasets["val"][0]
    assert val_target["iscrowd"].tolist() == [0, 1] and len(val_target["boxes"]) == 2


def test_images_without_annotations_give_empty_targets(tmp_path: Path) -> None:
    dm = _dm(_write(tmp_path, []))
    images, targets = next(iter(dm.train_dataloader()))
    assert len(images) == 2
    assert targets[0]["boxes"].shape == (0, 4) and targets[0]["labels"].shape == (0,)


def test_boxes_outside_the_image_are_clipped_with_a_counted_warning(tmp_path: Path) -> None:
    annotations = [_ann(k, k, [50, 30, 20, 20]) for k in range(1, 11)]  # reaches x=70 > 60, y=50 > 40
    annotations.append(_ann(99, 1, [70, 5, 5, 5]))  # entirely outside: dropped
    with pytest.warns(UserWarning, match="clipped") as caught:
        dm = _dm(_write(tmp_path, annotations))
    message = str(caught[0].message)
    per_file = re.findall(r"(\S+) \((train|val|test)\): (\d+) clipped, (\d+) dropped", message)
    assert message.startswith("coco: 10 image(s)") and len(per_file) == 10  # images 1..10, one box each
    assert sum(int(c) for *_, c, _ in per_file) == 10 and sum(int(d) for *_, d in per_file) == 1
    assert [name for name, _, _, d in per_file if d == "1"] == ["im1.png"]  # the box wholly outside image 1
    split, index = _find(dm, 1)
    _, target = dm.datasets[split][index]
    torch.testing.assert_close(target["boxes"], torch.tensor([[50.0, 30.0, 60.0, 40.0]]))


@pytest.mark.parametrize(
    ("annotation", "match"),
    [
        (_ann(5, 4, [1, 1, 5, 5], category=99), r"image id 4, annotation id 5: unknown category_id 99"),
        (_ann(6, 2, [1, 1, -5, 5]), r"image id 2, annotation id 6: negative box size"),
        ({"id": 7, "image_id": 3, "bbox": [1, 2], "category_id": 7}, r"image id 3, annotation id 7: bbox must be"),
    ],
)
def test_bad_annotations_name_the_image(tmp_path: Path, annotation: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _dm(_write(tmp_path, [annotation]))


def test_config_errors(tmp_path: Path) -> None:
    root = _write(tmp_path, [])
    with pytest.raises(ValueError, match=r"num_classes=5 but annotations.json has 3 categories.*num_classes=3"):
        CocoDataModule(root=str(root), num_classes=5)
    with pytest.raises(ValueError, match="annotations file .*missing.json not found"):
        CocoDataModule(root=str(root), num_classes=3, annotations="missing.json")
    with pytest.raises(ValueError, match="val_share"):
        CocoDataModule(root=str(root), num_classes=3, val_share=1.5)
