"""Pure-torch differentiable rasterising: polygon coverage, stroked Bézier paths, compositing.

Knows nothing of drawers: it turns geometry (pixel coordinates, x right, y down, the canvas from
(0,0) to (width,height), pixel (i,j) the unit box at column j, row i) into images.
"""

from .bezier import cubic_polylines
from .polygons import CoverageTable, polygon_coverage
from .strokes import render_strokes

__all__ = ["CoverageTable", "cubic_polylines", "polygon_coverage", "render_strokes"]
