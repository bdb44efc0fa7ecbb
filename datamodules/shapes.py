"""Procedural drawing primitives for synthetic images: shapes as signed distance fields, textures,
smooth background noise, non-overlapping placement and blur.

Conventions shared by every function here:

- Arrays are numpy, images are channel-first ``(C, H, W)`` float32 with values nominally in [0, 1].
- Pixel ``(row i, column j)`` has its centre at the continuous point ``(y, x) = (i, j)``; shape
  centres and vertices are continuous ``(y, x)`` points in that frame.
- A shape is described by its *signed distance* ``d(y, x)`` in pixels: negative inside, zero on the
  outline, positive outside. The label mask of a shape is ``d <= 0``; an anti-aliased coverage for
  drawing is ``clip(0.5 - d, 0, 1)``; a band ``0 < d <= w`` is a ``w``-pixel ring around the outline.
- Every shape made by a ``random`` constructor with radius ``R`` lies inside the disc of radius ``R``
  around its centre, so its mask fits in a ``(floor(2R) + 1)``-pixel square; together with
  :func:`place_non_overlapping` this makes object sizes exact claims, not tendencies.
- Randomness comes only from the ``numpy.random.Generator`` passed in, so callers control
  determinism (e.g. ``np.random.default_rng([seed, split, index])``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
from scipy import ndimage

TEXTURES = ("flat", "stripes", "checker", "gradient")


class Shape(Protocol):
    """A drawable shape: its centre, the radius of a disc that contains it, and its signed distance."""

    center: tuple[float, float]
    radius: float

    def signed_distance(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Signed distance in pixels at the points ``(ys, xs)`` (broadcast together)."""
        ...


