"""Stroked polylines with round caps and joins, antialiased, alpha-composited in drawing order.

A pixel's coverage by a stroke is the box filter of a band: the length of the pixel's unit span,
centred on its distance ``d`` to the polyline, that falls within the half-width ``r``:
``clamp(min(r + 1/2 - d, 2r), 0, 1)`` (a one-pixel ramp across the edge, and thin strokes as faint
as their width). The distance to a polyline is the least distance to its segments, which makes
caps and joins round.

Memory stays bounded: the canvas is cut into square tiles, and each segment is paired only with
the tiles its reach (bounding box grown by half its width and the ramp) touches. Per tile, each
stroke's distance is the minimum over just its segments there, found in chunks of groups with the
same number of segments, without autograd; only the nearest segment of each pixel is kept, and the
backward pass differentiates the distance to it analytically, so nothing of the pixels x segments
work outlives the forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import RunError

#: Distance elements (tile pixels x segments) per chunk of the coverage pass.
CHUNK_ELEMENTS = 1 << 21
#: Most (segment, tile) pairs one render may lay out: about 1.5 GB of index tensors at the peak.
MAX_PAIRS = 1 << 25


@dataclass(frozen=True)
class _Layout:
    """Which segments each (tile, stroke) pair sees, and which pairs each used tile stacks."""

    segments: torch.Tensor  # (G, M) long: segment numbers, N*S (a far-away dummy) where unused
    counts: torch.Tensor  # (G,) long: how many of a group's segments are real (they come first)
    group_path: torch.Tensor  # (G,) long: the stroke of each (tile, stroke) group
    group_tile: torch.Tensor  # (G,) long: its tile
    slots: torch.Tensor  # (U, K) long: per used tile, its groups, the topmost first; G where unused
    used_tiles: torch.Tensor  # (U,) long


def _layout(a: torch.Tensor, b: torch.Tensor, reach: torch.Tensor, width: int, height: int,
            tile: int) -> _Layout | None:
    """Pair segments (N, S, 2 endpoints ``a``, ``b``) with the tiles within ``reach`` (N,) of them."""
    n, s = a.shape[:2]
    tiles_x, tiles_y = math.ceil(width / tile), math.ceil(height / tile)
    lo = torch.minimum(a, b) - reach[:, None, None]
    hi = torch.maximum(a, b) + reach[:, None, None]
    visible = ((hi[..., 0] > 0) & (lo[..., 0] < width) & (hi[..., 1] > 0) & (lo[..., 1] < height)).flatten()
    tx0 = (lo[..., 0] / tile).floor().clamp(0, tiles_x - 1).long().flatten()
    ty0 = (lo[..., 1] / tile).floor().clamp(0, tiles_y - 1).long().flatten()
    nx = (hi[..., 0] / tile).floor().clamp(0, tiles_x - 1).long().flatten() - tx0 + 1
    ny = (hi[..., 1] / tile).floor().clamp(0, tiles_y - 1).long().flatten() - ty0 + 1
    count = nx * ny * visible
    total = int(count.sum())
    if total == 0:
        return None
    if total > MAX_PAIRS:
        raise RunError(f"the strokes reach over too much of the canvas to render within memory ({total} "
                       f"segment-tile pairs, at most {MAX_PAIRS}); use fewer, shorter or thinner strokes")
    # The size given, repeat_interleave need not read the counts' sum back from the device again.
    seg = torch.repeat_interleave(torch.arange(n * s, device=a.device), count, output_size=total)
    offset = torch.arange(total, device=a.device) - torch.repeat_interleave(count.cumsum(0) - count, count,
                                                                             output_size=total)
    tile_of = (ty0[seg] + offset // nx[seg]) * tiles_x + tx0[seg] + offset % nx[seg]
    path = seg // s
    order = torch.argsort((tile_of * n + path) * s + seg % s)
    seg, tile_of, path = seg[order], tile_of[order], path[order]
    group_key = tile_of * n + path
    first = torch.ones_like(group_key, dtype=torch.bool)
    first[1:] = group_key[1:] != group_key[:-1]
    group = first.cumsum(0) - 1
    starts = first.nonzero().squeeze(1)
    rank = torch.arange(total, device=a.device) - starts[group]
    segments = torch.full((len(starts), int(rank.max()) + 1), n * s, dtype=torch.long, device=a.device)
    segments[group, rank] = seg
    group_tile, group_path = tile_of[starts], path[starts]
    new_tile = torch.ones_like(group_tile, dtype=torch.bool)
    new_tile[1:] = group_tile[1:] != group_tile[:-1]
    tile_slot = new_tile.cumsum(0) - 1
    tile_starts = new_tile.nonzero().squeeze(1)
    depth = torch.arange(len(group_tile), device=a.device) - tile_starts[tile_slot]
    per_tile = _tally(tile_slot, len(tile_starts))
    slots = torch.full((len(tile_starts), int(per_tile.max())), len(group_tile), dtype=torch.long,
                       device=a.device)
    slots[tile_slot, per_tile[tile_slot] - 1 - depth] = torch.arange(len(group_tile), device=a.device)
    counts = _tally(group, len(starts))
    return _Layout(segments, counts, group_path, group_tile, slots, group_tile[tile_starts])


def _tally(index: torch.Tensor, size: int) -> torch.Tensor:
    """(size,) long: how often each of 0..size-1 occurs in ``index`` (long). ``torch.bincount``'s, but
    without reading the index's least and greatest values back from a GPU first, as its kernel does."""
    tally = torch.zeros(size, dtype=torch.long, device=index.device)
    return tally.index_add_(0, index, torch.ones_like(index))


