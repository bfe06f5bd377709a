"""``lookup``: each pixel to the nearest palette colour (Pixray's colour lookup filter)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..options import option
from ..palettes import PIXRAY_LOOKUP, ReaderFiles, nearest_colours, palette_option, parse_palette
from .base import Filter

if TYPE_CHECKING:
    from ..resources import Resources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LookupOptions:
    palette: str | None = palette_option()
    lookup_beta: float = option(10.0, "Weight of the pull of each pixel towards its palette colour, against "
                                      "the (fixed) palette's pull towards the pixels (Pixray's)",
                                minimum=0, maximum=1000)


class LookupFilter(Filter):
    """Every pixel becomes its nearest ``palette`` colour (Pixray's 16-colour table without one),
    with a straight-through gradient; the loss is Pixray's commitment loss, ``lookup_beta`` x the
    mean squared distance of the pixels from their colours plus that distance (without gradient).
    The picture itself is the looked-up one, so saved images hold palette colours only; opacity
    passes through."""

    Options = LookupOptions
    shown = True

    def __init__(self, options: LookupOptions, palette: torch.Tensor) -> None:
        super().__init__(options)
        self.register_buffer("palette", palette, persistent=False)

    @classmethod
    def create(cls, options: LookupOptions, resources: Resources) -> LookupFilter:
        if options.palette is None:
            log.info("lookup: no palette given; using Pixray's built-in 16 colours")
            palette = torch.tensor(PIXRAY_LOOKUP, dtype=torch.float32) / 255
        else:
            palette = parse_palette(options.palette, ReaderFiles(resources.images))
        return cls(options, palette)

    def forward(self, image: torch.Tensor,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        colours = image[:, :3]
        pixels = colours.movedim(1, -1).reshape(-1, 3)
        palette = self.palette.to(pixels)
        chosen = palette[nearest_colours(pixels, palette)].view(*colours.shape[:1], *colours.shape[2:], 3)
        chosen = chosen.movedim(-1, 1)
        loss = (self.options.lookup_beta * (chosen.detach() - colours).square().mean()
                + (chosen - colours.detach()).square().mean())
        looked_up = colours + (chosen - colours).detach()
        return torch.cat([looked_up, image[:, 3:]], dim=1), loss
