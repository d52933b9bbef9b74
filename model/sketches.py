"""Procedurally drawn sketches: the starter set of a fresh database and the
test data of the project (no downloads). Each drawing is drawn in one of the
ways people draw its shape (STYLES: a star as an outline or in one stroke
with crossing lines, a circle closed, open or overlapping itself, a polygon
closed, with corners that overshoot, or left open) and varies in position,
size, rotation, stroke width and hand jitter."""
import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star")
CANVAS = 256
STYLES = {"circle": ("closed", "open", "overlapping"),
          "square": ("closed", "overshooting", "open"),
          "triangle": ("closed", "overshooting", "open"),
          "star": ("outline", "one stroke")}
# Shape radius and stroke width, as shares of the canvas (width at least 2 px).
RADIUS = (0.18, 0.42)
STROKE = (0.008, 0.055)


def corners(shape):
    """A polygon's corners at unit scale around (0, 0), in drawing order."""
    if shape == "square":
        return np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], np.float64)
    if shape == "triangle":
        return np.array([(0, -1), (0.95, 0.75), (-0.95, 0.75)], np.float64)
    if shape == "star":
        return np.array([((1.0 if i % 2 == 0 else 0.42) * math.sin(i * math.pi / 5),
                          -(1.0 if i % 2 == 0 else 0.42) * math.cos(i * math.pi / 5))
                         for i in range(10)])
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def strokes(shape, style, rng):
    """The pen's strokes (each an array of points at unit scale) for `shape`
    drawn in `style`."""
    if shape == "circle":
        start = rng.uniform(0, 2 * math.pi)
        sweep = {"closed": 2 * math.pi, "open": rng.uniform(1.6, 1.9) * math.pi,
                 "overlapping": rng.uniform(2.1, 2.4) * math.pi}[style]
        t = np.linspace(start, start + sweep, int(48 * sweep / (2 * math.pi)) + 1)
        # Going round more than once, the pen drifts in or out.
        radius = 1 + (t - start) / (2 * math.pi) * (rng.uniform(-0.12, 0.12)
                                                    if style == "overlapping" else 0)
        squash = rng.uniform(0.85, 1.0)
        return [np.stack([radius * np.cos(t), squash * radius * np.sin(t)], axis=1)]
    if shape not in STYLES:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")
    if style == "one stroke":
        # A five-point star in one line: every second outer corner, crossing itself.
        outer = corners("star")[::2]
        return [_edges(outer[[0, 2, 4, 1, 3, 0]])]
    points = corners(shape)
    closed = np.vstack([points, points[:1]])
    if style == "overshooting":
        # Each side its own stroke, running past the corners at both ends.
        sides = []
        for a, b in zip(closed[:-1], closed[1:]):
            past = (b - a) * rng.uniform(0.04, 0.18, size=2)[:, None]
            sides.append(_edges(np.array([a - past[0], b + past[1]])))
        return sides
    path = _edges(closed)
    if style == "open":
        path = path[:len(path) - int(len(path) / len(points) * rng.uniform(0.15, 0.4))]
    return [path]


def _edges(points):
    """Several points along each edge of a path, so the hand jitter bends the edges too."""
    parts = [np.linspace(a, b, 8, endpoint=False) for a, b in zip(points[:-1], points[1:])]
    return np.concatenate(parts + [points[-1:]])


def draw(shape, rng=None, size=CANVAS, style=None):
    """A black-on-white RGB sketch of `shape`, in `style` (one of
    STYLES[shape]; drawn at random when None)."""
    rng = rng if rng is not None else np.random.default_rng()
    if shape not in STYLES:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")
    style = style or STYLES[shape][rng.integers(len(STYLES[shape]))]
    angle = rng.uniform(-0.35, 0.35)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    radius = rng.uniform(*RADIUS) * size
    center = rng.uniform(radius * 1.1, size - radius * 1.1, size=2)
    width = max(2, int(rng.uniform(*STROKE) * size))
    image = Image.new("RGB", (size, size), "white")
    pen = ImageDraw.Draw(image)
    for points in strokes(shape, style, rng):
        points = points @ rotation.T * radius + center
        points += rng.normal(0, radius * 0.025, size=points.shape)
        pen.line([tuple(p) for p in points], fill="black", width=width, joint="curve")
    return image


def dataset(per_class, seed=0, shapes=SHAPES, size=CANVAS):
    """[(shape, image)] with `per_class` drawings of each shape."""
    rng = np.random.default_rng(seed)
    return [(shape, draw(shape, rng, size)) for _ in range(per_class) for shape in shapes]