def _nearest(seg_a: torch.Tensor, seg_b: torch.Tensor, origin: torch.Tensor, local: torch.Tensor,
             segments: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """For the pixel centres ``origin`` (G, 2) + ``local`` (P, 2) of each group, the number of the
    nearest of its ``segments`` (G, M; the first ``counts`` (G,) are real). Groups with the same
    count run together, so no work goes to padding."""
    nearest = torch.empty((len(origin), len(local)), dtype=torch.long, device=origin.device)
    lx, ly = local[None, :, 0, None], local[None, :, 1, None]  # (1, P, 1)
    order = torch.argsort(counts)
    sizes = _tally(counts[order], segments.shape[1] + 1).tolist()  # groups with m segments, m = 0..M
    start = 0
    for m, size in enumerate(sizes):
        per_chunk = max(1, CHUNK_ELEMENTS // (len(local) * max(m, 1)))
        for first in range(start, start + size, per_chunk):
            ids = order[first:min(first + per_chunk, start + size)]
            segs = segments[ids, :m]  # (g, m)
            a = seg_a[segs] - origin[ids, None]  # (g, m, 2), relative to the tile
            ab = seg_b[segs] - seg_a[segs]
            ax, ay, abx, aby = (v[:, None, :] for v in (a[..., 0], a[..., 1], ab[..., 0], ab[..., 1]))
            inv = 1 / (abx * abx + aby * aby).clamp_min(1e-12)  # (g, 1, m)
            dx = lx - ax  # (g, P, m): the reduction runs along memory
            dy = ly - ay
            t = (dx * abx).add_(dy * aby).mul_(inv).clamp_(0, 1)
            dx.sub_(t * abx)
            dy.sub_(t.mul_(aby))
            which = dx.square_().add_(dy.square_()).argmin(-1)  # (g, P)
            nearest[ids] = segs.gather(1, which)
        start += size
    return nearest


def _to_segment(a: torch.Tensor, b: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Distance ``d`` from points ``q`` to segments ``a``-``b`` (all (..., 2)), the segment parameter
    ``t`` of the closest point, and the unit vector ``u`` from ``q`` to it."""
    ab = b - a
    t = (((q - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0, 1)
    offset = a + t[..., None] * ab - q
    d = offset.norm(dim=-1)
    return d, t, offset / d.clamp_min(1e-12)[..., None]


class _Coverage(torch.autograd.Function):
    """Coverage (G, P) of pixel centres ``origin`` (G, 2) + ``local`` (P, 2) by the polyline of each
    group's segments, of half-width (G,). The backward pass needs only each pixel's nearest segment:
    the distance moves with its endpoints by weights (1 - t, t) along the unit vector to the closest
    point."""

    @staticmethod
    def forward(ctx: Any, seg_a: torch.Tensor, seg_b: torch.Tensor, half_width: torch.Tensor,
                origin: torch.Tensor, local: torch.Tensor, segments: torch.Tensor,
                counts: torch.Tensor) -> torch.Tensor:
        nearest = _nearest(seg_a, seg_b, origin, local, segments, counts)
        q = origin[:, None] + local  # (G, P, 2)
        d, t, u = _to_segment(seg_a[nearest], seg_b[nearest], q)
        r = half_width[:, None]
        edge = r + 0.5 - d
        thin = edge > 2 * r  # the whole (narrow) stroke lies within the pixel's span
        value = torch.where(thin, 2 * r, edge)
        open_ = (value > 0) & (value < 1)
        ctx.save_for_backward(nearest, t, u, thin, open_)
        ctx.n_segments = seg_a.shape[0]
        return value.clamp(0, 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        nearest, t, u, thin, open_ = ctx.saved_tensors
        grad = grad * open_
        grad_r = torch.where(thin, 2 * grad, grad).sum(1)
        along = torch.where(thin, 0, -grad)[..., None] * u  # d(coverage)/d(closest point)
        flat, zeros = nearest.flatten(), along.new_zeros(ctx.n_segments, 2)
        grad_a = zeros.index_add(0, flat, ((1 - t)[..., None] * along).view(-1, 2))
        grad_b = zeros.index_add(0, flat, (t[..., None] * along).view(-1, 2))
        return grad_a, grad_b, grad_r, None, None, None, None


def render_strokes(polylines: torch.Tensor, half_widths: torch.Tensor, colors: torch.Tensor,
                   background: torch.Tensor, tile: int = 8) -> torch.Tensor:
    """Strokes over ``background``, the first at the bottom.

    ``polylines``: (N, L, 2) vertices in pixel coordinates (L >= 2; repeat the last point to pad
    shorter paths); ``half_widths``: (N,) in pixels; ``colors``: (N, 4) straight RGBA in [0,1];
    ``background``: (3, H, W). Returns (3, H, W), differentiable w.r.t. all four.
    """
    height, width = background.shape[-2:]
    if polylines.shape[0] == 0:
        return background
    a, b = polylines[:, :-1], polylines[:, 1:]
    with torch.no_grad():
        layout = _layout(a.detach(), b.detach(), half_widths.detach().clamp_min(0) + 1, width, height, tile)
    if layout is None:
        return background
    tiles_x, tiles_y = math.ceil(width / tile), math.ceil(height / tile)
    far = torch.full((1, 2), -1e6, dtype=polylines.dtype, device=polylines.device)
    seg_a = torch.cat([a.reshape(-1, 2), far])
    seg_b = torch.cat([b.reshape(-1, 2), far])
    coords = torch.arange(tile, dtype=polylines.dtype, device=polylines.device) + 0.5
    local = torch.stack(torch.meshgrid(coords, coords, indexing="xy"), -1).reshape(-1, 2)  # (P, 2) x, y
    origin = torch.stack([layout.group_tile % tiles_x, layout.group_tile // tiles_x], 1).to(polylines.dtype)
    origin = origin * tile
    group_width = half_widths[layout.group_path]
    coverage = _Coverage.apply(seg_a, seg_b, group_width, origin, local, layout.segments, layout.counts)
    coverage = torch.cat([coverage, polylines.new_zeros(1, tile * tile)])  # the last for empty slots
    alpha = coverage * torch.cat([colors[layout.group_path, 3], colors.new_zeros(1)])[:, None]
    rgb = torch.cat([colors[layout.group_path, :3], colors.new_zeros(1, 3)])
    stacked = alpha[layout.slots]  # (U, K, P), the topmost first
    through = (1 - stacked).cumprod(1)  # light through stroke k and all above it
    above = torch.cat([torch.ones_like(through[:, :1]), through[:, :-1]], 1)
    painted = torch.einsum("ukp,ukc->ucp", stacked * above, rgb[layout.slots])
    pad = (0, tiles_x * tile - width, 0, tiles_y * tile - height)
    tiles = (torch.nn.functional.pad(background, pad).view(3, tiles_y, tile, tiles_x, tile)
             .permute(1, 3, 0, 2, 4).reshape(tiles_y * tiles_x, 3, tile * tile))
    covered = painted + tiles[layout.used_tiles] * through[:, None, -1]
    tiles = tiles.index_copy(0, layout.used_tiles, covered)
    image = tiles.view(tiles_y, tiles_x, 3, tile, tile).permute(2, 0, 3, 1, 4)
    return image.reshape(3, tiles_y * tile, tiles_x * tile)[:, :height, :width]