@dataclass(frozen=True)
class Blob:
    """A star-shaped blob: ``r(t) = R (1 + sum_k a_k cos(k t + p_k)) / (1 + sum_k a_k)``.

    ``t`` is the polar angle around ``center``, harmonics ``k = 2, 3, ...`` with amplitudes
    ``a_k >= 0``. The normalisation keeps ``r(t) <= R``. The signed distance ``|p - c| - r(t)`` is
    exact for a disc (all ``a_k = 0``) and a close approximation otherwise.
    """

    center: tuple[float, float]
    radius: float
    amplitudes: tuple[float, ...]
    phases: tuple[float, ...]

    @classmethod
    def random(
        cls, rng: np.random.Generator, center: tuple[float, float], radius: float, irregularity: float = 0.35
    ) -> Blob:
        """Three harmonics whose amplitudes sum to at most ``irregularity`` (0 gives a disc)."""
        amplitudes = rng.uniform(0.0, irregularity / 3.0, size=3)
        phases = rng.uniform(0.0, 2.0 * np.pi, size=3)
        return cls(center, radius, tuple(amplitudes), tuple(phases))

    def signed_distance(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        dy, dx = ys - self.center[0], xs - self.center[1]
        angle = np.arctan2(dy, dx)
        amplitudes = np.asarray(self.amplitudes)
        orders = np.arange(2, 2 + amplitudes.size)
        wobble = np.cos(orders[:, None, None] * angle + np.asarray(self.phases)[:, None, None])
        contour = self.radius * (1.0 + np.tensordot(amplitudes, wobble, axes=1)) / (1.0 + amplitudes.sum())
        return np.hypot(dy, dx) - contour


@dataclass(frozen=True)
class Polygon:
    """A convex polygon given by its vertices ``(n, 2)`` as ``(y, x)`` in counter-clockwise order
    (in the image frame: increasing polar angle ``atan2(y - cy, x - cx)``).

    Signed distance = the largest signed distance to the edges' supporting lines: exact inside and
    next to edges, a lower bound of the true distance beyond a corner.
    """

    center: tuple[float, float]
    radius: float
    vertices: tuple[tuple[float, float], ...]

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        center: tuple[float, float],
        radius: float,
        sides: tuple[int, int] = (3, 6),
    ) -> Polygon:
        """``n`` in ``sides`` (inclusive) vertices at jittered angles, at distance 0.75R to R."""
        n = int(rng.integers(sides[0], sides[1] + 1))
        step = 2.0 * np.pi / n
        # Jitter below half a step keeps the angles sorted, so the vertex order stays counter-clockwise
        # and every interior angle stays below pi (convex).
        angles = rng.uniform(0.0, 2.0 * np.pi) + step * (np.arange(n) + rng.uniform(-0.3, 0.3, size=n))
        dist = radius * rng.uniform(0.75, 1.0, size=n)
        vertices = np.stack([center[0] + dist * np.sin(angles), center[1] + dist * np.cos(angles)], axis=1)
        return cls(center, radius, tuple(map(tuple, vertices)))

    def signed_distance(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        vertices = np.asarray(self.vertices)
        edges = np.roll(vertices, -1, axis=0) - vertices
        # Outward normal of a counter-clockwise edge (dy, dx) in (y, x) coordinates is (-dx, dy).
        normals = np.stack([-edges[:, 1], edges[:, 0]], axis=1) / np.linalg.norm(edges, axis=1, keepdims=True)
        offsets = (normals * vertices).sum(axis=1)
        distances = normals[:, 0, None, None] * ys + normals[:, 1, None, None] * xs - offsets[:, None, None]
        return distances.max(axis=0)


@dataclass(frozen=True)
class Curve:
    """A thin curved stroke: the points within ``width / 2`` of a polyline ``points`` ``(m, 2)``.

    Signed distance = (distance to the polyline) - ``width / 2``, exact.
    """

    center: tuple[float, float]
    radius: float
    points: tuple[tuple[float, float], ...]
    width: float

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        center: tuple[float, float],
        radius: float,
        width: float = 1.5,
        samples: int = 8,
    ) -> Curve:
        """A quadratic Bezier arc through ``center``'s disc, ends ``2R - width`` apart at most.

        The control points lie within ``R - width / 2`` of the centre and the arc stays in their
        convex hull, so the stroke stays inside the disc of radius ``R`` (``width`` is capped at
        ``2R``: a shape smaller than its stroke is a dot).
        """
        width = min(width, 2.0 * radius)
        reach = radius - width / 2.0
        direction = rng.uniform(0.0, 2.0 * np.pi)
        along = np.array([np.sin(direction), np.cos(direction)])
        across = np.array([along[1], -along[0]])
        c = np.asarray(center)
        start, end = c + reach * along, c - reach * along
        control = c + reach * rng.uniform(-1.0, 1.0) * across
        t = np.linspace(0.0, 1.0, samples)[:, None]
        points = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
        return cls(center, radius, tuple(map(tuple, points)), width)

    def signed_distance(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        points = np.asarray(self.points)
        a, b = points[:-1], points[1:]
        ab = b - a
        length2 = np.maximum((ab**2).sum(axis=1), 1e-12)[:, None, None]
        ay, ax = ys - a[:, 0, None, None], xs - a[:, 1, None, None]
        t = np.clip((ay * ab[:, 0, None, None] + ax * ab[:, 1, None, None]) / length2, 0.0, 1.0)
        dist = np.hypot(ay - t * ab[:, 0, None, None], ax - t * ab[:, 1, None, None]).min(axis=0)
        return dist - self.width / 2.0


SHAPE_FAMILIES: dict[str, Callable[..., Shape]] = {
    "blob": Blob.random,
    "polygon": Polygon.random,
    "curve": Curve.random,
}


@dataclass(frozen=True)
class Window:
    """A rectangular crop ``[y0, y1) x [x0, x1)`` of an image with the pixel-centre grids of the crop."""

    y0: int
    y1: int
    x0: int
    x1: int
    ys: np.ndarray
    xs: np.ndarray

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def shape_window(shape: Shape, height: int, width: int, margin: int = 1) -> Window:
    """The crop of an ``height x width`` image that holds ``shape`` plus ``margin`` pixels around it.

    Evaluating a signed distance on this window instead of the whole image keeps drawing cost
    proportional to the object's area.
    """
    cy, cx = shape.center
    reach = shape.radius + margin
    y0, y1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, height)
    x0, x1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, width)
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    xs = np.arange(x0, x1, dtype=np.float64)[None, :]
    return Window(y0, y1, x0, x1, ys, xs)


def window_distance(shape: Shape, window: Window) -> np.ndarray:
    """Signed distance of ``shape`` on ``window``, with the pixel nearest the centre clamped to <= 0 so
    that even a sub-pixel shape covers one pixel. Its label mask is ``window_distance(...) <= 0``."""
    distance = shape.signed_distance(window.ys, window.xs)
    cy, cx = int(round(shape.center[0])) - window.y0, int(round(shape.center[1])) - window.x0
    if 0 <= cy < distance.shape[0] and 0 <= cx < distance.shape[1]:
        distance[cy, cx] = min(distance[cy, cx], 0.0)
    return distance


