"""Evaluation inference for nets trained on patches: logits for whole 2-D images and 3-D volumes.

``WindowInferer(net, images) -> logits`` for ``images`` ``(B, C, *S)`` with one spatial size per
axis of ``patch_size`` (``(H, W)`` or ``(X, Y, Z)``); the logits have the input's spatial size.

- **Whole input**: inputs of at most ``whole_input_max_pixels`` pixels (voxels) go through ``net``
  in one pass, the batch at once, zero-padded at the far end of each axis to a multiple of
  ``pad_multiple`` (the net's total down-sampling) and cropped back.
- **Sliding window** otherwise: windows of ``patch_size`` tile the input with overlap ``overlap``
  (share of the window). Along an axis of length ``L >= p`` there are
  ``n = ceil((L - p) / (p·(1 - overlap))) + 1`` windows whose starts are spread evenly from 0 to
  ``L - p`` (nnU-Net's placement), so the last window ends on the border. Window logits are blended
  as a weighted mean, ``out(x) = Σ_w g_w(x)·logits_w(x) / Σ_w g_w(x)``:

  - ``blend="constant"``: ``g = 1`` (plain average of the overlapping windows),
  - ``blend="gaussian"``: ``g`` is a Gaussian centred on the window, ``σ = sigma_scale · patch`` per
    axis, scaled to a maximum of 1 and floored at 1e-4 (nnU-Net's importance map): centre pixels,
    which saw the most context, count most, and the seams between windows disappear.

  An input smaller than the window along an axis is padded symmetrically with ``pad_value`` (0, the
  normalised mean) up to the window and the padding is cropped off the output. ``batch_size``
  windows per image go through ``net`` per forward call.

One inferer serves 2-D and 3-D (the options are :mod:`common.eval_window`'s key set). Until this
release 3-D windows went through MONAI's ``SlidingWindowInferer``, which places windows at a fixed
stride with the last one moved back to the border and floors its Gaussian at 1e-3; the 3-D whole-input
pass, and windows wherever both placements coincide, give the same logits (tests/models/test_inferer.py).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from common.eval_window import BLEND_MODES, WINDOW_DEFAULTS, window_options

__all__ = ["BLEND_MODES", "WindowInferer", "window_starts"]


class WindowInferer:
    """See the module docstring; the arguments are :mod:`common.eval_window`'s keys.

    Example::

        inferer = WindowInferer([128, 128], overlap=0.25, blend="gaussian")
        logits = inferer(net, images)          # images (B, C, H, W) -> (B, K, H, W)
    """

    def __init__(
        self,
        patch_size: Sequence[int],
        overlap: float = WINDOW_DEFAULTS["overlap"],
        blend: str = WINDOW_DEFAULTS["blend"],
        sigma_scale: float = WINDOW_DEFAULTS["sigma_scale"],
        batch_size: int = WINDOW_DEFAULTS["batch_size"],
        whole_input_max_pixels: int = WINDOW_DEFAULTS["whole_input_max_pixels"],
        pad_multiple: int = WINDOW_DEFAULTS["pad_multiple"],
        pad_value: float = 0.0,
    ) -> None:
        if not isinstance(patch_size, Sequence) or isinstance(patch_size, str) or len(patch_size) not in (2, 3):
            raise ValueError(f"WindowInferer: patch_size must be 2 or 3 positive ints, got {patch_size!r}")
        options = window_options("WindowInferer", dict(
            patch_size=patch_size, overlap=overlap, blend=blend, sigma_scale=sigma_scale, batch_size=batch_size,
            whole_input_max_pixels=whole_input_max_pixels, pad_multiple=pad_multiple), len(patch_size))
        self.patch_size = tuple(options["patch_size"])
        self.overlap = options["overlap"]
        self.blend = options["blend"]
        self.sigma_scale = options["sigma_scale"]
        self.batch_size = options["batch_size"]
        self.whole_input_max_pixels = options["whole_input_max_pixels"]
        self.pad_multiple = options["pad_multiple"]
        self.pad_value = float(pad_value)

    def __repr__(self) -> str:
        return (f"WindowInferer(patch_size={list(self.patch_size)}, overlap={self.overlap}, blend={self.blend!r}, "
                f"batch_size={self.batch_size}, whole_input_max_pixels={self.whole_input_max_pixels})")

    def __call__(self, net: nn.Module, images: Tensor) -> Tensor:
        dims = len(self.patch_size)
        if images.ndim != dims + 2:
            axes = "(B, C, H, W)" if dims == 2 else "(B, C, X, Y, Z)"
            raise ValueError(f"WindowInferer: images must be {axes} for a {dims}-D patch_size, "
                             f"got shape {tuple(images.shape)}")
        if math.prod(images.shape[2:]) <= self.whole_input_max_pixels:
            return self._whole(net, images)
        return self._windows(net, images)

    def _whole(self, net: nn.Module, images: Tensor) -> Tensor:
        spatial = images.shape[2:]
        pad = [p for s in reversed(spatial) for p in (0, -s % self.pad_multiple)]
        logits = net(nn.functional.pad(images, pad) if any(pad) else images).float()
        return logits[(..., *(slice(0, s) for s in spatial))]

    def _windows(self, net: nn.Module, images: Tensor) -> Tensor:
        spatial = images.shape[2:]
        short = [max(p - s, 0) for p, s in zip(self.patch_size, spatial)]
        pad = [p for gap in reversed(short) for p in (gap // 2, gap - gap // 2)]
        padded = nn.functional.pad(images, pad, value=self.pad_value) if any(short) else images
        full = padded.shape[2:]
        starts = list(itertools.product(*(window_starts(length, patch, self.overlap)
                                          for length, patch in zip(full, self.patch_size))))
        weight = self.importance_map(images.device)
        batch = images.shape[0]
        out: Tensor | None = None
        norm = torch.zeros((1, 1, *full), dtype=torch.float32, device=images.device)
        for first in range(0, len(starts), self.batch_size):
            regions = [(..., *(slice(s, s + p) for s, p in zip(start, self.patch_size)))
                       for start in starts[first:first + self.batch_size]]
            logits = net(torch.cat([padded[region] for region in regions])).float()
            if out is None:
                out = torch.zeros((batch, logits.shape[1], *full), dtype=torch.float32, device=images.device)
            for k, region in enumerate(regions):
                out[region] += weight * logits[k * batch:(k + 1) * batch]
                norm[region] += weight
        out = out / norm
        return out[(..., *(slice(gap // 2, gap // 2 + s) for gap, s in zip(short, spatial)))]

    def importance_map(self, device: torch.device | str = "cpu") -> Tensor:
        """The per-pixel window weight ``g`` of shape ``patch_size`` (max 1, strictly positive)."""
        if self.blend == "constant":
            return torch.ones(self.patch_size, device=device)
        gauss: Tensor | None = None
        for size in self.patch_size:
            coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
            axis = torch.exp(-0.5 * (coords / (self.sigma_scale * size)) ** 2)
            gauss = axis if gauss is None else gauss[..., None] * axis
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
