"""Drawing primitives: exact signed distances where they are exact, the disc-containment guarantee
every size claim rests on, non-overlapping placement, textures and smooth noise."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamodules import shapes


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(size, dtype=float)[:, None], np.arange(size, dtype=float)[None, :]


def test_disc_blob_distance_is_exact() -> None:
    ys, xs = grid(21)
    disc = shapes.Blob((10.0, 10.0), 5.0, amplitudes=(0.0, 0.0, 0.0), phases=(0.0, 0.0, 0.0))
    expected = np.hypot(ys - 10.0, xs - 10.0) - 5.0
    np.testing.assert_allclose(disc.signed_distance(ys, xs), expected, atol=1e-12)
    # Lattice points within distance 5 of a lattice point: 81 (Gauss circle problem, r = 5).
    assert (disc.signed_distance(ys, xs) <= 0).sum() == 81


def test_square_polygon_distance_and_area() -> None:
    ys, xs = grid(12)
    # Counter-clockwise in the (y, x) image frame = increasing atan2(y - cy, x - cx).
    square = shapes.Polygon((5.5, 5.5), 4.0, vertices=((2.0, 2.0), (2.0, 9.0), (9.0, 9.0), (9.0, 2.0)))
    distance = square.signed_distance(ys, xs)
    assert (distance <= 0).sum() == 64  # rows and columns 2..9
    assert distance[5, 5] == pytest.approx(-3.0)
    assert distance[5, 11] == pytest.approx(2.0)


def test_straight_curve_distance_is_exact() -> None:
    ys, xs = grid(11)
    stroke = shapes.Curve((5.0, 5.0), 4.0, points=((5.0, 2.0), (5.0, 8.0)), width=1.0)
    distance = stroke.signed_distance(ys, xs)
    assert distance[5, 5] == pytest.approx(-0.5)
    assert distance[8, 5] == pytest.approx(2.5)
    assert distance[5, 10] == pytest.approx(1.5)  # beyond the end point: distance to the end
    assert (distance <= 0).sum() == 7


@settings(max_examples=60, deadline=None)
@given(
    family=st.sampled_from(sorted(shapes.SHAPE_FAMILIES)),
    radius=st.floats(0.5, 12.0),
    offset=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    seed=st.integers(0, 2**31),
)
def test_random_shapes_stay_inside_their_disc_and_cover_a_pixel(family, radius, offset, seed) -> None:
    rng = np.random.default_rng(seed)
    center = (16.0 + offset[0], 16.0 + offset[1])
    shape = shapes.SHAPE_FAMILIES[family](rng, center, radius)
    window = shapes.shape_window(shape, 40, 40)
    inside = shapes.window_distance(shape, window) <= 0
    rows, cols = np.nonzero(inside)
    dist = np.hypot(rows + window.y0 - center[0], cols + window.x0 - center[1])
    assert inside.sum() >= 1
    # The centre pixel is forced on and lies within sqrt(2)/2 of the centre; all others within R.
    assert dist.max() <= max(radius, np.sqrt(0.5)) + 1e-9
    assert inside.shape[0] <= np.ceil(2 * radius) + 4  # the window: disc + 1-px margin + rounding


def test_placement_keeps_the_gap_and_the_image_bounds() -> None:
    rng = np.random.default_rng(0)
    radii = np.array([8.0, 6.0, 4.0, 3.0, 2.0, 2.0, 1.0, 1.0])
    centers, kept = shapes.place_non_overlapping(rng, radii, 48, 40, gap=2.0)
    assert len(kept) == len(radii)
    r = radii[kept]
    assert (centers[:, 0] >= r).all() and (centers[:, 0] <= 47 - r).all()
    assert (centers[:, 1] >= r).all() and (centers[:, 1] <= 39 - r).all()
    dist = np.linalg.norm(centers[:, None] - centers[None], axis=2)
    needed = r[:, None] + r[None, :] + 2.0
    off_diagonal = ~np.eye(len(r), dtype=bool)
    assert (dist[off_diagonal] >= needed[off_diagonal]).all()


def test_placement_drops_what_does_not_fit() -> None:
    rng = np.random.default_rng(0)
    centers, kept = shapes.place_non_overlapping(rng, np.array([6.0, 6.0, 20.0]), 16, 16)
    # One 6-px disc fills the 16x16 image (no room for a second with a 2-px gap); 20 px never fits.
    assert kept.tolist() == [0] and centers.shape == (1, 2)


@pytest.mark.parametrize("name", shapes.TEXTURES)
def test_textures_lie_in_unit_range(name: str) -> None:
    window = shapes.shape_window(shapes.Blob((10.0, 10.0), 6.0, (0.0,), (0.0,)), 32, 32)
    pattern = shapes.texture(name, window, np.random.default_rng(1))
    assert pattern.shape == (window.y1 - window.y0, window.x1 - window.x0)
    assert pattern.min() >= 0.0 and pattern.max() <= 1.0
    assert (np.ptp(pattern) == 0.0) == (name == "flat")


def test_unknown_texture_is_refused() -> None:
    window = shapes.shape_window(shapes.Blob((5.0, 5.0), 2.0, (0.0,), (0.0,)), 16, 16)
    with pytest.raises(ValueError, match="texture: unknown name 'plaid'"):
        shapes.texture("plaid", window, np.random.default_rng(0))


def test_smooth_noise_interpolates_its_grid() -> None:
    noise = shapes.smooth_noise(np.random.default_rng(3), 2, 33, 17, cells=4)
    grid_values = np.random.default_rng(3).uniform(-1.0, 1.0, size=(2, 5, 5))
    assert noise.shape == (2, 33, 17)
    # Corners hit grid nodes exactly; in between, values stay within the grid's range.
    np.testing.assert_allclose(noise[:, [0, -1]][:, :, [0, -1]], grid_values[:, [0, -1]][:, :, [0, -1]])
    assert noise.min() >= grid_values.min() - 1e-12 and noise.max() <= grid_values.max() + 1e-12
    # Low frequency: neighbouring pixels differ far less than independent noise would.
    assert np.abs(np.diff(noise, axis=1)).mean() < 0.2


def test_gaussian_blur_preserves_mean_and_smooths() -> None:
    image = np.random.default_rng(0).uniform(size=(3, 32, 32))
    blurred = shapes.gaussian_blur(image, 1.0)
    np.testing.assert_allclose(blurred.mean(axis=(1, 2)), image.mean(axis=(1, 2)), atol=1e-2)
    assert blurred.std() < 0.5 * image.std()
    assert shapes.gaussian_blur(image, 0.0) is image
