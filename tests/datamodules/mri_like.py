"""A Decathlon-layout folder of MRI-like NIfTI volumes, written by the tests (no real data is downloaded).

What real MRI folders contain and this reproduces: anisotropic voxels (about 1 × 1 × 3 mm, the slice
axis last, in-plane spacing jittered per case), field-of-view shapes that differ per case (about
64 × 64 × 40), a head-like ellipsoid of tissue with smooth compartments, a multiplicative bias field,
Rician noise, intensity ranges that differ by orders of magnitude between cases (scanner gain
10^0..10^3), mixed image dtypes (int16, uint16, float32, float64) and label files stored as float64
holding integers (some uint8). Two small foreground structures (a bean-shaped "body", class 1, and
a darker "tail" next to it, class 2) at a varying position and size, about 5 % of the voxels together (1: ~4 %, 2: ~1 %).

``python tests/datamodules/mri_like.py OUT [--cases 30]`` writes a folder for manual runs.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from datamodules.volumes.nifti_io import write_nifti

DTYPES = (np.int16, np.uint16, np.float32, np.float64)


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return field / (field.std() + 1e-8)


def mri_like_case(rng: np.random.Generator, shape: tuple[int, int, int] | None = None,
                  spacing: tuple[float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """``(image float64 (X, Y, Z) in scanner units, labels uint8 (X, Y, Z), spacing mm)``."""
    if shape is None:
        shape = (int(rng.integers(58, 71)), int(rng.integers(58, 71)), int(rng.integers(36, 45)))
    if spacing is None:
        inplane = float(rng.uniform(0.95, 1.05))
        spacing = (inplane, inplane, 3.0)
    mm = np.stack(np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)],
                              indexing="ij"), -1)
    head = ((mm / np.array([30.0, 30.0, 58.0])) ** 2).sum(-1) <= 1.0
    tissue = 1.0 + 0.12 * _smooth(rng, shape, (3.0, 3.0, 1.0))
    # A structure in mm: rotated ellipsoid "body" plus a smaller "tail" continuing along its long axis.
    centre = rng.uniform([-8, -8, -12], [8, 8, 12])
    angle = rng.uniform(0, np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    local = (mm - centre) @ rotation
    size = rng.uniform(0.85, 1.15)
    body_axes = size * np.array([17.0, 11.0, 22.0])
    tail_axes = size * np.array([11.0, 7.0, 15.0])
    wobble = 0.08 * _smooth(rng, shape, (2.0, 2.0, 1.0))
    body = ((local / body_axes) ** 2).sum(-1) + wobble <= 1.0
    tail_local = local - np.array([size * 22.0, 0.0, 0.0])
    tail = (((tail_local / tail_axes) ** 2).sum(-1) + wobble <= 1.0) & ~body
    labels = np.zeros(shape, dtype=np.uint8)
    labels[body & head] = 1
    labels[tail & head] = 2
    clean = np.where(head, tissue, 0.05)
    clean = np.where(labels == 1, 1.45 + 0.08 * _smooth(rng, shape, (2, 2, 1)), clean)
    clean = np.where(labels == 2, 0.65 + 0.06 * _smooth(rng, shape, (2, 2, 1)), clean)
    clean = ndimage.gaussian_filter(clean, (0.7, 0.7, 0.4))  # partial volume, thicker slices
    clean *= np.exp(0.25 * _smooth(rng, shape, (12.0, 12.0, 4.0)))  # bias field
    sigma = 0.07
    image = np.sqrt((clean + sigma * rng.standard_normal(shape)) ** 2 + (sigma * rng.standard_normal(shape)) ** 2)
    return image, labels, spacing


def write_mri_like_folder(root: Path, cases: int = 30, seed: int = 0, shape: tuple[int, int, int] | None = None,
                          dataset_json: bool = True) -> Path:
    """Write ``cases`` cases to ``root/imagesTr`` + ``root/labelsTr`` (+ ``dataset.json``); returns ``root``."""
    rng = np.random.default_rng(seed)
    for folder in ("imagesTr", "labelsTr"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for k in range(cases):
        image, labels, spacing = mri_like_case(rng, shape)
        gain = 10 ** rng.uniform(0, 3)
        dtype = DTYPES[k % len(DTYPES)]
        stored = image * gain
        if np.issubdtype(dtype, np.integer):
            stored = np.clip(np.round(stored / max(stored.max() / 30000, 1.0)), 0, np.iinfo(dtype).max)
        affine = np.diag([*spacing, 1.0])
        affine[:3, 3] = rng.uniform(-100, 100, size=3)
        name = f"mri_{k:03d}"
        write_nifti(root / "imagesTr" / f"{name}.nii.gz", stored.astype(dtype), spacing, affine)
        label_dtype = np.uint8 if k % 5 == 4 else np.float64
        write_nifti(root / "labelsTr" / f"{name}.nii.gz", labels.astype(label_dtype), spacing, affine)
    if dataset_json:
        meta = {"name": "MRILike", "modality": {"0": "MRI"},
                "labels": {"0": "background", "1": "body", "2": "tail"}, "numTraining": cases,
                "training": [{"image": f"./imagesTr/mri_{k:03d}.nii.gz", "label": f"./labelsTr/mri_{k:03d}.nii.gz"}
                             for k in range(cases)]}
        (root / "dataset.json").write_text(json.dumps(meta, indent=2))
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_mri_like_folder(args.out, args.cases, args.seed))
