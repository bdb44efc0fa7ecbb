"""Synthetic detection data: determinism, exact boxes, long tail, clutter, presets, checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from datamodules import shapes
from datamodules.synthetic_det import SyntheticDetDataModule

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "datamodule"


def _small(**kwargs) -> SyntheticDetDataModule:
    args = dict(image_size=64, object_sizes=(4, 24), objects_per_image=(4, 10), train_size=40, val_size=8,
                test_size=8, batch_size=4)
    args.update(kwargs)
    return SyntheticDetDataModule(**args)


def test_deterministic_per_seed_and_split() -> None:
    a, b, other = _small(), _small(), _small(seed=2)
    img_a, tgt_a = a.datasets["train"][3]
    img_b, tgt_b = b.datasets["train"][3]
    assert torch.equal(img_a, img_b) and torch.equal(tgt_a["boxes"], tgt_b["boxes"])
    assert not torch.equal(img_a, other.datasets["train"][3][0])
    assert not torch.equal(img_a, a.datasets["val"][3][0])


def test_boxes_enclose_exactly_the_drawn_objects() -> None:
    """Each box is the tight box of its object's mask; the masks of labelled objects are inside."""
    dm = _small(clutter_share=0.0)
    ds = dm.datasets["train"]
    height, width = dm.spec.image_size
    checked = 0
    for index in range(10):
        objects = dm.spec.layout("train", index)
        target = ds.targets(index)
        assert len(objects) == len(target["labels"])
        for obj, box, label in zip(objects, target["boxes"], target["labels"]):
            mask = np.zeros((height, width), dtype=bool)
            window = shapes.shape_window(obj.shape, height, width)
            mask[window.slices] = shapes.window_distance(obj.shape, window) <= 0
            rows, cols = np.nonzero(mask)
            x1, y1, x2, y2 = box.tolist()
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x1, y1, x2, y2)
            assert int(label) == obj.label
            checked += 1
    assert checked > 30


def test_drawn_pixels_differ_from_background_inside_boxes_only() -> None:
    """Without noise, blur or clutter: beyond a 1-px anti-aliasing rim around each box the image is
    plain background, and every box holds clearly drawn pixels."""
    dm = _small(clutter_share=0.0, noise_std=0.0, blur_sigma=0.0, background_texture=0.0)
    for index in range(5):
        image, target = dm.datasets["train"][index]
        outside = torch.ones(image.shape[1:], dtype=torch.bool)
        for x1, y1, x2, y2 in target["boxes"].long().tolist():
            outside[max(y1 - 1, 0):y2 + 1, max(x1 - 1, 0):x2 + 1] = False
            inside = image[:, y1:y2, x1:x2]
            assert (inside - 0.5).abs().amax(dim=0).max() > 0.2
        # polygon distances are lower bounds beyond corners: a trace of coverage may reach 2 px out
        torch.testing.assert_close(image[:, outside], torch.full_like(image[:, outside], 0.5), rtol=0, atol=0.01)


def test_clutter_is_drawn_but_never_labelled() -> None:
    dm = _small(clutter_share=0.5)
    labels = torch.cat([dm.datasets["train"].targets(i)["labels"] for i in range(40)])
    layouts = [obj.label for i in range(40) for obj in dm.spec.layout("train", i)]
    assert labels.max() <= dm.num_classes
    clutter = sum(label == dm.num_classes + 1 for label in layouts)
    assert 0.35 < clutter / len(layouts) < 0.65
    assert len(labels) == len(layouts) - clutter


def test_long_tail_and_sizes() -> None:
    dm = _small(train_size=150)
    targets = [dm.datasets["train"].targets(i) for i in range(150)]
    counts = torch.bincount(torch.cat([t["labels"] for t in targets]), minlength=6)[1:]
    assert counts[0] > 2 * counts[2] > 0 and counts[0] > 5 * counts[4]
    boxes = torch.cat([t["boxes"] for t in targets])
    sides = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert sides.min() >= 2 and sides.max() <= 25
    assert (sides <= 12).float().mean() > 0.5  # log-uniform sizes: mostly small


def test_batches_are_lists_in_the_architecture_format() -> None:
    images, targets = next(iter(_small().train_dataloader()))
    assert isinstance(images, list) and len(images) == 4 and images[0].shape == (3, 64, 64)
    assert images[0].dtype == torch.float32 and 0.0 <= images[0].min() and images[0].max() <= 1.0
    assert targets[0]["boxes"].dtype == torch.float32 and targets[0]["labels"].dtype == torch.int64
    assert targets[0]["boxes"].shape == (len(targets[0]["labels"]), 4)


@pytest.mark.parametrize(("preset", "max_side"), [("synthetic_det", 49), ("synthetic_det_tiny", 17)])
def test_presets(preset: str, max_side: int) -> None:
    cfg = OmegaConf.load(CONFIGS / f"{preset}.yaml")
    if "defaults" in cfg:
        cfg = OmegaConf.merge(OmegaConf.load(CONFIGS / "synthetic_det.yaml"), cfg)
        del cfg["defaults"]
    cfg.seed = 1
    dm = instantiate(cfg, train_size=20)
    assert dm.num_classes == 5 and len(dm.class_names) == 5 and dm.image_size == 128
    boxes = torch.cat([dm.datasets["train"].targets(i)["boxes"] for i in range(20)])
    sides = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert sides.max() <= max_side and sides.min() >= 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clutter_share": 1.0}, "clutter_share"),
        ({"object_sizes": (10, 4)}, "object_sizes"),
        ({"class_frequencies": (1.0, 0.5)}, "class_frequencies"),
        ({"class_names": ["a"]}, "class_names"),
        ({"image_size": 4}, "image_size"),
        ({"object_sizes": (4, 80)}, "radius_range"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _small(**kwargs)
