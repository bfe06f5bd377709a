"""A grid of coloured cells, the shared state of the pixel-art drawers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..options import option
from .base import Drawer


@dataclass(frozen=True)
class GridOptions:
    pixel_size: list[int] | None = option(
        None, "Cells 'columns rows'; default 80x45 (landscape), 40x40 (square), 40x50 (portrait)",
        minimum=1, maximum=2048, length=2)
    pixel_scale: float = option(1.0, "Divides the number of columns and rows, as Pixray: 2 gives half as "
                                     "many, twice as big cells", minimum=0.05, maximum=32)


def grid_shape(options: GridOptions, width: int, height: int,
               stretch: tuple[float, float] = (1.0, 1.0)) -> tuple[int, int]:
    """(rows, columns) of the cell grid for a canvas of ``width`` x ``height`` pixels.

    As Pixray: ``pixel_size``, else 80x45 (landscape), 40x40 (square) or 40x50 (portrait) whatever
    the exact shape, the default stretched by (columns, rows) factors ``stretch``; then divided by
    ``pixel_scale`` and capped at one cell per pixel.
    """
    if options.pixel_size is not None:
        cols, rows = options.pixel_size
    else:
        cols, rows = (80, 45) if width > height else (40, 40) if width == height else (40, 50)
        cols, rows = int(stretch[0] * cols), int(stretch[1] * rows)
    cols = max(1, min(width, int(cols / options.pixel_scale)))
    rows = max(1, min(height, int(rows / options.pixel_scale)))
    return rows, cols


class CellGridDrawer(Drawer):
    """Colours of a (rows, cols) grid of cells, each cell one flat colour in [0,1]."""

    Options = GridOptions

    def __init__(self, options: GridOptions, width: int, height: int) -> None:
        super().__init__(options, width, height)
        rows, cols = grid_shape(options, width, height)
        self.colors = nn.Parameter(torch.full((1, 3, rows, cols), 0.5))

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of the cell grid."""
        return self.colors.shape[-2], self.colors.shape[-1]

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor, generator: torch.Generator) -> None:
        self.colors.copy_(F.adaptive_avg_pool2d(image.to(self.colors), self.grid).clamp(0, 1))

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [self.colors], "bounds": (0.0, 1.0)}]
