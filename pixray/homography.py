"""Homographies of quadrilaterals, each a few tensor operations for a whole batch.

The cutouts place every view by the perspective taking a square to a quadrilateral, and undo one
quadrilateral's perspective into another. kornia's ``get_perspective_transform`` computes such a
matrix entry by entry, each operation a kernel launch on a GPU, where a step's host time is what its
launches cost; these compute a whole batch in a few operations (docs/performance.md has the counts),
and the tests check them against kornia's.

Points are (x, y); homographies (n,3,3) act on column vectors (x, y, 1) and are defined up to scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _homogeneous(points: torch.Tensor) -> torch.Tensor:
    """``points`` (..., 2) as (..., 3) with a 1 appended."""
    return F.pad(points, (0, 1), value=1.0)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The z of the cross products of 2-vectors (..., 2) × (..., 2): (...)."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def square_to_quad(quads: torch.Tensor) -> torch.Tensor:
    """(n,3,3) homographies taking the unit square's corners (0,0), (1,0), (1,1), (0,1) (clockwise
    from the top left, y downwards) to ``quads`` (n,4,2), the corners in the same order.

    Heckbert's closed form: with the corners p0..p3 and their homogeneous P0..P3, the matrix's columns
    are (1+g)·P1 − P0, (1+h)·P3 − P0 and P0, where g·(p1 − p2) + h·(p3 − p2) = p0 − p1 + p2 − p3 (zero
    for a parallelogram, whose homography is affine). A quadrilateral with three corners on a line
    has no such homography: its matrix comes out singular, or with infinite or NaN entries.
    """
    p0, p1, p2, p3 = quads.unbind(-2)
    across = p0 - p1 + p2 - p3
    side_u, side_v = p1 - p2, p3 - p2
    # Cramer's rule: g and h are two cross products over a third, taken in one go.
    crosses = _cross(torch.stack([across, side_u, side_u], -2), torch.stack([side_v, across, side_v], -2))
    gh = crosses[..., :2] / crosses[..., 2:]
    corners = _homogeneous(quads)  # (n,4,3)
    first = corners[..., :1, :]
    columns = torch.cat([(1 + gh)[..., None] * corners[..., 1::2, :] - first, first], -2)
    return columns.transpose(-2, -1)


def inverse(homographies: torch.Tensor) -> torch.Tensor:
    """(n,3,3) inverses of ``homographies`` (n,3,3), up to scale: their adjugates, whose rows are the
    cross products of the matrix's columns in turn (c1×c2, c2×c0, c0×c1)."""
    columns = homographies.transpose(-2, -1)
    return torch.linalg.cross(columns.roll(-1, -2), columns.roll(-2, -2), dim=-1)


def quad_to_quad(sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(n,3,3) homographies taking each quadrilateral of ``sources`` (n,4,2) corner by corner to that
    of ``targets`` (n,4,2): kornia's ``get_perspective_transform(sources, targets)`` up to scale."""
    return square_to_quad(targets) @ inverse(square_to_quad(sources))


def transformed(homographies: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``points`` (n,k,2) through ``homographies`` (n,3,3): (n,k,2)."""
    moved = _homogeneous(points) @ homographies.transpose(-2, -1)
    return moved[..., :2] / moved[..., 2:]
