"""Pixray's pixel cell shapes as polygons, and the grid of them that tiles a canvas.

Cells sit on a grid of ``rows`` x ``cols`` boxes (``cw`` x ``ch`` pixels). In the shifted kinds,
even rows (counting from 0) hold one cell fewer, offset by half a cell, as in Pixray. Shapes are
Pixray's: ``tri`` apexes alternate with (row + col), ``diamond`` cells are two rows tall, ``hex``
cells overhang their box by 1/6 above and below, ``knit`` cells lean and slump.

Pixray leaves gaps where its shapes miss the canvas's edges (half cells at the ends of shifted
rows, notches along the top and bottom) and lets each knit row overdraw the one above. Here the
cells tile the canvas exactly: each knit cell is the part of Pixray's that stays visible, and the
shapes one ring beyond the grid, which fill the edge gaps, belong to the nearest cell in the grid.
"""

from __future__ import annotations

import math

import numpy as np

CELL_KINDS = ("rect", "rectshift", "hex", "tri", "diamond", "knit")
#: Kinds whose even rows are shifted by half a cell and hold one cell fewer.
SHIFTED_KINDS = ("rectshift", "hex", "diamond")


def _shape(kind: str, x1: float, y1: float, x2: float, y2: float, up: bool) -> list[tuple[float, float]]:
    """The polygon of a cell whose box is (x1, y1)-(x2, y2)."""
    w, h = x2 - x1, y2 - y1
    xm, ym = (x1 + x2) / 2, (y1 + y2) / 2
    if kind in ("rect", "rectshift"):
        return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    if kind == "hex":
        return [(xm, y2 + h / 6), (x1, y2 - h / 6), (x1, y1 + h / 6), (xm, y1 - h / 6), (x2, y1 + h / 6),
                (x2, y2 - h / 6)]
    if kind == "tri":  # the base is twice the box's width: neighbours interlock
        if up:
            return [(xm, y1), (x1 - w / 2, y2), (x2 + w / 2, y2)]
        return [(xm, y2), (x2 + w / 2, y1), (x1 - w / 2, y1)]
    if kind == "diamond":
        return [(xm, y1 - h / 2), (x1, ym), (xm, y2 + h / 2), (x2, ym)]
    if kind == "knit":
        # Pixray's stitch: sides from 0.45 rows above the box's top and bottom, a V notch down to
        # 0.3 rows below them, the notch's shoulders 0.1 cells in from the sides. The bottom edge is
        # the next row's top edge, which Pixray draws over it.
        top, low = y1 - 0.45 * h, y2 - 0.45 * h
        return [(x2, top), (x2 - 0.1 * w, top), (xm, y1 + 0.3 * h), (x1 + 0.1 * w, top), (x1, top),
                (x1, low), (x1 + 0.1 * w, low), (xm, y2 + 0.3 * h), (x2 - 0.1 * w, low), (x2, low)]
    raise ValueError(f"unknown cell kind {kind!r}; expected one of {', '.join(CELL_KINDS)}")


class CellGrid:
    """The cells of one grid: their polygons, which cell each belongs to, and their centres.

    Cells are numbered row by row. ``polygons`` includes the ring of shapes beyond the grid that
    cover the canvas's edges; ``owners`` gives the cell each polygon is painted with.
    """

    def __init__(self, kind: str, rows: int, cols: int, width: int, height: int) -> None:
        self.kind, self.rows, self.cols = kind, rows, cols
        self.cell_width, self.cell_height = width / cols, height / rows
        self.row_counts = [self._count(r) for r in range(rows)]
        self.row_starts = np.concatenate([[0], np.cumsum(self.row_counts)]).astype(int).tolist()
        self.polygons: list[np.ndarray] = []
        self.owners: list[int] = []
        for r in range(-1, rows + 1):
            for c in range(-1, self._count(r) + 1):
                x1 = (self._offset(r) + c) * self.cell_width
                y1 = r * self.cell_height
                up = (r + c) % 2 == 0
                shape = np.asarray(_shape(kind, x1, y1, x1 + self.cell_width, y1 + self.cell_height, up))
                low, high = shape.min(0), shape.max(0)
                if low[0] < width and low[1] < height and high[0] > 0 and high[1] > 0:
                    self.polygons.append(shape)
                    self.owners.append(self._nearest(r, c))

    @property
    def count(self) -> int:
        """How many cells the grid has."""
        return self.row_starts[-1]

    def _offset(self, row: int) -> float:
        return 0.5 if self.kind in SHIFTED_KINDS and row % 2 == 0 else 0.0

    def _count(self, row: int) -> int:
        return self.cols - 1 if self._offset(row) and self.cols > 1 else self.cols

    def _nearest(self, row: int, col: int) -> int:
        """The grid cell nearest the centre of the cell at (row, col), which may lie beyond the grid."""
        centre = self._offset(row) + col + 0.5
        r = min(max(row, 0), self.rows - 1)
        c = min(max(math.floor(centre - self._offset(r)), 0), self.row_counts[r] - 1)
        return self.row_starts[r] + c

