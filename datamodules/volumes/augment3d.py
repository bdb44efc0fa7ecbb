"""3-D training augmentation of an image patch ``(C, X, Y, Z)`` and its labels ``(X, Y, Z)``, jointly.

Spatial (image and labels alike): a flip along each axis with probability ``flip`` (per axis), and
with probability ``rotate90`` an in-plane rotation by k·90°, k uniform in {1, 2, 3}, in the X–Y plane
(only when the patch is square in-plane; the slice axis Z is never rotated into the plane because its
spacing usually differs). Intensity (image only, after normalisation): with probability ``intensity.p``
``x · s + b`` with ``s`` uniform in ``1 ± scale`` and ``b`` uniform in ``± shift``, then Gaussian noise
of std ``noise_std`` with probability ``noise_p``. Random numbers come from torch's generator, which
Lightning seeds per worker.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor


@dataclass(frozen=True)
class Augment3D:
    """The 3-D augmentation settings; see the module docstring. All probabilities in [0, 1]."""

    flip: float = 0.5
    rotate90: float = 0.5
    intensity_p: float = 0.5
    scale: float = 0.1
    shift: float = 0.1
    noise_p: float = 0.15
    noise_std: float = 0.05

    def __post_init__(self) -> None:
        for name in ("flip", "rotate90", "intensity_p", "noise_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} must be a probability in [0, 1], got {value!r}")
        for name in ("scale", "shift", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"augment.{name} must be >= 0, got {getattr(self, name)!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> "Augment3D | None":
        """``None`` or an empty mapping: no augmentation; else the mapping's keys override the defaults."""
        if not config:
            return None
        unknown = set(config) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"augment: unknown key(s) {sorted(unknown)}; accepted: {sorted(cls.__dataclass_fields__)}")
        return cls(**{k: float(v) for k, v in config.items()})

    def __call__(self, image: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        for axis in range(3):
            if torch.rand(()) < self.flip:
                image, labels = image.flip(axis + 1), labels.flip(axis)
        if labels.shape[0] == labels.shape[1] and torch.rand(()) < self.rotate90:
            k = int(torch.randint(1, 4, ()))
            image, labels = image.rot90(k, (1, 2)), labels.rot90(k, (0, 1))
        if torch.rand(()) < self.intensity_p:
            scale = 1.0 + (2 * torch.rand(()) - 1) * self.scale
            shift = (2 * torch.rand(()) - 1) * self.shift
            image = image * scale + shift
        if self.noise_std > 0 and torch.rand(()) < self.noise_p:
            image = image + torch.randn_like(image) * self.noise_std
        return image.contiguous(), labels.contiguous()
