"""Reading images and label masks from disk, in every format the data layouts accept.

Images come back as numpy arrays ``(H, W, C)`` with ``C`` 1 (grayscale) or 3 (RGB) and their stored
dtype (``uint8``, ``uint16`` or ``float32``): alpha channels are dropped, palette images are expanded
to RGB, 1-bit images become 0/255. ``to_float_tensor`` turns them into float32 ``(C, H, W)`` tensors
in [0, 1] (integer images are divided by their dtype's maximum: 255 or 65535).

Masks come back as integer arrays ``(H, W)`` of the stored values: palette masks as palette
*indices* (the colours are ignored), 1-bit masks as 0/1. Masks must be lossless (png, tif, gif, bmp);
JPEG compression changes label values, so a ``.jpg`` mask is an error.

TIFF goes through ``tifffile`` (16-bit RGB and float TIFFs, which PIL cannot read faithfully), every
other format through PIL. Every failure raises :class:`ImageReadError` naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp")
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".gif", ".bmp")
_TIFF_SUFFIXES = (".tif", ".tiff")
_INTEGER_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


class ImageReadError(ValueError):
    """A file could not be read as an image or mask; the message names the file and the reason."""


@dataclass(frozen=True)
class ImageInfo:
    """Header facts of an image file, read without decoding the pixels."""

    height: int
    width: int
    channels: int  # after dropping alpha: 1 or 3


def probe(path: str | Path) -> ImageInfo:
    """Height, width and channel count (1 or 3, alpha not counted) from the file header."""
    path = Path(path)
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                shape = tif.series[0].shape
            height, width, channels = _tiff_layout(shape, path)
            return ImageInfo(height, width, 1 if channels <= 2 else 3)
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
    except (OSError, UnidentifiedImageError, tifffile.TiffFileError, IndexError) as error:
        raise ImageReadError(f"cannot read {path}: {error}") from None
    return ImageInfo(height, width, 1 if mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") else 3)


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` as an ``(H, W, C)`` array, ``C`` in {1, 3}, dtype uint8/uint16/float32."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{path}: unsupported image format {path.suffix!r}; accepted: {', '.join(IMAGE_SUFFIXES)}")
    if path.suffix.lower() in _TIFF_SUFFIXES:
        array = _read_tiff(path)
    else:
        array = _read_pil(path, as_mask=False)
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    if channels == 2:  # gray + alpha
        array = array[:, :, :1]
    elif channels == 4:  # RGB + alpha
        array = array[:, :, :3]
    elif channels not in (1, 3):
        raise ImageReadError(f"{path}: {channels} channels; accepted: 1 (gray), 2 (gray+alpha), 3 (RGB), 4 (RGBA)")
    return _image_dtype(np.ascontiguousarray(array), path)


def read_mask(path: str | Path) -> np.ndarray:
    """The label mask at ``path`` as an integer ``(H, W)`` array of the stored values (palette → indices)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        raise ImageReadError(f"{path}: JPEG masks are not accepted (lossy compression changes label values); "
                             f"save masks as {', '.join(MASK_SUFFIXES)}")
    if suffix not in MASK_SUFFIXES:
        raise ImageReadError(f"{path}: unsupported mask format {suffix!r}; accepted: {', '.join(MASK_SUFFIXES)}")
    array = _read_tiff(path) if suffix in _TIFF_SUFFIXES else _read_pil(path, as_mask=True)
    if array.ndim == 3:
        if array.shape[2] in (2, 4):  # drop alpha
            array = array[:, :, :-1]
        if array.shape[2] == 3 and not (np.array_equal(array[..., 0], array[..., 1])
                                        and np.array_equal(array[..., 0], array[..., 2])):
            raise ImageReadError(f"{path}: colour (RGB) mask; masks must hold one class value per pixel "
                                 "(grayscale, palette or single-channel TIFF)")
        array = array[:, :, 0]
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ImageReadError(f"{path}: floating-point mask with non-integer values; masks must hold class ids")
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iub":
        raise ImageReadError(f"{path}: mask dtype {array.dtype} is not an integer type")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    return np.ascontiguousarray(array)


