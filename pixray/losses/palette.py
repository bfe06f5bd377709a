"""``palette``: Pixray's pull of the cutouts' pixels towards the nearest colour of ``palette``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..options import SettingsError, option
from ..palettes import ReaderFiles, nearest_colours, palette_option, parse_palette
from .base import Loss, LossContext

if TYPE_CHECKING:
    from ..resources import Resources


@dataclass(frozen=True)
class PaletteOptions:
    palette_weight: float = option(1.0, "Weight of the palette loss", minimum=0, maximum=1000)
    palette: str | None = palette_option()


class PaletteLoss(Loss):
    """For each resolution's cutouts: the mean Euclidean RGB distance of their pixels to the nearest
    ``palette`` colour, times the number of cutouts, times ``palette_weight`` / 10, summed (Pixray's).

    Distance rather than squared distance, so the pull stays as strong near a colour as far from it.
    """

    Options = PaletteOptions
    uses_cutouts = True

    def __init__(self, options: PaletteOptions, palette: torch.Tensor) -> None:
        super().__init__(options)
        self.register_buffer("palette", palette, persistent=False)

    @classmethod
    def create(cls, options: PaletteOptions, resources: Resources) -> PaletteLoss:
        if options.palette is None:
            raise SettingsError("custom loss 'palette' pulls towards the colours of the palette setting, and "
                                "there is none; give palette (e.g. 'black->white\\8' or '[red, blue]')")
        return cls(options, parse_palette(options.palette, ReaderFiles(resources.images)))

    def forward(self, context: LossContext) -> torch.Tensor:
        total = context.canvas.new_zeros(())
        for cutouts in context.cutouts.values():
            pixels = cutouts.movedim(1, -1).reshape(-1, 3)
            palette = self.palette.to(pixels)
            distance = (pixels - palette[nearest_colours(pixels, palette)]).square().sum(-1).add(1e-8).sqrt()
            total = total + distance.mean() * len(cutouts) * self.options.palette_weight / 10
        return total
