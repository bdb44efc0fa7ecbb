"""``python scripts/dataset_stats.py``: the numbers on a hand-made folder set."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from datamodules.stats import area_bins
from scripts.dataset_stats import main
from losses.class_weights import weights_from_counts
from tests.datamodules.folder_fixtures import write_array


@pytest.fixture
def hand_made(tmp_path):
    """Train: two 20x20 images. Class 1: a 1-px dot, a 3x3 square, a 2x10 bar (areas 1, 9, 20);
    class 2: one 8x8 block (64). A roi hides one 20-px column of image a. Val/test: one 10x30 image each."""
    root = tmp_path / "data"
    a = np.zeros((20, 20), np.uint8)
    a[0, 0] = 1
    a[5:8, 5:8] = 1
    a[12:14, 2:12] = 1
    b = np.zeros((20, 20), np.uint8)
    b[10:18, 10:18] = 2
    roi = np.ones((20, 20), np.uint8)
    roi[:, 19] = 0
    for stem, mask in (("a", a), ("b", b), ("c", np.zeros((10, 30), np.uint8)), ("d", np.zeros((10, 30), np.uint8))):
        write_array(root / "images" / f"{stem}.png", np.full(mask.shape + (3,), 100, np.uint8))
        write_array(root / "masks" / f"{stem}.png", mask)
        write_array(root / "roi" / f"{stem}.png", roi if stem == "a" else np.ones(mask.shape, np.uint8))
    (root / "splits").mkdir()
    for split, stem in (("train", "a\nb"), ("val", "c"), ("test", "d")):
        (root / "splits" / f"{split}.txt").write_text(stem + "\n")
    return root


def test_stats_cli_numbers(hand_made, tmp_path, capsys):
    out = tmp_path / "stats"
    stats = main(["datamodule=folder", f"datamodule.root={hand_made}", "datamodule.num_classes=3", "--out", str(out)])
    assert json.loads((out / "stats.json").read_text()) == json.loads(json.dumps(stats))
    assert (out / "stats.md").read_text() in capsys.readouterr().out
    assert stats["splits"]["train"] == {"images": 2, "height": {"min": 20, "median": 20.0, "max": 20},
                                        "width": {"min": 20, "median": 20.0, "max": 20}}
    assert stats["splits"]["val"]["images"] == 1 and stats["splits"]["test"]["width"]["max"] == 30
    assert stats["ignored_pixels"] == 20
    assert stats["class_pixels"] == [800 - 20 - 30 - 64, 30, 64]
    assert stats["foreground_fraction"] == pytest.approx(94 / 780)
    class_1, class_2 = stats["objects"]["class_1"], stats["objects"]["class_2"]
    assert class_1["components"] == 3 and class_1["median_area"] == 9.0 and class_1["components_per_image"] == 1.5
    assert class_1["area_histogram"] == dict(zip(area_bins(), [1, 1, 1, 0, 0, 0]))
    assert class_2["area_histogram"] == dict(zip(area_bins(), [0, 0, 0, 1, 0, 0]))
    counts = torch.tensor(stats["class_pixels"], dtype=torch.float64)
    for scheme in ("inverse", "inverse_sqrt", "median_frequency", "effective_number"):
        np.testing.assert_allclose(stats["class_weights"][scheme], weights_from_counts(counts, scheme).numpy(), rtol=1e-5)
    assert stats["class_weights"]["inverse"][1] > stats["class_weights"]["inverse"][2] > stats["class_weights"]["inverse"][0]


def test_area_bins_names():
    assert area_bins((4, 16)) == ["<4", "4-15", ">=16"]


def test_stats_of_volumes_count_3d_components():
    """Label volumes: components are 26-connected in 3-D (two diagonal voxels are one object), sizes in voxels."""
    from datamodules.stats import dataset_stats

    volume = np.zeros((4, 5, 6), np.int64)
    volume[0, 0, 0] = volume[1, 1, 1] = 1  # diagonal neighbours: one object of 2 voxels
    volume[3, 3:5, 3:6] = 1  # a second object of 6 voxels

    class Volumes:
        num_classes, ignore_index, class_names = 2, 255, ["background", "structure"]

        def split_masks(self, split):
            yield volume

        def class_pixel_counts(self):
            return torch.tensor([float((volume == 0).sum()), float((volume == 1).sum())], dtype=torch.float64)

    stats = dataset_stats(Volumes())
    assert stats["objects"]["structure"]["components"] == 2 and stats["objects"]["structure"]["median_area"] == 4.0
    assert stats["splits"]["train"]["height"]["max"] == 5 and stats["splits"]["train"]["width"]["max"] == 6
