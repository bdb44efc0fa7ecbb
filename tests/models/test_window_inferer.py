"""The volume inferer: whole-volume and sliding-window passes agree, and the whole pass pads to the net's stride."""
from __future__ import annotations

import pytest
import torch

from models.window_inferer import VolumeInferer


def test_volume_inferer_whole_pass_and_sliding_window_agree_for_a_pointwise_net():
    torch.manual_seed(0)
    net = torch.nn.Conv3d(1, 3, kernel_size=1)
    images = torch.randn(2, 1, 20, 18, 10)
    with torch.no_grad():
        direct = net(images)
        whole = VolumeInferer([8, 8, 8], whole_volume_max_voxels=10_000)(net, images)
        windows = VolumeInferer([8, 8, 8], overlap=0.5, mode="gaussian", whole_volume_max_voxels=0)(net, images)
    assert whole.shape == windows.shape == direct.shape
    assert torch.allclose(whole, direct, atol=1e-5) and torch.allclose(windows, direct, atol=1e-5)


def test_whole_pass_pads_to_a_multiple_of_the_net_stride():
    seen = []

    def net(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape[2:]))
        return x.repeat(1, 2, 1, 1, 1)

    out = VolumeInferer([8, 8, 8], whole_volume_max_voxels=10_000, divisible=8)(net, torch.ones(1, 1, 10, 8, 3))
    assert seen == [(16, 8, 8)] and out.shape == (1, 2, 10, 8, 3)
    with pytest.raises(ValueError, match="patch_size"):
        VolumeInferer([8, 8])
