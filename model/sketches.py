"""Procedurally drawn sketches: the starter set of a fresh database and the
test data of the project (no downloads). Each drawing varies in position,
size, rotation, stroke width and hand jitter."""
import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star")
CANVAS = 256


def outline(shape, rng):
    """Closed outline of a shape as unit-scale points around (0, 0)."""
    if shape == "circle":
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        squash = rng.uniform(0.85, 1.0)
        return np.stack([np.cos(t), squash * np.sin(t)], axis=1)
    if shape == "square":
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif shape == "triangle":
        corners = [(0, -1), (0.95, 0.75), (-0.95, 0.75)]
    elif shape == "star":
        corners = [((1.0 if i % 2 == 0 else 0.42) * math.sin(i * math.pi / 5),
                    -(1.0 if i % 2 == 0 else 0.42) * math.cos(i * math.pi / 5)) for i in range(10)]
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")
    corners = np.asarray(corners, dtype=np.float64)
    # Several points per edge, so the hand jitter bends the edges too.
    edges = [np.linspace(a, b, 8, endpoint=False) for a, b in zip(corners, np.roll(corners, -1, 0))]
    return np.concatenate(edges)


def draw(shape, rng=None, size=CANVAS):
    """A black-on-white RGB sketch of `shape`."""
    rng = rng if rng is not None else np.random.default_rng()
    points = outline(shape, rng)
    angle = rng.uniform(-0.35, 0.35)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    radius = rng.uniform(0.22, 0.4) * size
    center = rng.uniform(0.4, 0.6, size=2) * size
    points = points @ rotation.T * radius + center
    points += rng.normal(0, radius * 0.025, size=points.shape)
    # The pen rarely closes a shape exactly where it started.
    closing = points[0] + rng.normal(0, radius * 0.04, size=2)
    path = [tuple(p) for p in np.vstack([points, closing])]
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).line(path, fill="black", width=int(rng.integers(3, 9)), joint="curve")
    return image


def dataset(per_class, seed=0, shapes=SHAPES, size=CANVAS):
    """[(shape, image)] with `per_class` drawings of each shape."""
    rng = np.random.default_rng(seed)
    return [(shape, draw(shape, rng, size)) for _ in range(per_class) for shape in shapes]
