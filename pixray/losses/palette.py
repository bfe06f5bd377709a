"""``palette``: pulls every pixel towards the nearest colour of a target palette (pixel-art palettes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from .base import Loss, LossContext
from .colours import COLOUR_FORMS, parse_colour, parse_colours


@dataclass(frozen=True)
class PaletteOptions:
    palette_weight: float = option(1.0, "Weight of the palette loss", minimum=0, maximum=1000)
    target_palette: list[str] = option(
        ["#000000", "#ffffff"], "Colours of the palette loss (a YAML list, or comma-separated)",
        parse=parse_colour, describe=f"colours: {COLOUR_FORMS} (in a comma-separated list write '(255+0+0)')")


class PaletteLoss(Loss):
    """Mean Euclidean RGB distance of each pixel to its nearest palette colour, times the weight.

    Distance rather than squared distance, so the pull stays as strong near a palette colour as far
    from it and flat regions settle on the colour exactly.
    """

    Options = PaletteOptions

    def __init__(self, options: PaletteOptions) -> None:
        super().__init__(options)
        palette = parse_colours(options.target_palette, "target_palette")
        self.register_buffer("palette", palette, persistent=False)

    def forward(self, context: LossContext) -> torch.Tensor:
        pixels = context.canvas.movedim(1, -1).reshape(-1, 3)
        palette = self.palette.to(pixels)
        # The nearest colour is found without a graph, a block of pixels at a time, so memory stays
        # O(pixels) whatever the palette's size; the gradient of the min is that of the distance to it.
        with torch.no_grad():
            nearest = torch.cat([torch.cdist(block, palette, compute_mode="donot_use_mm_for_euclid_dist")
                                 .argmin(dim=1)
                                 for block in pixels.detach().split(_BLOCK)])
        distance = (pixels - palette[nearest]).square().sum(-1).add(1e-8).sqrt()
        return self.options.palette_weight * distance.mean()


_BLOCK = 1 << 16  # pixels per block of the nearest-colour search
