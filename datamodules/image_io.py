"""Reading images and label masks from disk, in every format the data layouts accept.

Images come back as numpy arrays ``(H, W, C)`` with ``C`` 1 (grayscale) or 3 (RGB) and their stored
dtype (``uint8``, ``uint16`` or ``float32``). ``to_float_tensor`` turns them into float32 ``(C, H, W)``
tensors in [0, 1]: integer images are divided by their dtype's maximum (255 or 65535), not by the
data's range, so a 12-bit image in a 16-bit file looks dark — ``normalize: auto`` restores the contrast.

Conventions, the same for every format:

- **Alpha is dropped** (RGBA → RGB, gray+alpha → gray), without compositing: datasets store the
  full image under the alpha, and a field-of-view belongs in ``roi/``.
- **Palette images** are expanded to their colours; **palette masks** are read as palette
  *indices* (the VOC convention: index = class) — except when every colour the mask uses is a gray
  level: that palette is only a grayscale lookup (GIF has no other way to store gray, and encoders
  reorder palettes), so the gray level is the value. A GIF vessel mask in 0/255 reads 0/255 whatever
  the index order, and the datamodule maps 0/255 → 0/1.
- **1-bit** images read 0/255, 1-bit masks 0/1; 16-bit PNG and TIFF keep 16 bits (masks up to 65535).
- **Orientation**: the EXIF orientation tag (JPEG from cameras and phones, also PNG/WebP) is applied,
  to images and masks alike, so arrays are what an image viewer — and an annotation tool — shows.
- **TIFF** (through ``tifffile`` + ``imagecodecs``: uncompressed, LZW, deflate/zlib, PackBits,
  JPEG, zstd, LZMA, …; 8/16-bit, float; chunky or planar): one file holds one 2-D image. Smaller
  pages (thumbnails, pyramid levels) are ignored. Several full-size pages are read as channels only
  when the file labels them so (ImageJ/OME axis ``C``, 3 pages for an image); any other stack —
  z-slices, time points, unlabelled pages — is an error, because taking the first page would
  silently drop data. Min-is-white TIFFs are inverted, palette TIFFs expanded; CMYK is refused.
- **GIF/APNG** with several frames are refused (ambiguous like a TIFF stack); JPEG/MPO files read
  their first (main) picture.

Masks are integer arrays ``(H, W)`` of the stored values. Masks must be lossless (png, tif, gif,
bmp): JPEG changes label values, so a ``.jpg`` mask is an error. Every failure raises
:class:`ImageReadError` naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp")
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".gif", ".bmp")
_TIFF_SUFFIXES = (".tif", ".tiff")
_INTEGER_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_EXIF_ORIENTATION = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_MULTI_FRAME_REFUSED = ("GIF", "PNG")  # MPO (phone JPEG + preview/depth) reads its main picture


class ImageReadError(ValueError):
    """A file could not be read as an image or mask; the message names the file and the reason."""


@dataclass(frozen=True)
class ImageInfo:
    """Header facts of an image file, read without decoding the pixels (orientation applied)."""

    height: int
    width: int
    channels: int  # after dropping alpha: 1 or 3


def probe(path: str | Path) -> ImageInfo:
    """Height, width and channel count (1 or 3, alpha not counted) from the file header.

    Agrees with :func:`read_image` on every readable file, EXIF rotations included."""
    path = Path(path)
    if path.suffix.lower() in _TIFF_SUFFIXES:
        with _reading(path):
            with tifffile.TiffFile(path) as tif:
                series, layout = _tiff_series(tif, path, as_mask=False)
                channels = 3 if series.keyframe.photometric == tifffile.PHOTOMETRIC.PALETTE else layout.channels
        return ImageInfo(layout.height, layout.width, _without_alpha(channels))
    with _reading(path), Image.open(path) as image:
        _check_frames(image, path)
        width, height = image.size
        if _orientation(image) in (5, 6, 7, 8):
            width, height = height, width
        colour_type = _png_16bit_colour(path) if image.format == "PNG" else None
        if colour_type is not None:
            channels = 1 if colour_type == 4 else 3
        else:
            channels = 1 if image.mode in _GRAY_MODES else 3
    return ImageInfo(height, width, channels)


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` as an ``(H, W, C)`` array, ``C`` in {1, 3}, dtype uint8/uint16/float32."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{path}: unsupported image format {path.suffix!r}; accepted: {', '.join(IMAGE_SUFFIXES)}")
    array = _read_tiff(path, as_mask=False) if path.suffix.lower() in _TIFF_SUFFIXES else _read_pil(path, as_mask=False)
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    if channels in (2, 4):  # gray + alpha, RGB + alpha
        array = array[:, :, :channels - 1]
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
    array = _read_tiff(path, as_mask=True) if suffix in _TIFF_SUFFIXES else _read_pil(path, as_mask=True)
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


class _reading:
    """Context that turns any decoder failure into an :class:`ImageReadError` naming the file.

    Decoders raise many types (OSError, ValueError, imagecodecs' own errors, struct and index
    errors on truncated headers); the user needs the file and the reason, whatever the type."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None or isinstance(error, ImageReadError) or not isinstance(error, Exception):
            return False
        raise ImageReadError(f"cannot read {self.path}: {error} (unreadable or corrupt file)") from error


