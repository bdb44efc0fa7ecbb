"""The detector's input transform under the native-resolution policy (datamodules/resolution.py).

torchvision's ``GeneralizedRCNNTransform`` rescales every image so its shorter side reaches
``min_size`` — it upscales small images. :class:`NativeResolutionTransform` keeps its normalising,
batching (zero padding at the bottom/right to a multiple of 32) and its mapping of detections back
to the input size, and replaces only the resize: an image is downscaled when its longer side exceeds
``max_size`` and otherwise left as it is.
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes


class NativeResolutionTransform(GeneralizedRCNNTransform):
    """Normalise with ``image_mean``/``image_std``, downscale images longer than ``max_size`` (never
    upscale), pad batches; ``postprocess`` maps boxes back to each input image's pixels."""

    def __init__(self, max_size: int, image_mean: Sequence[float], image_std: Sequence[float]) -> None:
        super().__init__(min_size=int(max_size), max_size=int(max_size), image_mean=list(image_mean),
                         image_std=list(image_std), size_divisible=32)

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor] | None]:
        height, width = image.shape[-2:]
        factor = min(1.0, self.max_size / max(height, width))
        if factor == 1.0:
            return image, target
        image = F.interpolate(image[None], scale_factor=factor, mode="bilinear", recompute_scale_factor=True,
                              align_corners=False, antialias=True)[0]
        if target is not None:
            target["boxes"] = resize_boxes(target["boxes"], (height, width), tuple(image.shape[-2:]))
        return image, target
