"""The detector's input transform under the native-resolution policy (datamodules/resolution.py).

torchvision's ``GeneralizedRCNNTransform`` rescales every image so its shorter side reaches
``min_size`` — it upscales small images. :class:`NativeResolutionTransform` keeps its normalising,
batching (zero padding at the bottom/right to a multiple of 32) and its mapping of detections back
to the input size, and replaces only the resize: an image is downscaled when its longer side exceeds
``max_size`` and otherwise left as it is. ``image_norm="per_image"`` standardises each image by its own
mean and standard deviation (over pixels and channels, so colour balance is kept) instead of the
fixed ``image_mean``/``image_std`` — for data whose images differ in brightness and contrast (microscopy
modalities, stains, exposure), as microscopy tools do (Cellpose, StarDist normalise per image).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes


class NativeResolutionTransform(GeneralizedRCNNTransform):
    """Normalise with ``image_mean``/``image_std``, downscale images longer than ``max_size`` (never
    upscale), pad batches; ``postprocess`` maps boxes back to each input image's pixels."""

    IMAGE_NORMS = ("fixed", "per_image")
    MIN_STD = 1e-3  # a constant image stays finite: (x - mean) / max(std, MIN_STD)

    def __init__(self, max_size: int, image_mean: Sequence[float], image_std: Sequence[float],
                 image_norm: str = "fixed") -> None:
        super().__init__(min_size=int(max_size), max_size=int(max_size), image_mean=list(image_mean),
                         image_std=list(image_std), size_divisible=32)
        if image_norm not in self.IMAGE_NORMS:
            raise ValueError(f"detector: image_norm must be one of {self.IMAGE_NORMS}, got {image_norm!r}")
        self.image_norm = image_norm

    def normalize(self, image: Tensor) -> Tensor:
        if self.image_norm == "fixed":
            return super().normalize(image)
        if not image.is_floating_point():
            raise TypeError(f"detector: images must be float in [0, 1], got {image.dtype}")
        return (image - image.mean()) / torch.clamp(image.std(), min=self.MIN_STD)

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
