"""One evaluation inferer for 2-D and 3-D: reproduces the two it replaced, handles borders and small inputs."""
from __future__ import annotations

import math

import pytest
import torch
from monai.inferers import SlidingWindowInferer as MonaiSlidingWindowInferer
from monai.inferers import sliding_window_inference
from torch import nn

from models.inferer import WindowInferer, window_starts


def pixelwise_net(in_channels: int = 3, classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(in_channels, 8, 1), nn.ReLU(), nn.Conv2d(8, classes, 1)).eval()


def conv_net(in_channels: int = 3, classes: int = 4, dims: int = 2) -> nn.Module:
    """Spatial context (5x5 receptive field, zero padding): its windowed output depends on where the windows lie."""
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    torch.manual_seed(0)
    return nn.Sequential(conv(in_channels, 8, 3, padding=1), nn.ReLU(), conv(8, classes, 3, padding=1)).eval()


def old_2d_inferer(net, images, patch, overlap, blend, sigma_scale=0.125, batch_size=4):
    """The 2-D ``SlidingWindowInferer`` of models/sliding_window.py before the merge, kept as the reference."""
    height, width = images.shape[-2:]
    ph, pw = patch
    pad_h, pad_w = max(ph - height, 0), max(pw - width, 0)
    padded = nn.functional.pad(images, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)) \
        if pad_h or pad_w else images
    full_h, full_w = padded.shape[-2:]
    starts = [(t, l) for t in window_starts(full_h, ph, overlap) for l in window_starts(full_w, pw, overlap)]
    if blend == "constant":
        weight = torch.ones((ph, pw))
    else:
        axes = [torch.exp(-0.5 * ((torch.arange(s, dtype=torch.float64) - (s - 1) / 2) / (sigma_scale * s)) ** 2)
                for s in (ph, pw)]
        gauss = axes[0][:, None] * axes[1][None, :]
        weight = (gauss / gauss.max()).clamp_min(1e-4).float()
    out, norm = None, torch.zeros((1, 1, full_h, full_w))
    for first in range(0, len(starts), batch_size):
        group = starts[first:first + batch_size]
        logits = net(torch.cat([padded[:, :, t:t + ph, l:l + pw] for t, l in group])).float()
        if out is None:
            out = torch.zeros((images.shape[0], logits.shape[1], full_h, full_w))
        for k, (t, l) in enumerate(group):
            out[:, :, t:t + ph, l:l + pw] += weight * logits[k * images.shape[0]:(k + 1) * images.shape[0]]
            norm[:, :, t:t + ph, l:l + pw] += weight
    out = out / norm
    return out[:, :, pad_h // 2:pad_h // 2 + height, pad_w // 2:pad_w // 2 + width]


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
@pytest.mark.parametrize("size", [(70, 53), (21, 10), (47, 129)])
def test_2d_windows_equal_the_previous_2d_inferer(blend, overlap, size):
    net = conv_net()
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        new = WindowInferer([32, 32], overlap=overlap, blend=blend, batch_size=3)(net, images)
        old = old_2d_inferer(net, images, (32, 32), overlap, blend, batch_size=3)
    assert new.shape == (2, 4, *size)
    torch.testing.assert_close(new, old, atol=1e-5, rtol=0)


def old_3d_inferer(net, images, patch, overlap, blend):
    """The 3-D ``VolumeInferer``'s window path before the merge: MONAI's sliding window."""
    return MonaiSlidingWindowInferer(roi_size=list(patch), sw_batch_size=2, overlap=overlap, mode=blend,
                                     sigma_scale=0.125)(images, net)


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize("size", [(8, 8, 8), (5, 7, 3), (8, 3, 6)])
def test_3d_single_window_equals_monai(blend, size):
    """Volumes no larger than the window: one window, padded symmetrically and cropped back, as MONAI did."""
    net = conv_net(1, 3, dims=3)
    images = torch.randn(2, 1, *size)
    with torch.no_grad():
        new = WindowInferer([8, 8, 8], blend=blend)(net, images)
        old = old_3d_inferer(net, images, (8, 8, 8), 0.25, blend)
    torch.testing.assert_close(new, old, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("overlap", "size"), [(0.0, (16, 8, 8)), (0.25, (14, 8, 20)), (0.5, (12, 8, 16))])
def test_3d_windows_equal_monai_where_both_place_windows_alike(overlap, size):
    """Where ``L - p`` is a multiple of the stride both placements coincide, and constant blending is equal.

    Elsewhere MONAI's windows sit at a fixed stride with the last moved back to the border, ours are
    spread evenly (nnU-Net), so a net with spatial context gives other (equally valid) logits there."""
    net = conv_net(1, 3, dims=3)
    images = torch.randn(2, 1, *size)
    with torch.no_grad():
        new = WindowInferer([8, 8, 8], overlap=overlap, blend="constant")(net, images)
        old = old_3d_inferer(net, images, (8, 8, 8), overlap, "constant")
    torch.testing.assert_close(new, old, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("overlap", "size"), [(0.25, (14, 8, 20)), (0.5, (12, 8, 16))])
def test_3d_gaussian_windows_differ_from_monai_only_by_the_importance_map(overlap, size):
    """Same windows, Gaussian blend: given our map, MONAI's sliding window gives our logits. Its own map
    differs in the floor (MONAI: 1e-3 absolute; ours: 1e-4 of the peak, as the 2-D inferer had), which
    moves the logits where only the outer parts of windows overlap (measured in docs/volumes.md)."""
    net = conv_net(1, 3, dims=3)
    images = torch.randn(1, 1, *size)
    inferer = WindowInferer([8, 8, 8], overlap=overlap, blend="gaussian")
    with torch.no_grad():
        new = inferer(net, images)
        monai_ours = sliding_window_inference(images, [8, 8, 8], 2, net, overlap=overlap, mode="gaussian",
                                              roi_weight_map=inferer.importance_map())
        monai_own = old_3d_inferer(net, images, (8, 8, 8), overlap, "gaussian")
    torch.testing.assert_close(new, monai_ours, atol=1e-5, rtol=0)
    assert (new - monai_own).abs().max() > 1e-3  # the floor matters: this test would notice a change of map


def test_whole_input_pass_pads_to_pad_multiple_and_crops_back():
    seen = []

    def net(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape[2:]))
        return x.repeat(1, 2, *([1] * (x.ndim - 2)))

    images = torch.randn(1, 1, 10, 8, 3)
    out = WindowInferer([8, 8, 8], whole_input_max_pixels=240, pad_multiple=8)(net, images)
    assert seen == [(16, 8, 8)] and torch.equal(out, images.repeat(1, 2, 1, 1, 1))
    out = WindowInferer([32, 32], whole_input_max_pixels=33 * 20, pad_multiple=32)(net, torch.ones(2, 3, 33, 20))
    assert seen[-1] == (64, 32) and out.shape == (2, 6, 33, 20)
    WindowInferer([8, 8, 8], whole_input_max_pixels=239)(net, images)  # one voxel over: windows
    assert seen[-1] == (8, 8, 8)


