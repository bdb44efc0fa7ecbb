"""Write a worked-example folder dataset for ``datamodule=folder`` (nothing is downloaded).

    python scripts/make_example_folder.py --out data/example_folder [--images 16 --seed 0]

Large images of differing sizes (256–640 px per side) in the contract layout: ``images/*.png``
(RGB, fundus-like), ``masks/*.png`` (0 background, 1 vessel — thin 1–2 px curves, 2 nucleus —
small discs of radius 2–4 px), ``roi/*.png`` (a circular field of view; outside it pixels are
ignored). Foreground is a few percent of the pixels and nuclei are rare: exactly the case that
patch training with foreground oversampling and sliding-window evaluation are for. Then:

    python scripts/dataset_stats.py datamodule=folder datamodule.root=data/example_folder datamodule.num_classes=3
    python train.py datamodule=folder datamodule.root=data/example_folder datamodule.num_classes=3 loss=dice_focal
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage


def vessel_tree(height: int, width: int, rng: np.random.Generator, count: int) -> np.ndarray:
    """Boolean mask of ``count`` smooth random-walk curves, 1–2 px thick."""
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(count):
        y, x = rng.uniform(0, height), rng.uniform(0, width)
        angle = rng.uniform(0, 2 * np.pi)
        thick = rng.random() < 0.4
        for _ in range(int(rng.integers(150, 500))):
            angle += rng.normal(0, 0.12)
            y, x = y + np.sin(angle), x + np.cos(angle)
            if not (0 <= y < height - 1 and 0 <= x < width - 1):
                break
            mask[int(y), int(x)] = True
            if thick:
                mask[int(y) + 1, int(x)] = True
    return mask


def nuclei(height: int, width: int, rng: np.random.Generator, count: int) -> np.ndarray:
    """Boolean mask of ``count`` discs of radius 2–4 px."""
    rows, cols = np.mgrid[:height, :width]
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(count):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(2, 4)
        top, left = max(int(cy - r) - 1, 0), max(int(cx - r) - 1, 0)
        window = (slice(top, int(cy + r) + 2), slice(left, int(cx + r) + 2))
        mask[window] |= (rows[window] - cy) ** 2 + (cols[window] - cx) ** 2 <= r * r
    return mask


def sample(index: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, index])
    height, width = (int(v) for v in rng.integers(256, 641, size=2))
    rows, cols = np.mgrid[:height, :width]
    radius = 0.48 * min(height, width)
    roi = (rows - height / 2) ** 2 + (cols - width / 2) ** 2 <= radius**2
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[vessel_tree(height, width, rng, count=int(rng.integers(6, 14)))] = 1
    mask[nuclei(height, width, rng, count=int(rng.integers(3, 12)))] = 2
    shading = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)), sigma=25)
    shading = 0.5 + 0.15 * shading / (np.abs(shading).max() + 1e-9)
    base = np.stack([shading * 0.95, shading * 0.45, shading * 0.25], axis=-1)
    base[mask == 1] *= np.array([0.55, 0.45, 0.5])  # vessels: darker red
    base[mask == 2] = np.array([0.9, 0.85, 0.55])  # nuclei: bright yellowish spots
    base = ndimage.gaussian_filter(base, sigma=(0.7, 0.7, 0)) + rng.normal(0, 0.03, base.shape)
    base[~roi] = 0.02  # dark outside the field of view
    image = (np.clip(base, 0, 1) * 255).astype(np.uint8)
    return image, mask, roi.astype(np.uint8) * 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/example_folder"))
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("images", "masks", "roi"):
        (args.out / name).mkdir(parents=True, exist_ok=True)
    for index in range(args.images):
        image, mask, roi = sample(index, args.seed)
        stem = f"eye{index:03d}"
        Image.fromarray(image).save(args.out / "images" / f"{stem}.png")
        Image.fromarray(mask).save(args.out / "masks" / f"{stem}.png")
        Image.fromarray(roi).save(args.out / "roi" / f"{stem}.png")
    print(f"wrote {args.images} samples to {args.out}")


if __name__ == "__main__":
    main()
