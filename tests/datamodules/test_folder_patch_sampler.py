"""Patch sampling statistics: random coverage, foreground oversampling per class, window placement."""
from __future__ import annotations

import numpy as np
import pytest

from datamodules.patch_sampler import ForegroundIndex, PatchSampler, crop


def tiny_structures() -> list[np.ndarray]:
    """Three 200x200 masks: class 1 a 6x6 square in two images, class 2 a single pixel in one image."""
    masks = [np.zeros((200, 200), np.uint8) for _ in range(3)]
    masks[0][50:56, 60:66] = 1
    masks[1][120:126, 10:16] = 1
    masks[2][199, 0] = 2  # corner pixel: the window must shift to stay inside the image
    return masks


def centre_hits(sampler: PatchSampler, masks: list[np.ndarray], cls: int, epochs: int = 4) -> float:
    """Share of patches (over ``epochs``) that contain at least one pixel of class ``cls``."""
    hits = total = 0
    ph, pw = sampler.patch_size
    for _ in range(epochs):
        for image, top, left in sampler:
            hits += bool((crop(masks[image], top, left, (ph, pw), 0) == cls).any())
            total += 1
    return hits / total


def test_foreground_share_is_exact_and_classes_are_drawn_uniformly():
    masks = tiny_structures()
    index = ForegroundIndex([1, 2], seed=0)
    for mask in masks:
        index.add(mask)
    assert index.classes == [1, 2] and index.images_with_class == {1: [0, 1], 2: [2]}
    sampler = PatchSampler([m.shape for m in masks], (32, 32), 600, foreground_share=0.4, index=index, seed=0)
    n = 4 * 600
    share_1, share_2 = centre_hits(sampler, masks, 1), centre_hits(sampler, masks, 2)
    # Foreground draws: 0.4 of patches, classes uniform → 0.2 each (±4 binomial σ ≈ 0.033);
    # random patches add class 1 with probability ≈ 2·(37·37)/(3·200·200) ≈ 0.023 of the rest.
    sigma = np.sqrt(0.25 * 0.75 / n)
    assert abs(share_2 - 0.2) < 4 * sigma + 0.01
    assert abs(share_1 - (0.2 + 0.6 * 0.023)) < 4 * sigma + 0.01
    baseline = PatchSampler([m.shape for m in masks], (32, 32), 600, foreground_share=0.0, index=index, seed=0)
    assert centre_hits(baseline, masks, 2) < 0.01  # without oversampling the one-pixel class is almost never seen
    assert centre_hits(baseline, masks, 1) < 0.05


def test_random_patches_are_uniform_over_pixels_of_unequal_images():
    sizes = [(100, 100), (300, 100)]  # the second image holds 3/4 of the pixels
    sampler = PatchSampler(sizes, (16, 16), 4000, foreground_share=0.0, seed=1)
    images = np.array([image for image, _, _ in sampler])
    assert abs((images == 1).mean() - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 4000)


def test_windows_contain_their_centre_and_stay_inside_or_overhang_small_images():
    sampler = PatchSampler([(50, 40), (10, 12)], (32, 32), 10, seed=0)
    for row, col in [(0, 0), (49, 39), (25, 20), (3, 37)]:
        _, top, left = sampler.window(0, row, col)
        assert 0 <= top <= 50 - 32 and 0 <= left <= 40 - 32
        assert top <= row < top + 32 and left <= col < left + 32
    _, top, left = sampler.window(1, 5, 6)
    assert -22 <= top <= 0 and -20 <= left <= 0 and top <= 5 < top + 32


def test_epochs_differ_and_seed_reproduces():
    sizes = [(64, 64)] * 3
    first, again = PatchSampler(sizes, (8, 8), 20, seed=7), PatchSampler(sizes, (8, 8), 20, seed=7)
    epoch1, epoch2 = list(first), list(first)
    assert epoch1 == list(again) and epoch1 != epoch2
    assert len(epoch1) == len(first) == 20


def test_foreground_index_subsamples_large_classes():
    mask = np.ones((100, 100), np.uint8)
    index = ForegroundIndex([1], max_locations=50, seed=0)
    index.add(mask)
    assert index.locations[(0, 1)].size == 50 and np.unique(index.locations[(0, 1)]).size == 50


def test_crop_pads_outside_with_fill():
    array = np.arange(12, dtype=np.int64).reshape(3, 4)
    out = crop(array, -1, 2, (3, 3), fill=-5)
    np.testing.assert_array_equal(out, [[-5, -5, -5], [2, 3, -5], [6, 7, -5]])
    rgb = np.ones((2, 2, 3), np.uint8)
    np.testing.assert_array_equal(crop(rgb, 1, 1, (2, 2), fill=np.array([7, 8, 9], np.uint8))[1, 1], [7, 8, 9])


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="foreground_share must be in \\[0, 1\\]"):
        PatchSampler([(10, 10)], (4, 4), 5, foreground_share=-0.1)
    with pytest.raises(ValueError, match="no images"):
        PatchSampler([], (4, 4), 5)
