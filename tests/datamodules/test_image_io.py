"""Reading every accepted image / mask format: values, dtypes, channels, and clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from datamodules.image_io import ImageReadError, files_by_stem, probe, read_image, read_mask, to_float_tensor
from tests.datamodules.folder_fixtures import write_array

RNG = np.random.default_rng(0)
GRAY8 = RNG.integers(0, 256, (7, 9), dtype=np.uint8)
RGB8 = RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, (7, 9), dtype=np.uint16)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff", ".gif"])
def test_lossless_gray_and_rgb_round_trip(tmp_path, suffix):
    gray = read_image(write_array(tmp_path / f"g{suffix}", GRAY8))
    # GIF stores a palette, so even a gray GIF comes back as RGB (three equal channels)
    assert gray.shape == (7, 9, 3 if suffix == ".gif" else 1) and gray.dtype == np.uint8
    for channel in range(gray.shape[2]):
        np.testing.assert_array_equal(gray[:, :, channel], GRAY8)
    if suffix != ".gif":  # GIF is paletted: 256 colours at most, RGB comes back quantised
        rgb = read_image(write_array(tmp_path / f"c{suffix}", RGB8))
        assert rgb.shape == (7, 9, 3)
        np.testing.assert_array_equal(rgb, RGB8)


def test_jpeg_rgb_is_close(tmp_path):
    smooth = np.repeat(np.linspace(0, 255, 9, dtype=np.uint8)[None, :, None], 7, 0).repeat(3, 2)
    image = read_image(write_array(tmp_path / "a.jpg", smooth))
    assert image.shape == (7, 9, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - smooth).mean() < 8


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_gray_keeps_values(tmp_path, suffix):
    image = read_image(write_array(tmp_path / f"a{suffix}", GRAY16))
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image[:, :, 0], GRAY16)
    tensor = to_float_tensor(image)
    assert tensor.shape == (1, 7, 9)
    assert torch.allclose(tensor[0], torch.from_numpy(GRAY16.astype(np.float32) / 65535))


def test_16_bit_rgb_and_planar_tiff(tmp_path):
    rgb16 = RNG.integers(0, 65536, (7, 9, 3), dtype=np.uint16)
    np.testing.assert_array_equal(read_image(write_array(tmp_path / "a.tif", rgb16)), rgb16)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb16, -1, 0), planarconfig="separate")
    np.testing.assert_array_equal(read_image(tmp_path / "planar.tif"), rgb16)
    assert probe(tmp_path / "planar.tif") == probe(tmp_path / "a.tif")


def test_alpha_is_dropped(tmp_path):
    rgba = np.concatenate([RGB8, np.full((7, 9, 1), 17, np.uint8)], axis=2)
    np.testing.assert_array_equal(read_image(write_array(tmp_path / "a.png", rgba)), RGB8)
    la = Image.fromarray(GRAY8).convert("LA")
    la.save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[:, :, 0], GRAY8)
    assert probe(tmp_path / "a.png").channels == 3 and probe(tmp_path / "la.png").channels == 1


def test_palette_mask_reads_indices_and_palette_image_reads_colours(tmp_path):
    indices = RNG.integers(0, 5, (7, 9), dtype=np.uint8)
    for suffix in (".png", ".gif"):
        path = write_array(tmp_path / f"p{suffix}", indices, mode="P", palette=True)
        np.testing.assert_array_equal(read_mask(path), indices)
        colours = read_image(path)
        assert colours.shape == (7, 9, 3)
        np.testing.assert_array_equal(colours[..., 1], (indices.astype(int) * 13 % 256).astype(np.uint8))


def test_one_bit_mask_is_0_1_and_image_is_0_255(tmp_path):
    bits = RNG.integers(0, 2, (7, 9)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "b.png"), bits.astype(np.uint8))
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[:, :, 0], bits.astype(np.uint8) * 255)


def test_mask_formats_and_values(tmp_path):
    labels16 = RNG.integers(0, 1000, (7, 9), dtype=np.uint16)
    np.testing.assert_array_equal(read_mask(write_array(tmp_path / "m.tif", labels16)), labels16)
    np.testing.assert_array_equal(read_mask(write_array(tmp_path / "m.bmp", GRAY8)), GRAY8)
    gray_as_rgb = np.repeat(GRAY8[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(read_mask(write_array(tmp_path / "rgb.png", gray_as_rgb)), GRAY8)


def test_bad_masks_are_refused_with_the_file_name(tmp_path):
    jpg = write_array(tmp_path / "m.jpg", GRAY8)
    with pytest.raises(ImageReadError, match=r"m\.jpg.*JPEG masks are not accepted"):
        read_mask(jpg)
    colour = write_array(tmp_path / "colour.png", RGB8)
    with pytest.raises(ImageReadError, match=r"colour\.png.*colour \(RGB\) mask"):
        read_mask(colour)
    fractional = write_array(tmp_path / "f.tif", np.full((3, 3), 0.5, np.float32))
    with pytest.raises(ImageReadError, match=r"f\.tif.*non-integer"):
        read_mask(fractional)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_corrupt_file_names_the_file(tmp_path, suffix):
    path = tmp_path / f"broken{suffix}"
    good = write_array(tmp_path / f"good{suffix}", RGB8)
    path.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ImageReadError, match=f"broken\\{suffix}"):
        read_image(path)


def test_unsupported_suffix_and_float_tensor_scaling(tmp_path):
    with pytest.raises(ImageReadError, match=r"unsupported image format '\.webp'"):
        read_image(tmp_path / "a.webp")
    tensor = to_float_tensor(np.array([[[0], [255]]], dtype=np.uint8), channels=3)
    assert tensor.shape == (3, 1, 2)
    assert tensor[:, 0, 1].tolist() == [1.0, 1.0, 1.0] and tensor[:, 0, 0].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="3-channel image into 1 channels"):
        to_float_tensor(RGB8, channels=1)


def test_files_by_stem_refuses_ambiguous_stems(tmp_path):
    write_array(tmp_path / "a.png", GRAY8)
    write_array(tmp_path / "b.tif", GRAY8)
    (tmp_path / "notes.txt").write_text("not an image")
    assert sorted(files_by_stem(tmp_path, (".png", ".tif"))) == ["a", "b"]
    write_array(tmp_path / "a.tif", GRAY8)
    with pytest.raises(ValueError, match="two files with stem 'a'"):
        files_by_stem(tmp_path, (".png", ".tif"))
