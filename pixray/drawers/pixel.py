"""``pixel``: pixel art from cells of a chosen shape (Pixray's pixel drawer, without diffvg)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..options import option
from ..raster import CoverageTable, polygon_coverage
from ..raster.svg import svg_document, svg_polygon, svg_rect
from .base import Drawer
from .cell_grid import GridOptions, grid_shape
from .cell_shapes import CELL_KINDS, SHIFTED_KINDS, CellGrid

# Pixray's iso check: default grids stretched so that cells keep their proportions.
_ISO_STRETCH = {"tri": (1.414, 1.0), "hex": (1.0, 1.414), "diamond": (1.0, 2.0)}


@dataclass(frozen=True)
class PixelOptions(GridOptions):
    pixel_type: str = option("rect", "Cell shape", choices=list(CELL_KINDS))
    pixel_edge_check: bool = option(True, "Make the grid symmetric at the canvas's edges, as Pixray: odd "
                                          "columns and rows for shifted shapes (rectshift, hex, diamond), "
                                          "odd columns and even rows for tri")
    pixel_iso_check: bool = option(True, "Stretch the default grid so cells keep their proportions, as "
                                         "Pixray: 1.414x the columns for tri, the rows for hex, 2x the "
                                         "rows for diamond (not when pixel_size is given)")
    transparent: bool = option(False, "Cells get an opacity too: the image is RGBA (see transparent_weight)")


def pixel_grid(options: PixelOptions, width: int, height: int) -> tuple[int, int]:
    """(rows, columns) of the pixel drawer's grid, after Pixray's iso and edge checks."""
    stretch = _ISO_STRETCH.get(options.pixel_type, (1.0, 1.0)) if options.pixel_iso_check else (1.0, 1.0)
    rows, cols = grid_shape(options, width, height, stretch)
    if options.pixel_edge_check:
        if options.pixel_type in SHIFTED_KINDS:
            cols, rows = cols | 1, rows | 1
        elif options.pixel_type == "tri":
            cols, rows = cols | 1, rows + rows % 2
    return rows, cols


class PixelDrawer(Drawer):
    """Cells of one flat colour each, rendered by their exact coverage of each pixel.

    The coverage table is computed once for the grid; rendering is a gather and a weighted sum,
    differentiable with respect to the colours.
    """

    Options = PixelOptions
    # Pixray's pixel drawer steps its cells with Adam at 0.03 whatever the run's rate; here that
    # is the rate when the learning_rate setting is unset.
    default_learning_rate = 0.03

    def __init__(self, options: PixelOptions, width: int, height: int) -> None:
        super().__init__(options, width, height)
        rows, cols = pixel_grid(options, width, height)
        self.cells = CellGrid(options.pixel_type, rows, cols, width, height)
        table = polygon_coverage(self.cells.polygons, self.cells.owners, width, height)
        self.register_buffer("cover_index", table.index, persistent=False)
        self.register_buffer("cover_weight", table.weight, persistent=False)
        channels = 4 if options.transparent else 3
        self.colors = nn.Parameter(torch.full((channels, self.cells.count), 0.5))

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of the cell grid."""
        return self.cells.rows, self.cells.cols

    def synth(self) -> torch.Tensor:
        """(1,3,H,W), or with ``transparent`` (1,4,H,W): straight RGB and the opacity."""
        if self.colors.shape[0] == 3:
            return self._cover(self.colors)
        alpha = self.colors[3:]
        covered = self._cover(torch.cat([self.colors[:3] * alpha, alpha]))  # premultiplied where cells meet
        opacity = covered[:, 3:]
        return torch.cat([covered[:, :3] / opacity.clamp_min(1e-6), opacity], 1)

    def _cover(self, values: torch.Tensor) -> torch.Tensor:
        """(1,C,H,W): the cells' values (C, cells) through the coverage table (a buffer, so it
        follows the module's device)."""
        table = CoverageTable(self.cover_index, self.cover_weight, self.width, self.height)
        return table.render(values)[None]

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor, generator: torch.Generator) -> None:
        """Each cell takes the mean colour of the pixels it covers (weighted by coverage)."""
        image = image[:, :3]
        flat = image.to(self.colors).reshape(3, -1, 1).expand(3, -1, self.cover_index.shape[1])
        index = self.cover_index.expand(3, -1, -1).reshape(3, -1)
        sums = self.colors.new_zeros(3, self.cells.count).scatter_add_(1, index, (flat * self.cover_weight)
                                                                        .reshape(3, -1))
        area = self.colors.new_zeros(self.cells.count).scatter_add_(0, self.cover_index.flatten(),
                                                                     self.cover_weight.flatten())
        self.colors[:3] = (sums / area.clamp_min(1e-12)).clamp(0, 1)
        self.colors[3:] = 1.0  # opaque, as Pixray starts

    @torch.no_grad()
    def reapply_image(self, image: torch.Tensor) -> None:
        """As the base, keeping each cell's opacity (the image has none)."""
        opacity = self.colors[3:].clone()
        super().reapply_image(image)
        self.colors[3:] = opacity

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [self.colors], "bounds": (0.0, 1.0)}]

    def svg(self, state: Mapping[str, torch.Tensor]) -> str:
        colors = state["colors"].float().cpu()
        # Renderers antialias each polygon on its own, so shared edges let a little of what lies
        # beneath show through: the mean colour there keeps those seams faint.
        shapes = [] if len(colors) == 4 else [svg_rect(self.width, self.height, colors.mean(1).tolist())]
        rows = colors.T.tolist()
        shapes += [svg_polygon(polygon, rows[owner])
                   for polygon, owner in zip(self.cells.polygons, self.cells.owners, strict=True)]
        return svg_document(self.width, self.height, shapes)
