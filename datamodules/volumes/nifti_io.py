"""Reading NIfTI volumes with nibabel: arrays in file voxel order, spacing and affine from the header.

Images come back as ``(C, X, Y, Z)``: a 3-D file is one channel; a 4-D file ``(X, Y, Z, C)`` (the
Decathlon's multi-modal layout, e.g. BraTS FLAIR/T1w/T1gd/T2w) gives its ``C`` channels, and so does
a 5-D ``(X, Y, Z, 1, C)`` file (the NIfTI convention for vector data). Labels must be 3-D (a 4-D label
with a last axis of 1 is squeezed). Values keep the stored dtype (after the header's scaling, if any).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

NIFTI_SUFFIXES = (".nii.gz", ".nii")


class VolumeReadError(ValueError):
    """A file that is not a readable NIfTI volume of an accepted shape (the message names the file)."""


@dataclass
class NiftiVolume:
    """``array``: ``(C, X, Y, Z)`` for images, ``(X, Y, Z)`` for labels; ``spacing`` mm per axis."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray


def nifti_stem(path: Path) -> str | None:
    """``case_001.nii.gz`` → ``case_001``; ``None`` when the name has no NIfTI suffix."""
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return None


def _load(path: Path) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    try:
        image = nib.load(str(path))
        array = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel raises many types for truncated or foreign files
        raise VolumeReadError(f"{path}: not a readable NIfTI file ({type(error).__name__}: {error})") from None
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    if len(zooms) < 3 or min(zooms) <= 0:
        raise VolumeReadError(f"{path}: header voxel spacing {zooms} is not three positive values")
    return np.asarray(array), zooms, np.asarray(image.affine, dtype=np.float64)


def read_image(path: Path) -> NiftiVolume:
    """An image as ``(C, X, Y, Z)`` (see the module docstring)."""
    array, spacing, affine = _load(path)
    if array.ndim == 5 and array.shape[3] == 1:
        array = array[:, :, :, 0, :]
    if array.ndim == 3:
        array = array[None]
    elif array.ndim == 4:
        array = np.moveaxis(array, -1, 0)
    else:
        raise VolumeReadError(f"{path}: image of shape {array.shape}; expected 3-D (X, Y, Z) or multi-modal "
                              "4-D (X, Y, Z, C)")
    if array.dtype.kind not in "biuf":
        raise VolumeReadError(f"{path}: image dtype {array.dtype} is not numeric")
    return NiftiVolume(array, spacing, affine)


def read_labels(path: Path) -> NiftiVolume:
    """A label map as ``(X, Y, Z)`` in its stored dtype (float labels are checked by the caller)."""
    array, spacing, affine = _load(path)
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise VolumeReadError(f"{path}: label map of shape {array.shape}; expected 3-D (X, Y, Z), one class id per voxel")
    if array.dtype.kind not in "biuf":
        raise VolumeReadError(f"{path}: label dtype {array.dtype} is not numeric")
    return NiftiVolume(array, spacing, affine)


def write_nifti(path: Path, array: np.ndarray, spacing: tuple[float, ...], affine: np.ndarray | None = None) -> None:
    """Save ``array`` (``(X, Y, Z)`` or ``(X, Y, Z, C)``, dtype kept) with ``spacing`` (mm) in the header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if affine is None:
        affine = np.diag([*spacing, 1.0])
    image = nib.Nifti1Image(array, affine)
    image.header.set_zooms(tuple(spacing) + image.header.get_zooms()[3:])
    nib.save(image, str(path))
