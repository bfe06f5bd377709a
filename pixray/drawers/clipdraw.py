"""``clipdraw``: many short coloured strokes over white (CLIPDraw, as in Pixray)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .stroke_paths import StrokeOptions, StrokePathsDrawer

#: How far each control point strays from the one before, as a fraction of the canvas (Pixray's).
_STRAY = 0.1


@dataclass(frozen=True)
class ClipdrawOptions(StrokeOptions):
    pass


class ClipdrawDrawer(StrokePathsDrawer):
    """Pixray's defaults: 1024 strokes of 1 to 3 segments anywhere on the canvas, half-widths from
    1 % to 5 % of the height (starting at a quarter of their sum), random RGBA colours, over white;
    points, widths and colours step at 1, 0.1 and 0.01 x the run's rate."""

    Options = ClipdrawOptions
    default_strokes = 1024
    default_min_width = 1.0
    default_max_width = 5.0

    def __init__(self, options: ClipdrawOptions, width: int, height: int) -> None:
        super().__init__(options, width, height, segments=3)

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor, generator: torch.Generator) -> None:
        """Strokes start anywhere, each control point a small random step from the one before;
        each takes its colour from ``image`` where it starts, with a random opacity."""
        count, device = self.points.shape[0], self.points.device

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator, device=generator.device).to(device)

        segments = (uniform(count) * self.max_segments).long().clamp(max=self.max_segments - 1) + 1
        self.segment_counts.copy_(segments)
        start = uniform(count, 1, 2)
        steps = (uniform(count, 3 * self.max_segments, 2) - 0.5) * _STRAY
        normalised = torch.cat([start, start + steps.cumsum(1)], 1)
        self.points.copy_(normalised * torch.tensor([self.width, self.height], device=device))
        low, high = self.width_bounds
        self.radii.fill_((low + high) / 2 / 2)
        x = (start[:, 0, 0] * self.width).long().clamp(0, self.width - 1)
        y = (start[:, 0, 1] * self.height).long().clamp(0, self.height - 1)
        rgb = image[0, :, y.to(image.device), x.to(image.device)].T.to(self.colors)
        self.colors.copy_(torch.cat([rgb.clamp(0, 1), uniform(count, 1)], 1))
