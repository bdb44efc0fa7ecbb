"""A COCO-format folder of synthetic cell-like blobs with the size statistics of real microscopy data.

Built to test detection the way a user's data would hit it, not the way ``synthetic_det`` does:
images of different sizes (``image_sides``, default 256–1024 px per side, drawn independently for
width and height), many small objects per image (≈ one per ``px_per_object`` pixels), object sizes
log-normal around ``median_size`` (default 20 px; σ = 0.4 in log space puts ≈ 88 % of the boxes
under 32² px², the COCO "small" bucket), a textured background with uneven illumination, unlabelled
debris and out-of-focus blurs, touching cells, blur and shot-like noise — like fluorescence
microscopy of cells. Grey 8-bit PNGs under ``root/images/``, one ``root/annotations.json`` with one
category (``cell``) unless ``num_classes`` > 1 (then classes differ in brightness and texture).

Deterministic for a given ``seed``; boxes are the tight boxes of each drawn cell's mask.

    python scripts/make_blob_coco.py /tmp/cells              # the full set: 60 images, ≈ 2,900 boxes
    python scripts/make_blob_coco.py /tmp/cells_small --images 6 --sides 96 192
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage


@dataclass(frozen=True)
class BlobSpec:
    """What :func:`write_blob_coco` draws (the defaults are the full measurement set)."""

    images: int = 60
    image_sides: tuple[int, int] = (256, 1024)
    px_per_object: float = 8000.0
    median_size: float = 20.0
    size_sigma: float = 0.4
    size_range: tuple[float, float] = (6.0, 90.0)
    num_classes: int = 1
    debris_share: float = 0.3
    noise_std: float = 0.04
    seed: int = 0


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Uneven illumination + cloudy texture at three scales + fine grain, roughly in [0.05, 0.35]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    tilt = rng.uniform(-1, 1, 2)
    light = 0.15 + 0.06 * (tilt[0] * yy / height + tilt[1] * xx / width)
    texture = np.zeros((height, width), np.float32)
    for sigma, weight in ((40.0, 0.08), (8.0, 0.04), (1.5, 0.02)):
        field = ndimage.gaussian_filter(rng.standard_normal((height, width)).astype(np.float32), sigma)
        texture += weight * field / (field.std() + 1e-6)
    return light + texture


def _cell(rng: np.random.Generator, size: float, brightness: float, textured: bool) -> tuple[np.ndarray, np.ndarray]:
    """One cell as (intensity patch, boolean mask): a rotated ellipse, brighter rim, darker nucleus."""
    aspect = rng.uniform(0.6, 1.0)
    a, b = size / 2 / np.sqrt(aspect), size / 2 * np.sqrt(aspect)  # semi-axes with sqrt(2a·2b) = size
    angle = rng.uniform(0, np.pi)
    half = int(np.ceil(max(a, b))) + 2
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    wobble = 1 + 0.08 * np.sin(3 * np.arctan2(v, u) + rng.uniform(0, 2 * np.pi))
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble
    mask = r <= 1.0
    body = np.clip(1.2 - r, 0, 1) ** 0.5 * (r <= 1.15)
    nucleus = np.exp(-(((u - 0.2 * a) / (0.35 * a)) ** 2 + ((v + 0.1 * b) / (0.35 * b)) ** 2))
    patch = brightness * (0.75 * body + 0.25 * body * (r > 0.7)) - 0.25 * brightness * nucleus * mask
    if textured:
        patch *= 1 + 0.25 * np.sign(np.sin(u * 0.9))
    return patch.astype(np.float32), mask


def _draw_image(rng: np.random.Generator, spec: BlobSpec, height: int, width: int) -> tuple[np.ndarray, list]:
    canvas = _background(rng, height, width)
    occupied = np.zeros((height, width), bool)
    boxes: list[tuple[float, float, float, float, int]] = []
    wanted = rng.poisson(height * width / spec.px_per_object)
    low, high = spec.size_range
    for _ in range(wanted):
        size = float(np.clip(np.exp(rng.normal(np.log(spec.median_size), spec.size_sigma)), low, high))
        label = int(rng.integers(1, spec.num_classes + 1))
        brightness = rng.uniform(0.35, 0.7) * (1.0 if label == 1 else 0.7)
        patch, mask = _cell(rng, size, brightness, textured=label >= 3)
        ph, pw = mask.shape
        if ph >= height or pw >= width:
            continue
        for _attempt in range(5):  # cells may touch but not hide each other
            y0, x0 = int(rng.integers(0, height - ph)), int(rng.integers(0, width - pw))
            if (occupied[y0:y0 + ph, x0:x0 + pw] & mask).sum() <= 0.1 * mask.sum():
                break
        else:
            continue
        region = canvas[y0:y0 + ph, x0:x0 + pw]
        np.maximum(region, region * (1 - mask) + (region + patch) * mask, out=region)
        region += patch * (~mask) * (patch > 0)
        occupied[y0:y0 + ph, x0:x0 + pw] |= mask
        ys, xs = np.nonzero(mask)
        boxes.append((x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1.0, y0 + ys.max() + 1.0, label))
    for _ in range(int(wanted * spec.debris_share)):  # unlabelled: dark specks and out-of-focus haze
        y, x = rng.integers(0, height), rng.integers(0, width)
        radius = rng.uniform(1.5, 4.0) if rng.random() < 0.6 else rng.uniform(15, 40)
        yy, xx = np.ogrid[:height, :width]
        blob = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * radius**2))
        canvas += (-0.12 if radius < 5 else 0.08) * blob
    canvas = ndimage.gaussian_filter(canvas, rng.uniform(0.5, 1.2))
    canvas += spec.noise_std * rng.standard_normal(canvas.shape).astype(np.float32) * np.sqrt(np.clip(canvas, 0.05, 1))
    return np.clip(canvas, 0, 1), boxes


def write_blob_coco(root: str | Path, spec: BlobSpec = BlobSpec()) -> dict[str, Any]:
    """Write ``spec.images`` images and their ``annotations.json`` under ``root``; returns the json."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    images, annotations = [], []
    for image_id in range(1, spec.images + 1):
        height, width = (int(rng.integers(spec.image_sides[0], spec.image_sides[1] + 1)) for _ in range(2))
        pixels, boxes = _draw_image(rng, spec, height, width)
        name = f"cells_{image_id:03d}.png"
        Image.fromarray((pixels * 255).round().astype(np.uint8)).save(root / "images" / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for x1, y1, x2, y2, label in boxes:
            w, h = float(x2 - x1), float(y2 - y1)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": label,
                                "bbox": [float(x1), float(y1), w, h], "area": w * h, "iscrowd": 0})
    names = ["cell"] if spec.num_classes == 1 else [f"cell_{k}" for k in range(1, spec.num_classes + 1)]
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": k, "name": n} for k, n in enumerate(names, start=1)]}
    (root / "annotations.json").write_text(json.dumps(coco))
    return coco
