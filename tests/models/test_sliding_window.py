"""Sliding-window inference reproduces whole-image predictions and handles borders and small images."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models.sliding_window import SlidingWindowInferer, window_starts


def pixelwise_net(in_channels: int = 3, classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(in_channels, 8, 1), nn.ReLU(), nn.Conv2d(8, classes, 1)).eval()


def conv_net(in_channels: int = 3, classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, classes, 3, padding=1)).eval()


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize("size", [(70, 53), (32, 32), (100, 33)])
def test_pixelwise_net_is_reproduced_exactly(blend, size):
    net = pixelwise_net()
    images = torch.randn(2, 3, *size)
    inferer = SlidingWindowInferer((32, 32), overlap=0.25, blend=blend, batch_size=3)
    with torch.no_grad():
        torch.testing.assert_close(inferer(net, images), net(images), atol=1e-5, rtol=1e-5)


def test_conv_net_matches_whole_image_up_to_window_borders():
    net = conv_net()
    images = torch.randn(1, 3, 96, 80)
    with torch.no_grad():
        whole = net(images)
        windowed = SlidingWindowInferer((48, 48), overlap=0.5, blend="gaussian")(net, images)
    # Only pixels within 2 px of an inner window border see zero padding instead of neighbours.
    assert (windowed.argmax(1) == whole.argmax(1)).float().mean() > 0.97
    assert (windowed - whole).abs().mean() < 0.05 * whole.abs().mean()
    # A window as large as the image is the whole-image forward pass.
    single = SlidingWindowInferer((96, 80))(net, images)
    torch.testing.assert_close(single, whole)


def test_images_smaller_than_patch_are_padded_and_cropped_back():
    net = pixelwise_net(in_channels=1, classes=2)
    images = torch.randn(1, 1, 10, 21)
    with torch.no_grad():
        out = SlidingWindowInferer((32, 32))(net, images)
        assert out.shape == (1, 2, 10, 21)
        torch.testing.assert_close(out, net(images), atol=1e-5, rtol=1e-5)
    calls = []

    def recording(windows):
        calls.append(tuple(windows.shape))
        return net(windows)

    SlidingWindowInferer((32, 32))(recording, images)
    assert calls == [(1, 1, 32, 32)]


def test_window_starts_cover_evenly_and_end_on_the_border():
    assert window_starts(32, 32, 0.5) == [0]
    assert window_starts(100, 32, 0.5) == [0, 14, 27, 41, 54, 68]
    for length, patch, overlap in [(100, 32, 0.25), (257, 64, 0.5), (33, 32, 0.0)]:
        starts = window_starts(length, patch, overlap)
        assert starts[0] == 0 and starts[-1] == length - patch
        assert max(b - a for a, b in zip(starts, starts[1:])) <= patch * (1 - overlap) + 1


def test_gaussian_map_peaks_in_the_centre_and_stays_positive():
    weights = SlidingWindowInferer((33, 17), blend="gaussian").importance_map()
    assert weights.shape == (33, 17) and weights.max() == 1.0 and weights[16, 8] == 1.0
    assert weights.min() > 0 and weights[0, 0] < weights[16, 0] < weights[16, 8]
    assert torch.equal(SlidingWindowInferer((4, 4), blend="constant").importance_map(), torch.ones(4, 4))


def test_gaussian_blending_weights_window_centres():
    """A net that outputs its window's index shows the blend: each pixel leans to the window it is central in."""
    inferer = SlidingWindowInferer((16, 16), overlap=0.5, blend="gaussian", batch_size=1)
    counter = {"k": 0}

    def window_id(windows):
        counter["k"] += 1
        return torch.full((windows.shape[0], 1, 16, 16), float(counter["k"]))

    out = inferer(window_id, torch.zeros(1, 1, 16, 24))  # two windows: starts 0 and 8 along the width
    assert out[0, 0, 8, 2] == pytest.approx(1.0, abs=1e-3) and out[0, 0, 8, 21] == pytest.approx(2.0, abs=1e-3)
    # column 11 is 3.5 px from the first centre (7.5) and 4.5 px from the second (15.5); sigma = 2
    g1, g2 = math.exp(-0.5 * (3.5 / 2) ** 2), math.exp(-0.5 * (4.5 / 2) ** 2)
    assert out[0, 0, 8, 11] == pytest.approx((g1 + 2 * g2) / (g1 + g2), abs=1e-5)
    assert out[0, 0, 8, 11] + out[0, 0, 8, 12] == pytest.approx(3.0, abs=1e-5)  # mirror pixels


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="overlap must be in \\[0, 1\\)"):
        SlidingWindowInferer((8, 8), overlap=1.0)
    with pytest.raises(ValueError, match="blend must be one of"):
        SlidingWindowInferer((8, 8), blend="mean")
    with pytest.raises(ValueError, match="patch_size must be two positive ints"):
        SlidingWindowInferer((8,))
    with pytest.raises(ValueError, match="images must be \\(B, C, H, W\\)"):
        SlidingWindowInferer((8, 8))(pixelwise_net(), torch.zeros(3, 8, 8))
