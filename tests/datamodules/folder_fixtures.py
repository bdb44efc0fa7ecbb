"""Writers for the tiny on-disk datasets of the folder / torchvision-set / stats tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def write_array(path: Path, array: np.ndarray, mode: str | None = None, palette: bool = False) -> Path:
    """Write ``array`` to ``path`` (format from the suffix; TIFF via tifffile, the rest via PIL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        tifffile.imwrite(path, array)
        return path
    image = Image.fromarray(array, mode=mode) if mode else Image.fromarray(array)
    if palette:
        image = image.convert("P") if image.mode != "P" else image
        image.putpalette([v for k in range(256) for v in (k * 7 % 256, k * 13 % 256, k * 29 % 256)])
    image.save(path)
    return path


def blob_mask(height: int, width: int, rng: np.random.Generator, num_classes: int = 2, blobs: int = 3) -> np.ndarray:
    """A uint8 class mask with a few small rectangles of classes 1..num_classes-1 on background 0."""
    mask = np.zeros((height, width), dtype=np.uint8)
    for k in range(blobs):
        c = 1 + k % (num_classes - 1)
        top, left = int(rng.integers(0, max(height - 4, 1))), int(rng.integers(0, max(width - 4, 1)))
        mask[top:top + int(rng.integers(1, 5)), left:left + int(rng.integers(1, 5))] = c
    return mask


def make_folder(
    root: Path,
    sizes: list[tuple[int, int]],
    image_suffix: str = ".png",
    mask_suffix: str = ".png",
    channels: int = 3,
    num_classes: int = 2,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``root/images`` + ``root/masks`` with one sample per size; returns ``{stem: (image, mask)}`` as written."""
    rng = np.random.default_rng(seed)
    written = {}
    for k, (height, width) in enumerate(sizes):
        stem = f"img{k:02d}"
        shape = (height, width) if channels == 1 else (height, width, channels)
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        mask = blob_mask(height, width, rng, num_classes)
        write_array(root / "images" / f"{stem}{image_suffix}", image)
        write_array(root / "masks" / f"{stem}{mask_suffix}", mask)
        written[stem] = (image, mask)
    return written