def to_float_tensor(image: np.ndarray, channels: int | None = None) -> torch.Tensor:
    """``(H, W, C)`` array from :func:`read_image` → float32 ``(C, H, W)`` tensor in [0, 1].

    ``channels=3`` replicates a grayscale image to RGB; ``channels=1`` accepts only grayscale."""
    scale = _INTEGER_SCALE.get(image.dtype, 1.0)
    tensor = torch.from_numpy(image.astype(np.float32, copy=False)).permute(2, 0, 1)
    if scale != 1.0:
        tensor = tensor / scale
    return match_channels(tensor.contiguous(), channels)


def match_channels(tensor: torch.Tensor, channels: int | None) -> torch.Tensor:
    """``(C, H, W)`` with C in {1, 3} → ``channels`` channels (gray replicated to RGB; RGB → gray is refused)."""
    if channels is None or tensor.shape[0] == channels:
        return tensor
    if tensor.shape[0] == 1 and channels == 3:
        return tensor.expand(3, -1, -1).contiguous()
    raise ValueError(f"cannot turn a {tensor.shape[0]}-channel image into {channels} channels "
                     "(RGB images need in_channels=3)")


def image_scale(dtype: np.dtype) -> float:
    """The divisor mapping an image dtype to [0, 1] (255 for uint8, 65535 for uint16, 1 for float)."""
    return _INTEGER_SCALE.get(np.dtype(dtype), 1.0)


def files_by_stem(folder: str | Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """``{stem: path}`` of the files in ``folder`` whose suffix is in ``suffixes`` (case-insensitive).

    Two files with the same stem (``a.png`` and ``a.tif``) are ambiguous and raise ``ValueError``."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in suffixes:
            continue
        if path.stem in found:
            raise ValueError(f"{folder}: two files with stem {path.stem!r} ({found[path.stem].name}, {path.name}); "
                             "keep one per stem")
        found[path.stem] = path
    return found


def _read_pil(path: Path, as_mask: bool) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "P" and as_mask:
                return np.array(image)  # palette indices, not colours
            if mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "PA"):
                image = image.convert("RGB")
            elif mode == "1":
                return np.array(image).astype(np.uint8) * (1 if as_mask else 255)
            elif mode in ("I;16B", "I;16L", "I;16N"):
                image = image.convert("I;16")
            return np.array(image)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"cannot read {path}: {error} (unreadable or corrupt file)") from None


def _read_tiff(path: Path) -> np.ndarray:
    try:
        array = tifffile.imread(path)
    except (OSError, ValueError, tifffile.TiffFileError, IndexError) as error:
        raise ImageReadError(f"cannot read {path}: {error} (unreadable or corrupt file)") from None
    height, width, channels = _tiff_layout(array.shape, path)
    if array.ndim == 3 and array.shape[-1] != channels:  # planar (C, H, W)
        array = np.moveaxis(array, 0, -1)
    return array


def _tiff_layout(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    if len(shape) == 2:
        return shape[0], shape[1], 1
    if len(shape) == 3 and shape[-1] <= 4:
        return shape[0], shape[1], shape[2]
    if len(shape) == 3 and shape[0] <= 4:
        return shape[1], shape[2], shape[0]
    raise ImageReadError(f"{path}: TIFF of shape {tuple(shape)}; accepted: one 2-D plane (H, W) with 1-4 channels")


def _image_dtype(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype in (np.uint8, np.uint16, np.float32):
        return array
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    if array.dtype.kind in "iu" and array.size and 0 <= array.min() and array.max() <= 65535:
        return array.astype(np.uint16)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    raise ImageReadError(f"{path}: image dtype {array.dtype} with values outside 0..65535; "
                         "accepted: 8/16-bit integer or float images")
