"""``pixel``: pixel art from cells of a chosen shape (Pixray's pixel drawer, without diffvg)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from .cell_grid import CellGridDrawer, GridOptions


@dataclass(frozen=True)
class PixelOptions(GridOptions):
    pixel_type: str = option("rect", "Cell shape", choices=["rect"])


class PixelDrawer(CellGridDrawer):
    """Cells rendered by their coverage of each pixel.

    For ``rect`` cells the coverage is an exact partition of the canvas, so rendering is a gather
    of each pixel's cell colour (cell borders fall on pixel boundaries, as in the exported image).
    """

    Options = PixelOptions
    # Pixray's pixel drawer steps its cells with Adam at 0.03 whatever the run's rate; here that
    # is the rate when the learning_rate setting is unset.
    default_learning_rate = 0.03

    def __init__(self, options: PixelOptions, width: int, height: int) -> None:
        super().__init__(options, width, height)
        rows, cols = self.grid
        # Index of the cell under each pixel centre; a buffer so it follows the module's device.
        ys = ((torch.arange(height) + 0.5) * rows / height).long().clamp(max=rows - 1)
        xs = ((torch.arange(width) + 0.5) * cols / width).long().clamp(max=cols - 1)
        self.register_buffer("cell_index", (ys[:, None] * cols + xs[None, :]).flatten(), persistent=False)

    def synth(self) -> torch.Tensor:
        flat = self.colors.flatten(2)
        return flat[:, :, self.cell_index].view(1, 3, self.height, self.width)
