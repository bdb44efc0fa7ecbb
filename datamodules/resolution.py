"""The resolution policy for detection images of differing sizes: native pixels up to a cap.

Small objects are what detection on real data is mostly about, so an image is never upscaled (that
only makes every object and the compute bigger) and never squeezed to a fixed side (that shrinks the
objects of large images). The rule, shared by training and evaluation:

- an image whose longer side is at most ``max_size`` keeps its native resolution; batches are
  padded (at the bottom/right, to a multiple of 32) by the detector;
- a larger image is **downscaled** so that its longer side is ``max_size`` (no tiling: the boxes of
  such images shrink by the same factor, which :func:`downscale_factor` reports and the box
  statistics use);
- training reads random ``crop`` × ``crop`` windows of the (capped) native image — a 1024-px image
  then costs what a 384-px one does, and an epoch sees every region over time — optionally at a
  random scale in ``scale_range`` (multi-scale training);
- evaluation sees whole images; the detector applies the same cap and maps its boxes back to the
  original pixels, so metrics (and COCO's area buckets) are in original pixels.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


def downscale_factor(height: int, width: int, max_size: int) -> float:
    """The factor (≤ 1) the policy resizes a ``height`` × ``width`` image by: 1 up to the cap."""
    return min(1.0, float(max_size) / max(int(height), int(width)))


class CapAndScale(v2.Transform):
    """Resize image and boxes by ``downscale_factor(h, w, max_size)`` × a random factor drawn
    log-uniformly from ``scale_range`` (``(1, 1)``: the cap alone)."""

    def __init__(self, max_size: int, scale_range: Sequence[float] = (1.0, 1.0)) -> None:
        super().__init__()
        low, high = (float(s) for s in scale_range)
        if not 0 < low <= high:
            raise ValueError(f"resolution: scale_range must be [low, high] with 0 < low <= high, got {list(scale_range)}")
        self.max_size, self.low, self.high = int(max_size), low, high

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        jitter = math.exp(float(torch.empty(()).uniform_(math.log(self.low), math.log(self.high))))
        factor = downscale_factor(height, width, self.max_size) * jitter
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))], "identity": factor == 1.0}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["identity"]:
            return inpt
        return self._call_kernel(F.resize, inpt, size=params["size"], antialias=True)


def training_resolution(max_size: int, crop: int | None, scale_range: Sequence[float] | None) -> list[v2.Transform]:
    """The policy's training steps (cap and multi-scale, then a random crop), before augmentation."""
    steps: list[v2.Transform] = [CapAndScale(max_size, scale_range or (1.0, 1.0))]
    if crop is not None:
        # Images smaller than the crop are padded to it (the detector pads batches anyway).
        steps.append(v2.RandomCrop(int(crop), pad_if_needed=True, fill={tv_tensors.Image: 0.0, "others": 0}))
    return steps
