"""``fast_pixel``: a colour grid shown as pixel art by nearest-neighbour upsampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .cell_grid import CellGridDrawer


class FastPixelDrawer(CellGridDrawer):
    """Rectangular cells only; one interpolation per render, the cheapest drawer there is."""

    def synth(self) -> torch.Tensor:
        return F.interpolate(self.colors, size=(self.height, self.width), mode="nearest-exact")
