"""The shapes world: one filled shape of one colour on a background of another colour.

8 colours x 4 shapes x 7 background colours = 224 captions ``a {colour} {shape} on a {colour}
background``. Scenes are drawn with Pillow, deterministically from a ``numpy`` random generator.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from PIL import Image, ImageDraw

COLOURS: Mapping[str, tuple[int, int, int]] = MappingProxyType({
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 180),
    "orange": (245, 140, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
})
SHAPES = ("circle", "square", "triangle", "cross")

_SUPERSAMPLE = 4  # drawn larger, then downsampled: anti-aliased edges
_JITTER = 12  # per-channel colour jitter


@dataclass(frozen=True)
class Scene:
    """What a scene shows."""

    colour: str
    shape: str
    background: str

    @property
    def caption(self) -> str:
        return f"a {self.colour} {self.shape} on a {self.background} background"


def all_scenes() -> list[Scene]:
    """The 224 scene kinds, in a fixed order (the caption index used by classifiers)."""
    return [Scene(c, s, b) for c, s, b in itertools.product(COLOURS, SHAPES, COLOURS) if c != b]


def scene_of(caption: str) -> Scene:
    """The scene a caption describes; ValueError naming the caption form and words otherwise."""
    scene = next((s for s in all_scenes() if s.caption == caption), None)
    if scene is None:
        raise ValueError(f"{caption!r} is not a shapes-world caption ('a {{colour}} {{shape}} on a "
                         f"{{colour}} background', colours {', '.join(COLOURS)}, shapes {', '.join(SHAPES)})")
    return scene


def _jittered(name: str, rng: np.random.Generator) -> tuple[int, int, int]:
    rgb = np.array(COLOURS[name]) + rng.integers(-_JITTER, _JITTER + 1, 3)
    return tuple(int(v) for v in np.clip(rgb, 0, 255))


def shape_polygon(shape: str, cx: float, cy: float, size: float) -> list[tuple[float, float]] | None:
    """Corner points of ``shape`` centred at (cx, cy) with extent ``size``; None for a circle."""
    h = size / 2
    if shape == "square":
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":
        return [(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "cross":
        t = size / 6  # half the arm thickness: arms a third of the extent wide
        return [(cx - t, cy - h), (cx + t, cy - h), (cx + t, cy - t), (cx + h, cy - t), (cx + h, cy + t),
                (cx + t, cy + t), (cx + t, cy + h), (cx - t, cy + h), (cx - t, cy + t), (cx - h, cy + t),
                (cx - h, cy - t), (cx - t, cy - t)]
    if shape == "circle":
        return None
    raise ValueError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")


def draw_scene(scene: Scene, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """An RGB image of ``scene``: the shape at a random size (35-75 % of the side) and position."""
    big = size * _SUPERSAMPLE
    img = Image.new("RGB", (big, big), _jittered(scene.background, rng))
    extent = rng.uniform(0.35, 0.75) * big
    cx, cy = rng.uniform(extent / 2, big - extent / 2, 2)
    draw = ImageDraw.Draw(img)
    fill = _jittered(scene.colour, rng)
    points = shape_polygon(scene.shape, cx, cy, extent)
    if points is None:
        draw.ellipse([cx - extent / 2, cy - extent / 2, cx + extent / 2, cy + extent / 2], fill=fill)
    else:
        draw.polygon(points, fill=fill)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def random_scenes(n: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random scenes: images (n,size,size,3) uint8 and caption indices (n,) into all_scenes()."""
    rng = np.random.default_rng(seed)
    scenes = all_scenes()
    labels = rng.integers(0, len(scenes), n)
    images = np.stack([np.asarray(draw_scene(scenes[i], rng, size)) for i in labels])
    return images, labels
