"""Training augmentation as a ``torchvision.transforms.v2`` pipeline, built from a YAML mapping.

The pipeline is applied *jointly* to everything passed in as tv_tensors: an ``Image``, its ``Mask``
(and a roi ``Mask``), or detection ``BoundingBoxes`` — one random draw moves all of them together.
Geometric steps run first (flips, 90° rotations, affine, elastic), photometric steps last (colour
jitter, blur, noise; these touch only the image). Pixels that a geometric step brings in from
outside the image get ``fill``: 0 for the image and ``mask_fill`` for masks (the ignore index, so
the loss and metrics skip them). Images are float in [0, 1] when the pipeline runs (colour jitter
and noise assume that range); normalisation comes after.

Spec keys (each optional; ``null``, 0 or a missing key turns the step off)::

    hflip: 0.5                      # probability of a horizontal flip
    vflip: 0.5                      # probability of a vertical flip
    rotate90: 0.5                   # probability of a rotation by 90°, 180° or 270° (uniform)
    affine: {p: 0.5, degrees: 15, translate: [0.1, 0.1], scale: [0.8, 1.25], shear: null}
    elastic: {p: 0.2, alpha: 30.0, sigma: 5.0}
    color_jitter: {p: 0.8, brightness: 0.2, contrast: 0.2, saturation: 0.1, hue: 0.0}
    blur: {p: 0.2, sigma: [0.1, 1.5]}
    noise: {p: 0.2, sigma: 0.03}

With ``boxes=True`` a ``SanitizeBoundingBoxes`` step drops boxes that the geometry pushed out of
the image (their ``labels`` go with them).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

_GEOMETRIC = ("hflip", "vflip", "rotate90", "affine", "elastic")
_PHOTOMETRIC = ("color_jitter", "blur", "noise")
SPEC_KEYS = _GEOMETRIC + _PHOTOMETRIC


class RandomRotate90(v2.Transform):
    """With probability ``p``, rotate by k·90° (k uniform in {1, 2, 3}); exact, no interpolation."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        if torch.rand(()) >= self.p:
            return {"angle": 0}
        return {"angle": 90 * int(torch.randint(1, 4, ()))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["angle"] == 0:
            return inpt
        return self._call_kernel(F.rotate, inpt, angle=params["angle"], expand=True)


def build_augment(spec: Mapping[str, Any] | None, mask_fill: int = 0, boxes: bool = False) -> v2.Transform | None:
    """The joint train-time pipeline described by ``spec`` (see the module docstring); ``None`` when
    every step is off. ``mask_fill``: mask value for pixels brought in from outside (the ignore index)."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"augment: unknown keys {unknown}; accepted: {list(SPEC_KEYS)}")
    fill = {tv_tensors.Image: 0.0, tv_tensors.Mask: mask_fill}
    steps: list[v2.Transform] = []
    for key in SPEC_KEYS:
        value = spec.get(key)
        if not value:
            continue
        steps.append(_BUILDERS[key](value, fill))
    if boxes and steps:
        steps.append(v2.SanitizeBoundingBoxes())
    return v2.Compose(steps) if steps else None


def _probability(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"augment.{key}: expected a probability in [0, 1], got {value!r}")
    return float(value)


def _options(key: str, value: Any, accepted: tuple[str, ...]) -> tuple[float, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"augment.{key}: expected a mapping with keys {list(accepted)} (and p), got {value!r}")
    options = dict(value)
    unknown = sorted(set(options) - set(accepted) - {"p"})
    if unknown:
        raise ValueError(f"augment.{key}: unknown keys {unknown}; accepted: {['p', *accepted]}")
    p = _probability(f"{key}.p", options.pop("p", 1.0))
    return p, {name: _as_tuple(item) for name, item in options.items() if item is not None}


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


def _maybe(p: float, transform: v2.Transform) -> v2.Transform:
    return transform if p >= 1.0 else v2.RandomApply([transform], p=p)


def _hflip(value: Any, fill: dict) -> v2.Transform:
    return v2.RandomHorizontalFlip(_probability("hflip", value))


def _vflip(value: Any, fill: dict) -> v2.Transform:
    return v2.RandomVerticalFlip(_probability("vflip", value))


def _rotate90(value: Any, fill: dict) -> v2.Transform:
    return RandomRotate90(_probability("rotate90", value))


def _affine(value: Any, fill: dict) -> v2.Transform:
    p, options = _options("affine", value, ("degrees", "translate", "scale", "shear"))
    options.setdefault("degrees", 0.0)
    return _maybe(p, v2.RandomAffine(**options, interpolation=v2.InterpolationMode.BILINEAR, fill=fill))


def _elastic(value: Any, fill: dict) -> v2.Transform:
    p, options = _options("elastic", value, ("alpha", "sigma"))
    return _maybe(p, v2.ElasticTransform(**options, fill=fill))


def _color_jitter(value: Any, fill: dict) -> v2.Transform:
    p, options = _options("color_jitter", value, ("brightness", "contrast", "saturation", "hue"))
    return _maybe(p, v2.ColorJitter(**options))


def _blur(value: Any, fill: dict) -> v2.Transform:
    p, options = _options("blur", value, ("sigma", "kernel_size"))
    sigma = options.get("sigma", (0.1, 1.5))
    high = max(sigma) if isinstance(sigma, tuple) else sigma
    kernel = options.get("kernel_size", 2 * int(round(3 * high)) + 1)  # ±3σ covers the kernel's mass
    return _maybe(p, v2.GaussianBlur(kernel_size=kernel, sigma=sigma))


def _noise(value: Any, fill: dict) -> v2.Transform:
    p, options = _options("noise", value, ("sigma", "mean"))
    return _maybe(p, v2.GaussianNoise(mean=options.get("mean", 0.0), sigma=options.get("sigma", 0.03), clip=True))


_BUILDERS: dict[str, Callable[[Any, dict], v2.Transform]] = {
    "hflip": _hflip, "vflip": _vflip, "rotate90": _rotate90, "affine": _affine, "elastic": _elastic,
    "color_jitter": _color_jitter, "blur": _blur, "noise": _noise,
}


def augment_pair(
    transform: v2.Transform | None, image: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` jointly to a float ``(C, H, W)`` image and an integer ``(H, W)`` mask;
    returns plain tensors (identity when ``transform`` is None)."""
    if transform is None:
        return image, mask
    out = transform({"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(mask)})
    return out["image"].as_subclass(torch.Tensor), out["mask"].as_subclass(torch.Tensor)
