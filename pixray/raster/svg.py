"""SVG text for the shapes the rasteriser draws: polygons, stroked cubic paths, a background."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def _unit(value: float) -> float:
    return min(max(float(value), 0.0), 1.0)


def _colour(rgb: Sequence[float]) -> str:
    r, g, b = (round(_unit(v) * 255) for v in rgb[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def svg_document(width: int, height: int, shapes: Iterable[str]) -> str:
    """A standalone SVG of ``width`` x ``height`` pixels holding ``shapes`` (elements, in order)."""
    body = "\n".join(shapes)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">\n{body}\n</svg>\n')


def svg_rect(width: float, height: float, rgb: Sequence[float]) -> str:
    """A filled rectangle from the origin (a background)."""
    return f'<rect width="{_number(width)}" height="{_number(height)}" fill="{_colour(rgb)}"/>'


def svg_polygon(points: np.ndarray, rgba: Sequence[float]) -> str:
    """A polygon (V, 2) in pixels filled with RGB or straight RGBA ``rgba``."""
    coords = " ".join(f"{_number(x)},{_number(y)}" for x, y in points)
    opacity = f' fill-opacity="{_number(_unit(rgba[3]))}"' if len(rgba) > 3 else ""
    return f'<polygon points="{coords}" fill="{_colour(rgba)}"{opacity}/>'


def svg_cubic_path(controls: np.ndarray, width: float, rgba: Sequence[float]) -> str:
    """An open path of joined cubic Béziers, ``controls`` (3K+1, 2), stroked ``width`` pixels wide
    with round caps and joins in straight RGBA ``rgba``."""
    start, rest = controls[0], controls[1:]
    curves = " ".join(f"C {' '.join(f'{_number(x)} {_number(y)}' for x, y in rest[i:i + 3])}"
                      for i in range(0, len(rest), 3))
    opacity = _unit(rgba[3]) if len(rgba) > 3 else 1.0
    return (f'<path d="M {_number(start[0])} {_number(start[1])} {curves}" fill="none" '
            f'stroke="{_colour(rgba)}" stroke-opacity="{_number(opacity)}" '
            f'stroke-width="{_number(width)}" stroke-linecap="round" stroke-linejoin="round"/>')
