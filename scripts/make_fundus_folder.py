"""Write a retinal-fundus-like folder dataset in the file formats public fundus sets ship.

    python scripts/make_fundus_folder.py --out data/fundus [--images 20 --seed 0]

Like DRIVE / STARE / CHASE: ``images/<stem>.tif`` RGB, LZW-compressed with a predictor;
``masks/<stem>.gif`` vessel masks in 0/255 (GIF, a palette format); ``roi/<stem>.gif`` the circular
field of view in 0/255. Images are 256–584 px per side: an orange-red fundus with vignetting, a
bright optic disc and a dark macula inside a circular field of view (black outside), and a vessel
tree branching out of the disc — vessels 1–4 px wide, thinner and fainter at each branching, 2–6 % of
the field of view (DRIVE's manual vessels: ~12 %, most of them 1–3 px). Then:

    python train.py datamodule=folder datamodule.root=data/fundus datamodule.num_classes=2
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage


def vessel_tree(height: int, width: int, disc: tuple[float, float], fov: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Vessel width in px per pixel (0 = background): random-walk branches leaving the optic disc."""
    widths = np.zeros((height, width), dtype=np.float32)
    scale = min(height, width) / 584
    stack = [(disc[0], disc[1], angle, 4.0) for angle in rng.uniform(0, 2 * np.pi, int(rng.integers(5, 8)))]
    while stack:
        y, x, angle, width_px = stack.pop()
        for step in range(int(rng.integers(60, 160) * scale) + 20):
            angle += rng.normal(0, 0.08)
            y, x = y + np.sin(angle), x + np.cos(angle)
            if not (0 <= y < height and 0 <= x < width) or not fov[int(y), int(x)]:
                break
            widths[int(y), int(x)] = max(widths[int(y), int(x)], width_px)
            if step > 15 and width_px > 1 and rng.random() < 0.02:
                child = max(1.0, width_px - 1)
                stack.append((y, x, angle + rng.choice([-1, 1]) * rng.uniform(0.4, 0.9), child))
                width_px = max(1.0, width_px - 0.5)
    vessels = np.zeros_like(widths)
    for width_px in (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0):
        centre = widths == width_px
        radius = (width_px - 1) / 2
        if radius > 0:
            size = 2 * int(np.ceil(radius)) + 1
            offsets = np.mgrid[:size, :size] - size // 2
            centre = ndimage.binary_dilation(centre, (offsets ** 2).sum(0) <= radius ** 2 + 0.25)
        vessels = np.maximum(vessels, centre * width_px)
    return vessels * fov


def fundus_sample(index: int, seed: int, sizes: tuple[int, int] = (256, 584)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image (H, W, 3) uint8, vessel mask (H, W) uint8 0/255, field of view (H, W) uint8 0/255)``."""
    rng = np.random.default_rng([seed, index])
    height, width = (int(v) for v in rng.integers(sizes[0], sizes[1] + 1, size=2))
    rows, cols = np.mgrid[:height, :width].astype(np.float32)
    cy, cx = height / 2, width / 2
    radius = 0.47 * min(height, width)
    dist = np.sqrt((rows - cy) ** 2 + (cols - cx) ** 2) / radius
    fov = dist <= 1
    side = rng.choice([-1, 1])
    disc = (cy + rng.uniform(-0.1, 0.1) * radius, cx + side * rng.uniform(0.35, 0.5) * radius)
    macula = (cy, cx - side * 0.15 * radius)
    disc_r = 0.13 * radius
    disc_d = np.sqrt((rows - disc[0]) ** 2 + (cols - disc[1]) ** 2) / disc_r
    mac_d = np.sqrt((rows - macula[0]) ** 2 + (cols - macula[1]) ** 2) / (0.25 * radius)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)), 12)
    brightness = (0.9 - 0.35 * dist ** 2 + 0.5 * texture / (np.abs(texture).max() + 1e-9) * 0.15
                  + 0.45 * np.exp(-disc_d ** 2) - 0.2 * np.exp(-mac_d ** 2))
    colour = np.array([0.85, 0.38, 0.16])  # orange-red fundus
    image = brightness[..., None] * colour + np.exp(-disc_d ** 2)[..., None] * np.array([0.1, 0.35, 0.25])
    vessels = vessel_tree(height, width, disc, fov, rng)
    contrast = np.clip(0.12 + 0.08 * vessels, 0, 0.45) * (vessels > 0)  # thin vessels are faint
    image = image * (1 - contrast[..., None] * np.array([0.9, 1.4, 1.2]))
    image = ndimage.gaussian_filter(image, (0.8, 0.8, 0)) + rng.normal(0, 0.025, image.shape)
    image[~fov] = 0.01
    to_u8 = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    return to_u8, ((vessels > 0) * 255).astype(np.uint8), (fov * 255).astype(np.uint8)


def write_fundus_folder(root: Path, images: int, seed: int = 0, sizes: tuple[int, int] = (256, 584)) -> list[str]:
    """``root/images/*.tif`` (LZW RGB), ``root/masks/*.gif`` and ``root/roi/*.gif`` (0/255); returns the stems."""
    for name in ("images", "masks", "roi"):
        (root / name).mkdir(parents=True, exist_ok=True)
    stems = []
    for index in range(images):
        image, mask, fov = fundus_sample(index, seed, sizes)
        stem = f"{index + 1:02d}_fundus"
        tifffile.imwrite(root / "images" / f"{stem}.tif", image, photometric="rgb", compression="lzw", predictor=True)
        Image.fromarray(mask).save(root / "masks" / f"{stem}.gif")
        Image.fromarray(fov).save(root / "roi" / f"{stem}.gif")
        stems.append(stem)
    return stems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/fundus"))
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_fundus_folder(args.out, args.images, args.seed)
    print(f"wrote {args.images} samples to {args.out}")


if __name__ == "__main__":
    main()
