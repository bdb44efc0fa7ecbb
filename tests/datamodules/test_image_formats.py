"""Real-world files, written at test time: compressed / multi-page / palette TIFF, GIF and palette PNG
masks, 16-bit PNG, JPEG with EXIF orientation — and a fundus-like folder (LZW TIFF images, GIF 0/255
vessel masks, GIF field-of-view roi) loading through the folder datamodule."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from datamodules.folder import FolderSegDataModule
from datamodules.image_io import ImageInfo, ImageReadError, probe, read_image, read_mask
from scripts.make_fundus_folder import fundus_sample, write_fundus_folder

RNG = np.random.default_rng(3)
H, W = 24, 40  # TIFF JPEG and tiles want multiples of 8/16
SMOOTH = np.clip(np.add.outer(np.linspace(20, 220, H), np.linspace(0, 30, W)), 0, 255)
ARRAYS = {
    "gray8": RNG.integers(0, 256, (H, W), dtype=np.uint8),
    "rgb8": RNG.integers(0, 256, (H, W, 3), dtype=np.uint8),
    "rgba8": RNG.integers(0, 256, (H, W, 4), dtype=np.uint8),
    "gray16": RNG.integers(0, 65536, (H, W), dtype=np.uint16),
    "rgb16": RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16),
}
LOSSLESS = ["none", "lzw", "zlib", "adobe_deflate", "packbits", "zstd", "lzma"]


def write_tiff(path, array, **kwargs):
    options = {}
    if array.ndim == 3:
        options = {"photometric": "rgb"} | ({"extrasamples": ["unassalpha"]} if array.shape[2] == 4 else {})
    tifffile.imwrite(path, array, **(options | kwargs))
    return path


@pytest.mark.parametrize("compression", LOSSLESS)
@pytest.mark.parametrize("kind", list(ARRAYS))
@pytest.mark.parametrize("predictor", [False, True])
def test_lossless_compressed_tiff_images_round_trip(tmp_path, compression, kind, predictor):
    array = ARRAYS[kind]
    compression = None if compression == "none" else compression
    if predictor and compression in (None, "packbits"):
        pytest.skip("predictors go with LZW / deflate / zstd / lzma only")
    path = write_tiff(tmp_path / "a.tif", array, compression=compression, predictor=predictor or None)
    image = read_image(path)
    expected = array[..., :3] if kind == "rgba8" else array  # alpha dropped
    np.testing.assert_array_equal(image, expected.reshape(H, W, -1))
    assert image.dtype == array.dtype
    assert probe(path) == ImageInfo(H, W, image.shape[2])


@pytest.mark.parametrize("tile", [None, (16, 16)])
def test_tiled_tiff_and_lzw_masks(tmp_path, tile):
    labels = RNG.integers(0, 5, (H, W), dtype=np.uint8)
    np.testing.assert_array_equal(read_mask(write_tiff(tmp_path / "m.tif", labels, compression="lzw", tile=tile)), labels)
    labels16 = RNG.integers(0, 3000, (H, W), dtype=np.uint16)
    np.testing.assert_array_equal(read_mask(write_tiff(tmp_path / "m16.tif", labels16, compression="zlib", tile=tile)),
                                  labels16)
    rgb = ARRAYS["rgb8"]
    np.testing.assert_array_equal(read_image(write_tiff(tmp_path / "i.tif", rgb, compression="zlib", tile=tile)), rgb)


@pytest.mark.parametrize("kind", ["gray8", "rgb8"])
def test_jpeg_in_tiff_is_close(tmp_path, kind):
    smooth = SMOOTH.astype(np.uint8) if kind == "gray8" else np.stack([SMOOTH, SMOOTH * 0.5, SMOOTH * 0.2], -1).astype(np.uint8)
    path = write_tiff(tmp_path / "a.tif", smooth, compression="jpeg")
    image = read_image(path)
    assert image.shape == (H, W, 1 if kind == "gray8" else 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - smooth.reshape(H, W, -1)).mean() < 3


def test_multi_page_tiff_semantics(tmp_path):
    rgb, gray = ARRAYS["rgb8"], ARRAYS["gray16"]
    with tifffile.TiffWriter(tmp_path / "thumb.tif") as tif:  # image + reduced thumbnail page: thumbnail ignored
        tif.write(rgb, photometric="rgb", compression="lzw")
        tif.write(rgb[::4, ::4], photometric="rgb", subfiletype=1)
    np.testing.assert_array_equal(read_image(tmp_path / "thumb.tif"), rgb)
    # three pages labelled as channels (ImageJ 'CYX') are an RGB image
    tifffile.imwrite(tmp_path / "cyx.tif", np.moveaxis(rgb, -1, 0), imagej=True, metadata={"axes": "CYX"})
    np.testing.assert_array_equal(read_image(tmp_path / "cyx.tif"), rgb)
    assert probe(tmp_path / "cyx.tif").channels == 3
    ambiguous = {
        "unlabelled.tif": dict(data=np.stack([gray] * 3), photometric="minisblack"),
        "zstack.tif": dict(data=np.stack([gray] * 5), imagej=True, metadata={"axes": "ZYX"}),
        "two_channels.tif": dict(data=np.stack([gray] * 2), imagej=True, metadata={"axes": "CYX"}),
    }
    for name, options in ambiguous.items():
        tifffile.imwrite(tmp_path / name, **options)
        for reader in (read_image, probe):
            with pytest.raises(ImageReadError, match=rf"{name}: multi-page TIFF.*first page is not taken silently"):
                reader(tmp_path / name)
    with tifffile.TiffWriter(tmp_path / "two_images.tif") as tif:  # two unrelated full-size images
        tif.write(rgb, photometric="rgb")
        tif.write(gray)
    with pytest.raises(ImageReadError, match=r"two_images\.tif: TIFF holding 2 separate full-size images"):
        read_image(tmp_path / "two_images.tif")
    tifffile.imwrite(tmp_path / "mask_stack.tif", np.zeros((3, H, W), np.uint8), imagej=True, metadata={"axes": "CYX"})
    with pytest.raises(ImageReadError, match=r"mask_stack\.tif: multi-page TIFF.*a mask file"):
        read_mask(tmp_path / "mask_stack.tif")


def test_palette_min_is_white_and_cmyk_tiff(tmp_path):
    indices = RNG.integers(0, 3, (H, W), dtype=np.uint8)
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, 1] = [65535, 0, 0]
    colormap[:, 2] = [0, 257 * 128, 65535]
    tifffile.imwrite(tmp_path / "p.tif", indices, photometric="palette", colormap=colormap, compression="lzw")
    expected = (colormap.T[indices] // 257).astype(np.uint8)
    np.testing.assert_array_equal(read_image(tmp_path / "p.tif"), expected)
    assert probe(tmp_path / "p.tif").channels == 3
    np.testing.assert_array_equal(read_mask(tmp_path / "p.tif"), indices)  # colour palette: indices
    gray = ARRAYS["gray8"]
    tifffile.imwrite(tmp_path / "w.tif", gray, photometric="miniswhite")
    np.testing.assert_array_equal(read_image(tmp_path / "w.tif")[..., 0], 255 - gray)
    tifffile.imwrite(tmp_path / "cmyk.tif", ARRAYS["rgba8"], photometric="separated")
    with pytest.raises(ImageReadError, match=r"cmyk\.tif: TIFF in colour space SEPARATED"):
        read_image(tmp_path / "cmyk.tif")


def gif_with_palette(path, indices, palette):
    image = Image.fromarray(indices, mode="L").convert("P")
    image.putpalette(palette + [0] * (768 - len(palette)))
    image.save(path)
    return path


def test_gif_masks_read_0_255_whatever_the_palette_order(tmp_path):
    vessels = RNG.random((H, W)) < 0.1
    expected = vessels.astype(np.uint8) * 255
    Image.fromarray(expected).save(tmp_path / "from_gray.gif")  # Pillow writes an optimised palette
    Image.fromarray(vessels).save(tmp_path / "from_bits.gif")
    # white first: indices 0 = vessel, 1 = background (other writers order palettes by frequency, etc.)
    gif_with_palette(tmp_path / "white_first.gif", (~vessels).astype(np.uint8), [255, 255, 255, 0, 0, 0])
    for name in ("from_gray.gif", "from_bits.gif", "white_first.gif"):
        np.testing.assert_array_equal(read_mask(tmp_path / name), expected, err_msg=name)
    frames = [Image.fromarray(expected), Image.fromarray(255 - expected)]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match=r"animated\.gif: GIF with 2 frames"):
        read_mask(tmp_path / "animated.gif")


def test_palette_png_masks_are_indices_unless_the_palette_is_gray(tmp_path):
    indices = RNG.integers(0, 4, (H, W), dtype=np.uint8)
    voc = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
    np.testing.assert_array_equal(read_mask(gif_with_palette(tmp_path / "voc.png", indices, voc)), indices)
    np.testing.assert_array_equal(read_image(tmp_path / "voc.png"),
                                  np.array(voc, np.uint8).reshape(-1, 3)[indices])
    gray_levels = [0, 255, 85, 170]  # a gray palette in a non-monotone order: the gray level is the value
    gray = [v for level in gray_levels for v in (level, level, level)]
    np.testing.assert_array_equal(read_mask(gif_with_palette(tmp_path / "gray.png", indices, gray)),
                                  np.array(gray_levels, np.uint8)[indices])


def test_16_bit_png_masks_and_images_keep_16_bits(tmp_path):
    import imagecodecs

    labels = RNG.integers(0, 1200, (H, W), dtype=np.uint16)
    Image.fromarray(labels).save(tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png")
    assert mask.dtype == np.uint16
    np.testing.assert_array_equal(mask, labels)
    rgb16 = ARRAYS["rgb16"]
    (tmp_path / "rgb16.png").write_bytes(imagecodecs.png_encode(rgb16))  # Pillow would read 8 bits of it
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.png"), rgb16)
    assert probe(tmp_path / "rgb16.png") == ImageInfo(H, W, 3)
    gray_alpha = np.stack([labels, np.full_like(labels, 65535)], -1)
    (tmp_path / "la16.png").write_bytes(imagecodecs.png_encode(gray_alpha))
    np.testing.assert_array_equal(read_mask(tmp_path / "la16.png"), labels)
    assert probe(tmp_path / "la16.png").channels == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    smooth = np.stack([SMOOTH, SMOOTH[::-1], SMOOTH[:, ::-1]], -1).astype(np.uint8)
    image = Image.fromarray(smooth)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "a.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "a.jpg") as opened:
        expected = np.array(ImageOps.exif_transpose(opened))
    read = read_image(tmp_path / "a.jpg")
    np.testing.assert_array_equal(read, expected)
    assert probe(tmp_path / "a.jpg") == ImageInfo(*expected.shape[:2], 3)
    assert read.shape[:2] == ((W, H) if orientation >= 5 else (H, W))


def test_gray_and_cmyk_jpeg(tmp_path):
    Image.fromarray(SMOOTH.astype(np.uint8)).save(tmp_path / "g.jpg", quality=95)
    gray = read_image(tmp_path / "g.jpg")
    assert gray.shape == (H, W, 1) and np.abs(gray[..., 0].astype(int) - SMOOTH.astype(np.uint8)).mean() < 2
    rgb = np.stack([SMOOTH, SMOOTH * 0.6, SMOOTH * 0.3], -1).astype(np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert np.abs(read_image(tmp_path / "cmyk.jpg").astype(int) - rgb).mean() < 3


@pytest.mark.parametrize("compression", ["lzw", "zlib", "jpeg"])
def test_truncated_or_garbage_compressed_tiff_names_the_file(tmp_path, compression):
    good = write_tiff(tmp_path / "good.tif", ARRAYS["rgb8"], compression=compression)
    data = good.read_bytes()
    (tmp_path / "garbage.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    (tmp_path / "header_only.tif").write_bytes(data[:12])
    for name in ("garbage.tif", "header_only.tif"):
        with pytest.raises(ImageReadError, match=rf"{name}"):
            read_image(tmp_path / name)


def test_fundus_folder_loads_through_the_datamodule(tmp_path):
    stems = write_fundus_folder(tmp_path, images=6, sizes=(64, 96))
    assert tifffile.TiffFile(tmp_path / "images" / f"{stems[0]}.tif").pages[0].compression == tifffile.COMPRESSION.LZW
    dm = FolderSegDataModule(tmp_path, num_classes=2, patch_size=(32, 32), patches_per_epoch=8, batch_size=4,
                             num_workers=0, augment=None, split_fractions=(0.5, 0.25, 0.25))
    dm.setup("fit")
    assert dm.in_channels == 3
    train = [fundus_sample(int(s.stem[:2]) - 1, 0, (64, 96)) for s in dm.samples["train"]]
    vessel = sum(int(((m > 0) & (f > 0)).sum()) for _, m, f in train)
    background = sum(int(((m == 0) & (f > 0)).sum()) for _, m, f in train)
    assert dm.class_pixel_counts().tolist() == [background, vessel]  # 0/255 GIF → 0/1, outside the roi ignored
    item = next(iter(dm.val_dataloader()))
    image, mask, fov = fundus_sample(int(dm.samples["val"][0].stem[:2]) - 1, 0, (64, 96))
    assert item["image"].shape == (1, 3, *image.shape[:2])
    expected = np.where(fov > 0, mask // 255, 255)
    np.testing.assert_array_equal(item["mask"][0].numpy(), expected)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and set(batch["mask"].unique().tolist()) <= {0, 1, 255}