def place_non_overlapping(
    rng: np.random.Generator,
    radii: np.ndarray,
    height: int,
    width: int,
    gap: float = 2.0,
    attempts: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Centres for discs of the given radii, inside the image and at least ``gap`` pixels apart.

    Discs are placed in the given order; each takes the first of ``attempts`` uniform candidate
    centres that keeps every disc edge ``gap`` pixels from the discs placed before it, or is dropped.
    Returns ``(centers (k, 2) as (y, x), kept (k,) indices into radii)``.
    """
    centers: list[np.ndarray] = []
    kept: list[int] = []
    for i, r in enumerate(np.asarray(radii, dtype=np.float64)):
        low_y, high_y = r, height - 1 - r
        low_x, high_x = r, width - 1 - r
        if high_y < low_y or high_x < low_x:
            continue
        candidates = np.stack(
            [rng.uniform(low_y, high_y, size=attempts), rng.uniform(low_x, high_x, size=attempts)], axis=1
        )
        if centers:
            placed = np.asarray(centers)
            needed = np.asarray(radii, dtype=np.float64)[kept] + r + gap
            dist = np.linalg.norm(candidates[:, None, :] - placed[None, :, :], axis=2)
            free = np.flatnonzero((dist >= needed[None, :]).all(axis=1))
            if free.size == 0:
                continue
            candidates = candidates[free]
        centers.append(candidates[0])
        kept.append(i)
    return np.asarray(centers, dtype=np.float64).reshape(-1, 2), np.asarray(kept, dtype=np.int64)


def texture(name: str, window: Window, rng: np.random.Generator, period: float = 4.0) -> np.ndarray:
    """A pattern in [0, 1] over ``window``: ``flat`` (ones), ``stripes`` (random orientation and
    phase), ``checker`` (cells of ``period / 2`` px) or ``gradient`` (linear ramp across the window).
    """
    if name == "flat":
        return np.ones((window.y1 - window.y0, window.x1 - window.x0))
    angle, phase = rng.uniform(0.0, np.pi), rng.uniform(0.0, 2.0 * np.pi)
    along = window.ys * np.sin(angle) + window.xs * np.cos(angle)
    if name == "stripes":
        return 0.5 + 0.5 * np.sin(2.0 * np.pi * along / period + phase)
    if name == "checker":
        cells = np.floor(window.ys * 2.0 / period + phase) + np.floor(window.xs * 2.0 / period)
        return np.broadcast_to(cells % 2, (window.ys.shape[0], window.xs.shape[1])).astype(np.float64)
    if name == "gradient":
        span = max(float(np.ptp(along)), 1e-6)
        return (along - along.min()) / span
    raise ValueError(f"texture: unknown name {name!r}; expected one of {list(TEXTURES)}")


@functools.lru_cache(maxsize=16)
def _interpolation_matrix(size: int, cells: int) -> np.ndarray:
    """Linear interpolation weights ``(size, cells + 1)`` from a coarse grid of ``cells`` intervals."""
    position = np.linspace(0.0, cells, size)
    left = np.minimum(np.floor(position).astype(int), cells - 1)
    frac = position - left
    weights = np.zeros((size, cells + 1))
    weights[np.arange(size), left] = 1.0 - frac
    weights[np.arange(size), left + 1] = frac
    weights.setflags(write=False)
    return weights


def smooth_noise(rng: np.random.Generator, channels: int, height: int, width: int, cells: int = 4) -> np.ndarray:
    """Low-frequency noise ``(channels, height, width)``: uniform [-1, 1] values on a coarse
    ``(cells + 1)^2`` grid, bilinearly interpolated (two small matrix products, no per-pixel loop)."""
    grid = rng.uniform(-1.0, 1.0, size=(channels, cells + 1, cells + 1))
    rows, cols = _interpolation_matrix(height, cells), _interpolation_matrix(width, cells)
    return rows @ grid @ cols.T


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur each channel of ``(C, H, W)`` with a Gaussian of ``sigma`` pixels (0: unchanged)."""
    if sigma <= 0:
        return image
    return ndimage.gaussian_filter(image, sigma=(0.0, sigma, sigma), mode="reflect", truncate=3.0)
