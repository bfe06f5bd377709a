"""``edge``: a plain frame, pulling the band along the canvas edges to one colour (Pixray's edge loss)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from .base import CanvasLoss
from .colours import COLOUR_FORMS, parse_colour, parse_colours


@dataclass(frozen=True)
class EdgeOptions:
    edge_color_weight: float = option(1.0, "Weight of the edge loss", minimum=0, maximum=1000)
    edge_thickness: float = option(5.0, "Width of the edge band on every side, in percent of the canvas side",
                                   minimum=0, maximum=50)
    edge_margins: list[float] | None = option(
        None, "Width of the edge band per side in percent (left, right, top, bottom); replaces "
        "edge_thickness", minimum=0, maximum=50, length=4)
    edge_color: str | None = option(
        "white", "Colour the edge band is pulled to; none: any single colour (the band's own mean), for a "
        "plain frame whatever its colour", parse=parse_colour, describe=f"{COLOUR_FORMS}, or none")


class EdgeLoss(CanvasLoss):
    """Mean absolute difference of the edge band's pixels from ``edge_color`` (or from the band's own
    mean colour when it is none), times the weight; 0 when every margin is 0.

    The absolute difference keeps the pull as strong near the colour as far from it, so a frame
    settles on it exactly (as the palette loss does).
    """

    Options = EdgeOptions

    def __init__(self, options: EdgeOptions) -> None:
        super().__init__(options)
        colour = parse_colours([options.edge_color], "edge_color") if options.edge_color else None
        self.register_buffer("colour", colour, persistent=False)

    def band(self, height: int, width: int) -> torch.Tensor:
        """(H,W) bool mask of the band: ``edge_margins`` (else ``edge_thickness``) percent of the side in."""
        o = self.options
        left, right, top, bottom = o.edge_margins or [o.edge_thickness] * 4
        cols, rows = torch.arange(width), torch.arange(height)
        in_cols = (cols < round(width * left / 100)) | (cols >= width - round(width * right / 100))
        in_rows = (rows < round(height * top / 100)) | (rows >= height - round(height * bottom / 100))
        return in_rows[:, None] | in_cols[None, :]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        mask = self.band(*image.shape[-2:]).to(image.device)
        if not mask.any():
            return image.new_zeros(())
        pixels = image[..., mask]  # (B,3,N)
        target = (pixels.mean(-1, keepdim=True) if self.colour is None
                  else self.colour.to(pixels).view(1, 3, 1))
        return self.options.edge_color_weight * (pixels - target).abs().mean()