@pytest.mark.parametrize("dims", [2, 3])
def test_whole_pass_and_windows_agree_for_a_pointwise_net(dims):
    torch.manual_seed(0)
    net = (nn.Conv2d if dims == 2 else nn.Conv3d)(1, 3, kernel_size=1)
    images = torch.randn(2, 1, *([20, 18, 10][:dims]))
    patch = [8] * dims
    with torch.no_grad():
        whole = WindowInferer(patch, whole_input_max_pixels=10_000, pad_multiple=8)(net, images)
        windows = WindowInferer(patch, overlap=0.5, blend="gaussian")(net, images)
    torch.testing.assert_close(whole, net(images), atol=1e-5, rtol=0)
    torch.testing.assert_close(windows, net(images), atol=1e-5, rtol=0)


def test_conv_net_matches_whole_image_up_to_window_borders():
    net = conv_net()
    images = torch.randn(1, 3, 96, 80)
    with torch.no_grad():
        whole = net(images)
        windowed = WindowInferer([48, 48], overlap=0.5, blend="gaussian")(net, images)
        single = WindowInferer([96, 80])(net, images)
    # Only pixels within 2 px of an inner window border see zero padding instead of neighbours.
    assert (windowed.argmax(1) == whole.argmax(1)).float().mean() > 0.97
    assert (windowed - whole).abs().mean() < 0.05 * whole.abs().mean()
    torch.testing.assert_close(single, whole)  # a window as large as the image is the whole-image pass


