"""Exact (box-filtered) pixel coverage of simple polygons, and rendering through a fixed table of it.

The area of a polygon inside a pixel box comes from Green's theorem: along a vertical line the
polygon's edges cross in alternating directions, so summing, over the edges, the signed length of
the box's column lying below each crossing gives the length of the line inside both. Integrating
that over the box's width edge by edge is a closed form (the integral of a clamped linear function),
exact for any simple polygon, convex or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: Coverage below this (a fraction of a pixel) is dropped from tables: float noise, not geometry.
NEGLIGIBLE = 1e-9


def _clamped_ramp_integral(t: np.ndarray) -> np.ndarray:
    """G(t) = integral from -inf to t of clamp(s, 0, 1) ds."""
    return np.where(t < 0, 0.0, np.where(t <= 1, 0.5 * t * t, t - 0.5))


def box_areas(polygons: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Area of polygon ``n`` inside the unit box at (``px[n, k]``, ``py[n, k]``).

    ``polygons``: (N, V, 2) vertices in order (either orientation); ``px``, ``py``: (N, K) box corners
    (the box is [px, px+1] x [py, py+1]). Returns (N, K) areas in [0, 1].
    """
    a = polygons[:, :, None, :]  # (N, V, 1, 2)
    b = np.roll(polygons, -1, axis=1)[:, :, None, :]
    xa, ya, xb, yb = a[..., 0], a[..., 1], b[..., 0], b[..., 1]  # (N, V, 1)
    x0, y0 = px[:, None, :], py[:, None, :]  # (N, 1, K)
    lo = np.maximum(x0, np.minimum(xa, xb))
    hi = np.minimum(x0 + 1, np.maximum(xa, xb))
    span = np.clip(hi - lo, 0, None)
    dx = xb - xa
    slope = np.divide(yb - ya, dx, out=np.zeros_like(dx), where=dx != 0)
    t_lo = ya + (lo - xa) * slope - y0
    t_hi = ya + (hi - xa) * slope - y0
    dt = t_hi - t_lo
    steep = np.abs(dt) > 1e-12
    mean = np.where(steep,
                    (_clamped_ramp_integral(t_hi) - _clamped_ramp_integral(t_lo)) / np.where(steep, dt, 1),
                    np.clip(0.5 * (t_lo + t_hi), 0, 1))
    signed = (np.sign(dx) * span * mean).sum(axis=1)  # (N, K)
    return np.abs(signed)


@dataclass(frozen=True)
class CoverageTable:
    """Which shapes cover each pixel and by how much: a gather table.

    ``index`` (H*W, M) long: shape numbers (0 where unused); ``weight`` (H*W, M) float: the fraction
    of the pixel each covers (0 where unused).
    """

    index: torch.Tensor
    weight: torch.Tensor
    width: int
    height: int

    def render(self, values: torch.Tensor) -> torch.Tensor:
        """The image of shapes filled with ``values`` (C, S): (C, H, W), each pixel the
        coverage-weighted sum of its shapes' values (differentiable w.r.t. ``values``)."""
        gathered = values[:, self.index]  # (C, H*W, M)
        return (gathered * self.weight).sum(-1).view(values.shape[0], self.height, self.width)

    def coverage(self) -> torch.Tensor:
        """Total coverage of each pixel, (H, W)."""
        return self.weight.sum(-1).view(self.height, self.width)


def polygon_coverage(polygons: Sequence[np.ndarray], owners: Sequence[int], width: int, height: int,
                     chunk: int = 4096) -> CoverageTable:
    """The coverage table of polygons on a ``width`` x ``height`` canvas.

    ``polygons``: vertex arrays (V, 2) in pixel coordinates; ``owners``: the shape each polygon
    belongs to (a shape may be several polygons; their coverage adds up). Parts outside the canvas
    are ignored. Where polygons overlap, coverage adds up too: callers tile.
    """
    by_count: dict[int, list[int]] = {}
    for i, poly in enumerate(polygons):
        by_count.setdefault(len(poly), []).append(i)
    owner_of = np.asarray(owners, dtype=np.int64)
    pixels, shapes, areas = [], [], []
    for members in by_count.values():
        for start in range(0, len(members), chunk):
            ids = np.asarray(members[start:start + chunk])
            polys = np.stack([np.asarray(polygons[i], dtype=np.float64) for i in ids])  # (N, V, 2)
            x0 = np.clip(np.floor(polys[..., 0].min(1)), 0, width).astype(np.int64)
            y0 = np.clip(np.floor(polys[..., 1].min(1)), 0, height).astype(np.int64)
            x1 = np.clip(np.ceil(polys[..., 0].max(1)), 0, width).astype(np.int64)
            y1 = np.clip(np.ceil(polys[..., 1].max(1)), 0, height).astype(np.int64)
            bw, bh = int((x1 - x0).max(initial=0)), int((y1 - y0).max(initial=0))
            if bw == 0 or bh == 0:
                continue
            oy, ox = np.divmod(np.arange(bw * bh), bw)
            px, py = x0[:, None] + ox, y0[:, None] + oy  # (N, K)
            inside = (px < x1[:, None]) & (py < y1[:, None])
            area = box_areas(polys, px.astype(np.float64), py.astype(np.float64))
            keep = inside & (area > NEGLIGIBLE)
            pixels.append((py * width + px)[keep])
            shapes.append(np.broadcast_to(owner_of[ids][:, None], keep.shape)[keep])
            areas.append(area[keep])
    return _table(np.concatenate(pixels or [np.zeros(0, np.int64)]),
                  np.concatenate(shapes or [np.zeros(0, np.int64)]),
                  np.concatenate(areas or [np.zeros(0)]), width, height)


def _table(pixel: np.ndarray, shape: np.ndarray, area: np.ndarray, width: int, height: int) -> CoverageTable:
    """Entries (pixel, shape, area) summed per (pixel, shape) and laid out as a gather table."""
    span = shape.max(initial=0) + 1
    unique, inverse = np.unique(pixel * span + shape, return_inverse=True)
    summed = np.bincount(inverse, weights=area, minlength=len(unique))
    pixel, shape = unique // span, unique % span
    order = np.argsort(pixel, kind="stable")
    pixel, shape, summed = pixel[order], shape[order], summed[order]
    starts = np.searchsorted(pixel, np.arange(width * height))
    rank = np.arange(len(pixel)) - starts[pixel]
    depth = int(rank.max(initial=-1)) + 1 or 1
    index = np.zeros((width * height, depth), dtype=np.int64)
    weight = np.zeros((width * height, depth), dtype=np.float32)
    index[pixel, rank] = shape
    weight[pixel, rank] = summed
    return CoverageTable(torch.from_numpy(index), torch.from_numpy(weight), width, height)
