"""Whole-volume inference for 3-D nets trained on patches: MONAI's sliding window, or one pass.

``VolumeInferer(net, images) -> logits`` for ``images`` ``(B, C, X, Y, Z)``:

- volumes of at most ``whole_volume_max_voxels`` voxels go through ``net`` whole, the batch at once,
  zero-padded at the far end to a multiple of ``divisible`` per axis and cropped back;
- larger ones through :class:`monai.inferers.SlidingWindowInferer`: windows of ``patch_size``
  overlapping by ``overlap``, blended with Gaussian weights (``mode="gaussian"``, σ = ``sigma_scale``
  · window, nnU-Net's importance map) or plainly averaged (``"constant"``), ``sw_batch_size`` windows
  per forward pass; volumes smaller than a window are padded by MONAI and cropped back.
"""
from __future__ import annotations

import math
from typing import Sequence

from monai.inferers import SlidingWindowInferer
from torch import Tensor, nn


class VolumeInferer:
    """See the module docstring."""

    def __init__(self, patch_size: Sequence[int], overlap: float = 0.25, mode: str = "gaussian",
                 sigma_scale: float = 0.125, sw_batch_size: int = 2, whole_volume_max_voxels: int = 0,
                 divisible: int = 8) -> None:
        if len(patch_size) != 3 or min(patch_size) < 1:
            raise ValueError(f"VolumeInferer: patch_size must be three positive ints, got {list(patch_size)}")
        if whole_volume_max_voxels < 0 or divisible < 1:
            raise ValueError(f"VolumeInferer: whole_volume_max_voxels must be >= 0 and divisible >= 1, got "
                             f"{whole_volume_max_voxels} and {divisible}")
        self.window = SlidingWindowInferer(roi_size=[int(r) for r in patch_size], sw_batch_size=int(sw_batch_size),
                                           overlap=float(overlap), mode=mode, sigma_scale=float(sigma_scale))
        self.whole_volume_max_voxels = int(whole_volume_max_voxels)
        self.divisible = int(divisible)

    def __repr__(self) -> str:
        w = self.window
        return (f"VolumeInferer(patch_size={list(w.roi_size)}, overlap={w.overlap}, mode={w.mode!r}, "
                f"whole_volume_max_voxels={self.whole_volume_max_voxels})")

    def __call__(self, net: nn.Module, images: Tensor) -> Tensor:
        if images.ndim != 5:
            raise ValueError(f"VolumeInferer: images must be (B, C, X, Y, Z), got shape {tuple(images.shape)}")
        spatial = images.shape[2:]
        if math.prod(spatial) <= self.whole_volume_max_voxels:
            padded = [math.ceil(s / self.divisible) * self.divisible for s in spatial]
            pad = [p for s, full in reversed(list(zip(spatial, padded))) for p in (0, full - s)]
            logits = net(nn.functional.pad(images, pad) if any(pad) else images)
            return logits[:, :, :spatial[0], :spatial[1], :spatial[2]]
        return self.window(images, net)

