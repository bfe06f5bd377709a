"""``line_sketch``: a few long black strokes on paper (Pixray's line drawer)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from .stroke_paths import StrokeOptions, StrokePathsDrawer

#: Paper colour, (242, 238, 203) / 255 as in Pixray.
PAPER = (242 / 255, 238 / 255, 203 / 255)


@dataclass(frozen=True)
class LineSketchOptions(StrokeOptions):
    stroke_length: int = option(8, "Cubic segments per stroke", minimum=1, maximum=64)
    allow_paper_color: bool = option(False, "Let the optimiser change the paper's colour")


class LineSketchDrawer(StrokePathsDrawer):
    """Pixray's defaults: 24 black strokes of ``stroke_length`` segments wandering out from near the
    centre, half-widths from 0.5 % to 2 % of the height (never under one pixel), starting at a tenth
    of the greatest; paper (242, 238, 203), changed only with ``allow_paper_color``. Points, widths
    and the paper step at 1, 0.1 and 0.01 x the run's rate. The init image is not used (as Pixray)."""

    Options = LineSketchOptions
    default_strokes = 24
    default_min_width = 0.5
    default_max_width = 2.0
    width_floor = 1.0  # Pixray clamps line widths to at least one pixel
    learn_colors = False
    paper_color = PAPER

    def __init__(self, options: LineSketchOptions, width: int, height: int) -> None:
        super().__init__(options, width, height, options.stroke_length, options.allow_paper_color)

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor, generator: torch.Generator) -> None:
        count, segments, device = self.points.shape[0], self.max_segments, self.points.device

        def jitter(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator, device=generator.device).to(device) - 0.5

        radius = 1 / (segments + 2)
        reach = torch.tensor([radius * self.height / self.width, radius], device=device)
        point = 0.5 + 0.5 * jitter(count, 2)
        points = [point]
        for _ in range(segments):
            for _ in range(3):
                point = point + reach * jitter(count, 2)
                points.append(point)
            point = point.clamp(0, 1)  # the next segment sets off from inside the canvas
        self.points.copy_(torch.stack(points, 1) * torch.tensor([self.width, self.height], device=device))
        low, high = self.width_bounds
        self.radii.fill_(min(max(high / 10, low), high))
