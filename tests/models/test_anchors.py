"""Anchor fitting (models/anchors.py): level assignment, quantile sizes, the matched share, FCOS."""
from __future__ import annotations

import numpy as np
import pytest

from models.anchors import (
    anchor_shapes, assign_levels, fit_anchor_sizes, fit_fcos, level_strides, matched_share,
)


def _square_boxes(scales: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    centre = rng.uniform(50, 450, (len(scales), 2))
    return np.concatenate([centre - scales[:, None] / 2, centre + scales[:, None] / 2], axis=1)


def test_strides_follow_returned_layers_plus_pooled_level() -> None:
    assert level_strides([1, 2, 3]) == [4, 8, 16, 32]
    assert level_strides([2, 3, 4]) == [8, 16, 32, 64]


def test_levels_split_at_three_strides() -> None:
    strides = [4, 8, 16, 32]
    levels = assign_levels(np.array([5.0, 23.9, 24.0, 47.9, 48.0, 96.0, 500.0]), strides)
    assert levels.tolist() == [0, 0, 1, 1, 2, 3, 3]


def test_sizes_are_quantiles_of_each_levels_boxes() -> None:
    rng = np.random.default_rng(0)
    scales = np.concatenate([np.full(50, 10.0), np.full(50, 20.0), np.full(100, 30.0)])
    fit = fit_anchor_sizes(_square_boxes(scales, rng), [4, 8, 16, 32], per_level=2)
    assert fit.boxes_per_level == [100, 100, 0, 0]
    assert fit.sizes[0] == [10.0, 20.0] and fit.sizes[1] == [30.0, 30.0]
    assert fit.sizes[2] == [48.0, pytest.approx(67.9)] and fit.sizes[3] == [96.0, pytest.approx(135.8)]  # 3·stride defaults


def test_fit_is_deterministic_and_beats_fixed_sizes_on_20px_cells() -> None:
    rng = np.random.default_rng(1)
    scales = np.exp(rng.normal(np.log(20), 0.4, 2000))
    boxes = _square_boxes(scales, rng)
    strides = level_strides([1, 2, 3])
    first, second = fit_anchor_sizes(boxes, strides), fit_anchor_sizes(boxes.copy(), strides)
    assert first == second
    assert first.matched_share > 0.95
    assert matched_share(boxes, [[4, 6], [8, 12], [16, 24], [32, 48]], strides) < 0.75


def test_matched_share_counts_grid_positions() -> None:
    # A 12-px square centred on a stride-4 grid point is matched exactly by a 12-px anchor; centred
    # 8 px off a stride-16 grid point the same anchor overlaps it with IoU 4·12/(2·144 - 4·12) = 0.2.
    on_grid = np.array([[34.0, 34.0, 46.0, 46.0]])
    assert matched_share(on_grid, [[12.0]], [4], aspect_ratios=[1.0]) == 1.0
    off_grid = np.array([[2.0, 2.0, 14.0, 14.0]])  # centre (8, 8): 8 px from the stride-16 points
    assert matched_share(off_grid, [[12.0]], [16], aspect_ratios=[1.0]) == 0.0


def test_anchor_shapes_match_torchvision() -> None:
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    base = AnchorGenerator(((10.0, 20.0),), ((0.5, 1.0, 2.0),)).cell_anchors[0]
    widths_heights = (base[:, 2:] - base[:, :2]).numpy()
    np.testing.assert_allclose(anchor_shapes([10.0, 20.0], [0.5, 1.0, 2.0]), widths_heights, atol=1.0)


def test_fcos_fit_places_level_boundaries_like_retinanet_and_covers_boxes() -> None:
    rng = np.random.default_rng(2)
    boxes = _square_boxes(np.exp(rng.normal(np.log(20), 0.4, 1000)), rng)
    fit = fit_fcos(boxes, [4, 8, 16, 32])
    assert fit.sizes == [1.5, 3.0, 6.0, 12.0]
    assert [8 * s * 2 for s in fit.sizes[:-1]] == [24.0, 48.0, 96.0]  # box scale 2·max(l,t,r,b) = 3 strides up
    assert fit.center_sampling_radius == pytest.approx(4.0)  # 1.5 strides in point sizes
    assert fit.positive_share >= 0.99 and sum(fit.boxes_per_level) == 1000


def test_fit_to_boxes_answers_per_architecture_and_names_unknown_ones(monkeypatch):
    import models.anchors as anchors
    rng = np.random.default_rng(0)
    boxes = _square_boxes(rng.uniform(6, 60, 300), rng)
    values, fit = anchors.fit_to_boxes({"arch": "retinanet", "returned_layers": [1, 2, 3], "anchors_per_level": 2,
                                        "aspect_ratios": [1.0]}, boxes)
    assert values == {"anchor_sizes": fit.sizes} and fit.sizes == fit_anchor_sizes(boxes, [4, 8, 16, 32], 2, [1.0]).sizes
    values, fit = anchors.fit_to_boxes({"arch": "fcos", "returned_layers": [1, 2, 3]}, boxes)
    assert values["anchor_sizes"] == [[s] for s in fit_fcos(boxes, [4, 8, 16, 32]).sizes]
    assert values["center_sampling_radius"] == fit.center_sampling_radius
    with pytest.raises(ValueError, match=r"no box fit for arch='yolo'; known: \['fcos', 'retinanet'\]"):
        anchors.fit_to_boxes({"arch": "yolo", "returned_layers": [1, 2, 3]}, boxes)
    # A new detector plugs in through the table alone.
    monkeypatch.setitem(anchors.BOX_FITTERS, "yolo", lambda b, strides, d: ({"anchor_sizes": strides}, None))
    assert anchors.fit_to_boxes({"arch": "yolo", "returned_layers": [2, 3]}, boxes)[0] == {"anchor_sizes": [8, 16, 32]}
