"""Strokes of joined cubic Béziers over a paper colour: the state shared by the stroke drawers.

As in Pixray (which draws them with diffvg), a stroke's width parameter is its half-width (diffvg's
``stroke_width``), bounded by ``min_stroke_width`` and ``max_stroke_width`` percent of the canvas
height; the drawn line is twice as wide (and so is its SVG ``stroke-width``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..options import SettingsError, option
from ..raster import cubic_polylines, render_strokes
from ..raster.svg import svg_cubic_path, svg_document, svg_rect
from .base import Drawer

#: Greatest distance, in pixels, between a Bézier curve and the polyline drawn for it.
FLATTENING_TOLERANCE = 0.35
#: Most cubic segments in all (strokes x segments per stroke): 5x Pixray's clipdraw default.
MAX_SEGMENTS = 16384


@dataclass(frozen=True)
class StrokeOptions:
    strokes: int | None = option(None, "Number of strokes; default from the drawer", minimum=1, maximum=10000)
    min_stroke_width: float | None = option(
        None, "Least stroke half-width (diffvg's stroke_width, as Pixray), percent of the canvas height; "
              "default from the drawer", minimum=0, maximum=50)
    max_stroke_width: float | None = option(
        None, "Greatest stroke half-width, percent of the canvas height; default from the drawer",
        minimum=0, maximum=50)


def flattening_samples(controls: torch.Tensor, tolerance: float = FLATTENING_TOLERANCE) -> int:
    """Polyline points per cubic segment that keep every curve of ``controls`` (N, 3K+1, 2) within
    ``tolerance`` pixels: a cubic's chord error with n samples is at most max|B''| / (8 n^2), and
    |B''| <= 6 x the largest second difference of its control points."""
    p = controls.detach()
    second = (p[:, :-2] - 2 * p[:, 1:-1] + p[:, 2:]).norm(dim=-1)
    worst = float(second.max()) if second.numel() else 0.0
    return min(32, max(2, math.ceil(math.sqrt(6 * worst / (8 * tolerance)))))


class StrokePathsDrawer(Drawer):
    """``strokes`` open paths of up to ``segments`` cubic segments each, with a half-width and an
    RGBA colour each, painted in order over a paper colour.

    Subclasses give Pixray's defaults and rates and place the strokes in :meth:`init_from_image`.
    """

    Options = StrokeOptions
    default_learning_rate = 1.0  # points; widths and colours step at fixed fractions of it
    encodes_images = False
    image_encoding_refusal = "places its strokes at random"
    default_strokes: ClassVar[int]
    default_min_width: ClassVar[float]  # percent of the canvas height
    default_max_width: ClassVar[float]
    width_floor: ClassVar[float] = 0.0  # least half-width in pixels, whatever the percentages say
    width_rate: ClassVar[float] = 0.1
    color_rate: ClassVar[float] = 0.01
    learn_colors: ClassVar[bool] = True
    paper_color: ClassVar[tuple[float, float, float]] = (1.0, 1.0, 1.0)

    def __init__(self, options: StrokeOptions, width: int, height: int, segments: int,
                 learn_paper: bool = False) -> None:
        """``segments``: the most cubic segments a stroke has; ``learn_paper``: whether the paper's
        colour is a parameter."""
        super().__init__(options, width, height)
        count = options.strokes or self.default_strokes
        low = options.min_stroke_width if options.min_stroke_width is not None else self.default_min_width
        high = options.max_stroke_width if options.max_stroke_width is not None else self.default_max_width
        if count * segments > MAX_SEGMENTS:
            raise SettingsError(f"setting 'strokes': {count} strokes of {segments} segments is "
                                f"{count * segments} cubic segments, over the {MAX_SEGMENTS} this drawer "
                                "renders; ask for fewer or shorter strokes")
        if low > high:
            def said(value: float, given: float | None) -> str:
                return f"{value:g}" if given is not None else f"{value:g}, this drawer's default"

            raise SettingsError(f"settings 'min_stroke_width' ({said(low, options.min_stroke_width)}) and "
                                f"'max_stroke_width' ({said(high, options.max_stroke_width)}): the least "
                                "width is above the greatest; give min_stroke_width <= max_stroke_width")
        low, high = (max(value * height / 100, self.width_floor) for value in (low, high))
        self.width_bounds = (low, high)
        self.max_segments = segments
        self.points = nn.Parameter(torch.zeros(count, 3 * segments + 1, 2))
        self.register_buffer("segment_counts", torch.full((count,), segments, dtype=torch.long))
        self.radii = nn.Parameter(torch.full((count,), (low + high) / 2))
        colors = torch.tensor([[0.0, 0.0, 0.0, 1.0]]).repeat(count, 1)
        paper = torch.tensor(self.paper_color)
        if self.learn_colors:
            self.colors = nn.Parameter(colors)
        else:
            self.register_buffer("colors", colors)
        if learn_paper:
            self.paper = nn.Parameter(paper)
        else:
            self.register_buffer("paper", paper)

    def controls(self, points: torch.Tensor | None = None,
                 counts: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3 * max_segments + 1, 2) control points, a path's unused segments collapsed onto its end."""
        points = self.points if points is None else points
        counts = self.segment_counts if counts is None else counts
        index = torch.arange(points.shape[1], device=points.device).clamp(max=3 * counts[:, None])
        return points.gather(1, index[..., None].expand(-1, -1, 2))

    def synth(self) -> torch.Tensor:
        controls = self.controls()
        polylines = cubic_polylines(controls, flattening_samples(controls))
        paper = self.paper[:, None, None].expand(3, self.height, self.width)
        return render_strokes(polylines, self.radii, self.colors, paper)[None]

    def param_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = [
            {"params": [self.points]},
            {"params": [self.radii], "bounds": self.width_bounds, "lr_scale": self.width_rate},
        ]
        if self.learn_colors:
            groups.append({"params": [self.colors], "bounds": (0.0, 1.0), "lr_scale": self.color_rate})
        if isinstance(self.paper, nn.Parameter):
            groups.append({"params": [self.paper], "bounds": (0.0, 1.0), "lr_scale": self.color_rate})
        return groups

    def svg(self, state: Mapping[str, torch.Tensor]) -> str:
        controls = self.controls(state["points"], state["segment_counts"]).float().cpu().numpy()
        counts = state["segment_counts"].tolist()
        radii, colors = state["radii"].float().cpu().tolist(), state["colors"].float().cpu().tolist()
        shapes = [svg_rect(self.width, self.height, state["paper"].float().cpu().tolist())]
        shapes += [svg_cubic_path(path[:3 * k + 1], 2 * radius, color)
                   for path, k, radius, color in zip(controls, counts, radii, colors, strict=True)]
        return svg_document(self.width, self.height, shapes)
