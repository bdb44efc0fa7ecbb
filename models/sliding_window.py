"""Sliding-window inference: logits for whole images of any size from a net trained on patches.

Windows of ``patch_size`` tile the image with overlap ``overlap`` (fraction of the patch): along an
axis of length ``L >= p`` there are ``n = ceil((L - p) / (p·(1 - overlap))) + 1`` windows whose starts
are spread evenly from 0 to ``L - p`` (as nnU-Net does), so the last window ends on the border.
Window logits are blended as a weighted mean, ``out(x) = Σ_w g_w(x)·logits_w(x) / Σ_w g_w(x)``:

- ``blend="constant"``: ``g = 1`` (plain average of the overlapping windows),
- ``blend="gaussian"``: ``g`` is a Gaussian centred on the window, ``σ = sigma_scale · patch`` per
  axis, scaled to a maximum of 1 — centre pixels, which saw the most context, count most, and the
  seams between windows disappear (nnU-Net's importance map).

Images smaller than the patch along an axis are padded symmetrically with ``pad_value`` (0, the
normalised mean) up to the patch size and the padding is cropped off the output, so the logits
always have the input's spatial size.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

BLEND_MODES = ("gaussian", "constant")


class SlidingWindowInferer:
    """``inferer(net, images) -> logits``: ``images`` ``(B, C, H, W)`` → ``(B, K, H, W)``.

    ``batch_size`` windows (per image in the batch) go through ``net`` per forward call."""

    def __init__(
        self,
        patch_size: Sequence[int],
        overlap: float = 0.5,
        blend: str = "gaussian",
        sigma_scale: float = 0.125,
        batch_size: int = 4,
        pad_value: float = 0.0,
    ) -> None:
        patch = tuple(int(v) for v in patch_size)
        if len(patch) != 2 or min(patch) < 1:
            raise ValueError(f"SlidingWindowInferer: patch_size must be two positive ints (H, W), got {list(patch_size)}")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"SlidingWindowInferer: overlap must be in [0, 1), got {overlap}")
        if blend not in BLEND_MODES:
            raise ValueError(f"SlidingWindowInferer: blend must be one of {BLEND_MODES}, got {blend!r}")
        if sigma_scale <= 0:
            raise ValueError(f"SlidingWindowInferer: sigma_scale must be > 0, got {sigma_scale}")
        if batch_size < 1:
            raise ValueError(f"SlidingWindowInferer: batch_size must be >= 1, got {batch_size}")
        self.patch_size = patch
        self.overlap = float(overlap)
        self.blend = blend
        self.sigma_scale = float(sigma_scale)
        self.batch_size = int(batch_size)
        self.pad_value = float(pad_value)

    def __repr__(self) -> str:
        return (f"SlidingWindowInferer(patch_size={list(self.patch_size)}, overlap={self.overlap}, "
                f"blend={self.blend!r}, batch_size={self.batch_size})")

    def __call__(self, net: nn.Module, images: Tensor) -> Tensor:
        if images.ndim != 4:
            raise ValueError(f"SlidingWindowInferer: images must be (B, C, H, W), got shape {tuple(images.shape)}")
        height, width = images.shape[-2:]
        ph, pw = self.patch_size
        pad_h, pad_w = max(ph - height, 0), max(pw - width, 0)
        padded = nn.functional.pad(
            images, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=self.pad_value
        ) if pad_h or pad_w else images
        full_h, full_w = padded.shape[-2:]
        starts = [(top, left) for top in window_starts(full_h, ph, self.overlap)
                  for left in window_starts(full_w, pw, self.overlap)]
        weight = self.importance_map(images.device)
        batch = images.shape[0]
        out: Tensor | None = None
        norm = torch.zeros((1, 1, full_h, full_w), dtype=torch.float32, device=images.device)
        for first in range(0, len(starts), self.batch_size):
            group = starts[first:first + self.batch_size]
            windows = torch.cat([padded[:, :, t:t + ph, l:l + pw] for t, l in group])
            logits = net(windows).float()
            if out is None:
                out = torch.zeros((batch, logits.shape[1], full_h, full_w), dtype=torch.float32, device=images.device)
            for k, (t, l) in enumerate(group):
                out[:, :, t:t + ph, l:l + pw] += weight * logits[k * batch:(k + 1) * batch]
                norm[:, :, t:t + ph, l:l + pw] += weight
        out = out / norm
        top, left = pad_h // 2, pad_w // 2
        return out[:, :, top:top + height, left:left + width]

    def importance_map(self, device: torch.device | str = "cpu") -> Tensor:
        """The per-pixel window weight ``g`` of shape ``(H, W)`` (max 1, strictly positive)."""
        ph, pw = self.patch_size
        if self.blend == "constant":
            return torch.ones((ph, pw), device=device)
        axes = []
        for size in (ph, pw):
            coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
            sigma = self.sigma_scale * size
            axes.append(torch.exp(-0.5 * (coords / sigma) ** 2))
        gauss = axes[0][:, None] * axes[1][None, :]
        gauss = gauss / gauss.max()
        # Far corners of a large window underflow towards 0; a floor keeps Σ g > 0 everywhere.
        return gauss.clamp_min(1e-4).float()


def window_starts(length: int, patch: int, overlap: float) -> list[int]:
    """Evenly spread window starts covering ``[0, length)`` with windows of ``patch`` (``length >= patch``)."""
    if length <= patch:
        return [0]
    stride = max(patch * (1.0 - overlap), 1.0)
    count = math.ceil((length - patch) / stride) + 1
    span = length - patch
    return sorted({round(k * span / (count - 1)) for k in range(count)})
