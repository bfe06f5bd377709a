"""``wallpaper``: Pixray's repeating-pattern views (``wallpaper_type``, ``wallpaper_shift``,
``wallpaper_edge_match``).

Each step the perceptors see the picture rolled by a random offset, so it repeats seamlessly:
``none`` in both directions (as ``tiler``), ``horizontal`` or ``vertical`` in one, and ``shift``
(or ``wallpaper_shift: true``, as Pixray's example files write it, which Pixray itself ignores) as
two rows, the second moved sideways by half the width (a brick pattern), rolled in both.
``wallpaper_edge_match`` (pixels, not with ``shift``) pulls that many columns (rows) at the two
edges towards each other (their mean squared difference / the count, as the loss) and shows the
perceptors the picture without half of them on each side, as Pixray.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..options import option
from .base import Filter, random_roll

WALLPAPER_TYPES = ("none", "horizontal", "vertical", "shift")


@dataclass(frozen=True)
class WallpaperOptions:
    wallpaper_type: str = option("none", "How the picture repeats: none (both directions), horizontal, "
                                         "vertical, or shift (rows offset like bricks)",
                                 choices=list(WALLPAPER_TYPES))
    wallpaper_shift: bool = option(False, "Rows offset by half the width, as wallpaper_type shift (Pixray's "
                                          "example files set this)")
    wallpaper_edge_match: int = option(0, "Pixels at each repeating edge pulled to match the opposite "
                                          "edge (0: none)", minimum=0, maximum=256)


class WallpaperFilter(Filter):
    Options = WallpaperOptions

    def forward(self, image: torch.Tensor,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        kind, match = self.options.wallpaper_type, self.options.wallpaper_edge_match
        width = image.shape[-1]
        if kind == "shift" or self.options.wallpaper_shift:
            image = torch.cat([image, torch.roll(image, shifts=width // 2, dims=-1)], dim=-2)
            return random_roll(image, (-2, -1), generator), None
        dims = {"horizontal": (-1,), "vertical": (-2,)}.get(kind, (-1, -2))
        loss = None
        for dim in dims:
            if match:
                image, part = _matched(image, dim, match)
                loss = part if loss is None else loss + part
        return random_roll(image, dims, generator), loss


def _matched(image: torch.Tensor, dim: int, match: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` without ``match // 2`` pixels at both ends of ``dim``, and the edge-match loss:
    the mean squared difference of the first and last ``match`` pixels along ``dim``, / ``match``."""
    size = image.shape[dim]
    if 2 * match > size:
        match = size // 2
    first, last = image.narrow(dim, 0, match), image.narrow(dim, size - match, match)
    loss = F.mse_loss(first, last) / match
    trim = match // 2
    return image.narrow(dim, trim, size - 2 * trim), loss