def _read_pil(path: Path, as_mask: bool) -> np.ndarray:
    with _reading(path), Image.open(path) as image:
        _check_frames(image, path)
        orientation = _orientation(image)
        if image.format == "PNG" and _png_16bit_colour(path) is not None:
            # Pillow reduces 16-bit RGB(A) / gray+alpha PNGs to 8 bits; imagecodecs keeps them
            return _orient(imagecodecs.png_decode(path.read_bytes()), orientation)
        image.load()
        mode = image.mode
        if mode == "P" and as_mask:
            array = _palette_mask(np.array(image), image.getpalette() or [])
        elif mode in ("P", "PA"):
            array = np.array(image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB"))
        elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
            array = np.array(image.convert("RGB"))
        elif mode == "1":
            array = np.array(image).astype(np.uint8) * (1 if as_mask else 255)
        elif mode in ("I;16B", "I;16L", "I;16N"):
            array = np.array(image.convert("I;16"))
        else:
            array = np.array(image)
    return _orient(array, orientation)


def _check_frames(image: Image.Image, path: Path) -> None:
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format in _MULTI_FRAME_REFUSED:
        raise ImageReadError(f"{path}: {image.format} with {frames} frames; one file must hold one image "
                             "(save the frame you mean as its own file)")


def _orientation(image: Image.Image) -> int:
    try:
        value = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except (ValueError, TypeError, SyntaxError, OSError):  # a broken EXIF block must not hide the pixels
        return 1
    return value if 1 <= value <= 8 else 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1–8) to an ``(H, W[, C])`` array, as ``ImageOps.exif_transpose`` does."""
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(transforms[orientation](array))


def _png_16bit_colour(path: Path) -> int | None:
    """The PNG colour type of 16-bit RGB (2), gray+alpha (4) or RGBA (6) files — those Pillow reads as
    8-bit — else None."""
    with open(path, "rb") as handle:
        header = handle.read(26)
    if header[:8] == _PNG_SIGNATURE and len(header) == 26 and header[24] == 16 and header[25] in (2, 4, 6):
        return header[25]
    return None


def _palette_mask(indices: np.ndarray, palette: list[int]) -> np.ndarray:
    """Palette indices, or the gray levels when every palette entry the mask uses is gray."""
    colours = np.zeros((256, 3), dtype=np.int64)
    entries = np.asarray(palette, dtype=np.int64)[: 256 * 3]
    colours[: len(entries) // 3] = entries[: len(entries) // 3 * 3].reshape(-1, 3)
    used = colours[np.unique(indices)]
    if np.all(used == used[:, :1]):
        return colours[:, 0].astype(np.uint8)[indices]
    return indices


@dataclass(frozen=True)
class _TiffLayout:
    height: int
    width: int
    channels: int
    axes: str  # of the squeezed array, e.g. "YX", "YXS", "SYX", "CYX"
    shape: tuple[int, ...]


def _tiff_series(tif: tifffile.TiffFile, path: Path, as_mask: bool) -> tuple[tifffile.TiffPageSeries, _TiffLayout]:
    """The series holding the image, and its layout; refuses files that hold more than one full-size image."""
    if not tif.series:
        raise ImageReadError(f"{path}: TIFF without images")
    series = tif.series[0]
    axes, shape = series.get_axes(squeeze=False), series.get_shape(squeeze=False)
    if "Y" not in axes or "X" not in axes:
        raise ImageReadError(f"{path}: TIFF series with axes {axes!r} has no 2-D image plane")
    kept = [(axis, size) for axis, size in zip(axes, shape) if size > 1 or axis in "YX"]
    layout_axes = "".join(axis for axis, _ in kept)
    sizes = dict(kept)
    stacked = {axis: size for axis, size in kept if axis not in "YXS"}
    height, width = sizes["Y"], sizes["X"]
    same_size = [s for s in tif.series[1:] if _series_plane(s) == (height, width)]
    what = "a mask" if as_mask else "an image"
    hint = ("save one image per file; an RGB image as one RGB page (e.g. tifffile.imwrite(path, array_HWC, "
            "photometric='rgb'))" + ("" if as_mask else ", or label 3 gray pages as channels (ImageJ axes 'CYX')"))
    if same_size:
        raise ImageReadError(f"{path}: TIFF holding {1 + len(same_size)} separate full-size images; {what} file "
                             f"must hold one 2-D plane ({hint})")
    if not stacked:
        return series, _TiffLayout(height, width, sizes.get("S", 1), layout_axes, tuple(s for _, s in kept))
    if list(stacked) == ["C"] and "S" not in sizes and not as_mask and stacked["C"] == 3:
        return series, _TiffLayout(height, width, 3, layout_axes, tuple(s for _, s in kept))
    described = ", ".join(f"{axis}={size}" for axis, size in stacked.items())
    raise ImageReadError(f"{path}: multi-page TIFF, axes {layout_axes!r} ({described}) with {height}x{width} (HxW) "
                         f"pages; {what} file must hold one 2-D plane and the first page is not taken silently "
                         f"({hint})")


def _series_plane(series: tifffile.TiffPageSeries) -> tuple[int, int] | None:
    axes, shape = series.get_axes(squeeze=False), series.get_shape(squeeze=False)
    if "Y" not in axes or "X" not in axes:
        return None
    return shape[axes.index("Y")], shape[axes.index("X")]


def _read_tiff(path: Path, as_mask: bool) -> np.ndarray:
    with _reading(path), tifffile.TiffFile(path) as tif:
        series, layout = _tiff_series(tif, path, as_mask)
        page = series.keyframe
        photometric = page.photometric
        array = series.asarray(level=0).reshape(layout.shape)
        if photometric in (tifffile.PHOTOMETRIC.SEPARATED, tifffile.PHOTOMETRIC.CIELAB,
                           tifffile.PHOTOMETRIC.ICCLAB, tifffile.PHOTOMETRIC.ITULAB):
            raise ImageReadError(f"{path}: TIFF in colour space {photometric.name}; accepted: gray, RGB, palette "
                                 "(convert it to RGB)")
        order = [layout.axes.index("Y"), layout.axes.index("X")] + [
            k for k, axis in enumerate(layout.axes) if axis not in "YX"]
        array = array.transpose(order)
        if photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None:
            array = _tiff_palette(array, page.colormap, as_mask)
        elif photometric == tifffile.PHOTOMETRIC.MINISWHITE and not as_mask:
            array = _invert(array, page.bitspersample)
    return array


def _tiff_palette(indices: np.ndarray, colormap: np.ndarray, as_mask: bool) -> np.ndarray:
    """Palette TIFF: colours for images (8-bit when the 16-bit map is a scaled 8-bit one), indices for masks."""
    colours = np.asarray(colormap).T  # (entries, 3), 16-bit
    eight_bit = np.all(colours % 257 == 0) or colours.max() <= 255
    colours = (colours // 257 if colours.max() > 255 else colours).astype(np.uint8) if eight_bit else colours
    if as_mask:
        used = colours[np.unique(indices)]
        return colours[indices, 0] if eight_bit and np.all(used == used[:, :1]) else indices
    return colours[indices]


def _invert(array: np.ndarray, bits: int) -> np.ndarray:
    if array.dtype == np.bool_:
        return ~array
    if array.dtype.kind in "ui":
        return (2 ** bits - 1 - array.astype(np.int64)).astype(array.dtype)
    return array


def _without_alpha(channels: int) -> int:
    return 1 if channels <= 2 else 3


def _image_dtype(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype in (np.uint8, np.uint16, np.float32):
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    if array.dtype.kind in "iu" and array.size and 0 <= array.min() and array.max() <= 65535:
        return array.astype(np.uint16)
    raise ImageReadError(f"{path}: image dtype {array.dtype} with values outside 0..65535; "
                         "accepted: 8/16-bit integer or float images")
