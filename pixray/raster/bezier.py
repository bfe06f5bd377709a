"""Cubic Bézier paths flattened to polylines (differentiably: a fixed linear map of the controls)."""

from __future__ import annotations

import torch


def cubic_polylines(controls: torch.Tensor, samples: int) -> torch.Tensor:
    """Polylines through ``samples`` points per cubic segment of each path.

    ``controls``: (N, 3K+1, 2) paths of K joined cubic segments (start, then two handles and an end
    per segment). Returns (N, K*samples+1, 2): each segment's start and ``samples - 1`` inner
    points, then the path's last point.
    """
    n, count, _ = controls.shape
    k = (count - 1) // 3
    if count != 3 * k + 1 or k < 1:
        raise ValueError(f"a cubic path has 3K+1 control points, got {count}")
    t = torch.arange(samples, dtype=controls.dtype, device=controls.device) / samples
    s = 1 - t
    basis = torch.stack([s ** 3, 3 * s * s * t, 3 * s * t * t, t ** 3], dim=1)  # (samples, 4)
    index = (torch.arange(k, device=controls.device) * 3)[:, None] + torch.arange(4, device=controls.device)
    segments = controls[:, index]  # (N, K, 4, 2)
    points = torch.einsum("sc,nkcd->nksd", basis, segments).reshape(n, k * samples, 2)
    return torch.cat([points, controls[:, -1:]], dim=1)