def test_images_smaller_than_patch_go_through_one_padded_window():
    net = pixelwise_net(in_channels=1, classes=2)
    images = torch.randn(1, 1, 10, 21)
    calls = []

    def recording(windows):
        calls.append(tuple(windows.shape))
        return net(windows)

    with torch.no_grad():
        out = WindowInferer([32, 32])(recording, images)
        torch.testing.assert_close(out, net(images), atol=1e-5, rtol=1e-5)
    assert calls == [(1, 1, 32, 32)]


def test_window_starts_cover_evenly_and_end_on_the_border():
    assert window_starts(32, 32, 0.5) == [0]
    assert window_starts(100, 32, 0.5) == [0, 14, 27, 41, 54, 68]
    for length, patch, overlap in [(100, 32, 0.25), (257, 64, 0.5), (33, 32, 0.0)]:
        starts = window_starts(length, patch, overlap)
        assert starts[0] == 0 and starts[-1] == length - patch
        assert max(b - a for a, b in zip(starts, starts[1:])) <= patch * (1 - overlap) + 1


def test_gaussian_map_peaks_in_the_centre_and_stays_positive():
    weights = WindowInferer([33, 17], blend="gaussian").importance_map()
    assert weights.shape == (33, 17) and weights.max() == 1.0 and weights[16, 8] == 1.0
    assert weights.min() > 0 and weights[0, 0] < weights[16, 0] < weights[16, 8]
    assert torch.equal(WindowInferer([4, 4], blend="constant").importance_map(), torch.ones(4, 4))
    volume = WindowInferer([9, 9, 5], blend="gaussian").importance_map()
    assert volume.shape == (9, 9, 5) and volume[4, 4, 2] == 1.0
    assert volume.min() == pytest.approx(1e-4) and volume[0, 4, 2] == pytest.approx(math.exp(-0.5 * (4 / 1.125) ** 2))


def test_gaussian_blending_weights_window_centres():
    """A net that outputs its window's index shows the blend: each pixel leans to the window it is central in."""
    inferer = WindowInferer([16, 16], overlap=0.5, blend="gaussian", batch_size=1)
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


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(patch_size=[8, 8], overlap=1.0), r"WindowInferer\.overlap must be in \[0, 1\), got 1.0"),
    (dict(patch_size=[8, 8], blend="mean"),
     r"WindowInferer\.blend must be one of \('gaussian', 'constant'\), got 'mean'"),
    (dict(patch_size=[8, 8], batch_size=0), r"WindowInferer\.batch_size must be an int >= 1, got 0"),
    (dict(patch_size=[8, 8], whole_input_max_pixels=-1), r"whole_input_max_pixels must be an int >= 0, got -1"),
    (dict(patch_size=[8]), r"patch_size must be 2 or 3 positive ints, got \[8\]"),
    (dict(patch_size=[8, 0, 8]), r"WindowInferer\.patch_size must be 3 positive ints, got \[8, 0, 8\]"),
])
def test_invalid_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WindowInferer(**kwargs)


def test_input_rank_must_match_the_patch():
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\) for a 2-D patch_size, got shape \(3, 8, 8\)"):
        WindowInferer([8, 8])(pixelwise_net(), torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"images must be \(B, C, X, Y, Z\)"):
        WindowInferer([8, 8, 8])(pixelwise_net(), torch.zeros(1, 3, 8, 8))
