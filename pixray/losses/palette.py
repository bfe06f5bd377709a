"""``palette``: pulls every pixel towards the nearest colour of a target palette (pixel-art palettes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import ImageColor

from ..options import SettingsError, option
from .base import CanvasLoss


@dataclass(frozen=True)
class PaletteOptions:
    palette_weight: float = option(1.0, "Weight of the palette loss", minimum=0, maximum=1000)
    target_palette: list[str] = option(
        ["#000000", "#ffffff"],
        "Colours of the palette loss: '#rrggbb' codes or CSS colour names (comma-separated)")


def parse_palette(colours: list[str]) -> torch.Tensor:
    """(P,3) palette in [0,1] from '#rrggbb' codes or CSS names; raises SettingsError naming a bad one."""
    if not colours:
        raise SettingsError("target_palette is empty; give at least one colour ('#rrggbb' or a CSS name)")
    rgb = []
    for text in colours:
        try:
            rgb.append(ImageColor.getrgb(text.strip())[:3])
        except ValueError:
            raise SettingsError(f"target_palette: {text!r} is not a colour; give '#rrggbb' codes or "
                                "CSS colour names such as 'red' or 'navy'") from None
    return torch.tensor(rgb, dtype=torch.float32) / 255


class PaletteLoss(CanvasLoss):
    """Mean Euclidean RGB distance of each pixel to its nearest palette colour, times the weight.

    Distance rather than squared distance, so the pull stays as strong near a palette colour as far
    from it and flat regions settle on the colour exactly.
    """

    Options = PaletteOptions

    def __init__(self, options: PaletteOptions) -> None:
        super().__init__(options)
        self.register_buffer("palette", parse_palette(options.target_palette), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pixels = image.movedim(1, -1).reshape(-1, 1, 3)
        distance = (pixels - self.palette.to(pixels)).square().sum(-1).add(1e-8).sqrt()
        return self.options.palette_weight * distance.min(dim=1).values.mean()
