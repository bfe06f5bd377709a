"""``edge``: a plain frame, pulling the bands along the canvas edges to one colour (Pixray's edge loss)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..colours import COLOUR_FORMS, parse_colour, parse_colours
from ..init_images import read_native
from ..options import option
from .base import Loss, LossContext

if TYPE_CHECKING:
    from ..resources import Resources

DISTANCES = ("mse", "l1")


@dataclass(frozen=True)
class EdgeOptions:
    edge_color_weight: float = option(0.1, "Weight of the edge loss (Pixray's default 0.1)", minimum=0,
                                      maximum=1000)
    edge_thickness: float = option(5.0, "Width of the edge band on every side, in percent of the canvas side",
                                   minimum=0, maximum=50)
    edge_margins: list[float] | None = option(
        None, "Width of the edge band per side in percent (left, right, top, bottom); replaces "
        "edge_thickness", minimum=0, maximum=50, length=4)
    edge_color: str | None = option(
        "white", "Colour the edge band is pulled to; none: any single colour (the bands' own mean), for a "
        "plain frame whatever its colour", parse=parse_colour, describe=f"{COLOUR_FORMS}, or none")
    global_color_weight: float = option(
        0.05, "Pull of the whole canvas towards edge_color, relative to one band's (Pixray's default 0.05)",
        minimum=0, maximum=1000)
    edge_distance: str = option(
        "mse", "How a band's distance from the colour is measured: mse (mean squared, Pixray's) or l1 (mean "
        "absolute: as strong near the colour as far from it, so a frame settles on it exactly)",
        choices=list(DISTANCES))
    edge_input_image: str | None = option(
        None, "An image the bands are pulled towards instead of edge_color (stretched to the canvas)",
        names_file=True)
    edge_mask_image: str | None = option(
        None, "A mask replacing the bands: its dark part (grey under half) is pulled, its light part left "
        "free (stretched to the canvas; the loss averages over the whole canvas, as Pixray)", names_file=True)


class EdgeLoss(Loss):
    """Pixray's edge loss: ``edge_color_weight`` x (the sum over the four bands of each band's mean
    distance from ``edge_color`` + ``global_color_weight`` x the whole canvas's).

    The left and right bands run the full height; the top and bottom bands lie between them. A
    band's width is its percentage of the side, rounded down, as Pixray; a band of width 0 adds
    nothing. With ``edge_color: none`` the colour is the mean of the bands' pixels.
    """

    Options = EdgeOptions

    def __init__(self, options: EdgeOptions, image: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None) -> None:
        super().__init__(options)
        colour = parse_colours([options.edge_color], "edge_color") if options.edge_color else None
        self.register_buffer("colour", colour, persistent=False)
        self.register_buffer("image", image, persistent=False)  # (1,3,h,w) in [0,1], or None
        self.register_buffer("mask", mask, persistent=False)  # (1,1,h,w) in [0,1], or None
        self._pulled_by_size: dict[tuple[int, int, torch.device], torch.Tensor | None] = {}

    @classmethod
    def create(cls, options: EdgeOptions, resources: Resources) -> EdgeLoss:
        image = (read_native(resources.images, options.edge_input_image, "edge_input_image")
                 if options.edge_input_image else None)
        mask = (read_native(resources.images, options.edge_mask_image, "edge_mask_image", mode="L")
                if options.edge_mask_image else None)
        return cls(options, image, mask)

    def bands(self, height: int, width: int) -> list[tuple[slice, slice]]:
        """(rows, columns) of each band that holds pixels: left, right, top, bottom (top and bottom lie
        between the sides, so sides that meet leave them none: Pixray's loss is NaN then)."""
        o = self.options
        left, right, top, bottom = (int(pct / 100 * side) for pct, side in
                                    zip(o.edge_margins or [o.edge_thickness] * 4,
                                        (width, width, height, height), strict=True))
        everything, between = slice(None), slice(left, width - right)
        found = [(everything, slice(0, left)), (everything, slice(width - right, width)),
                 (slice(0, top), between), (slice(height - bottom, height), between)]
        inner = max(width - left - right, 0)
        areas = (left * height, right * height, top * inner, bottom * inner)
        return [rows_cols for rows_cols, area in zip(found, areas, strict=True) if area]

    def band(self, height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
        """(H,W) bool mask on ``device`` of the pixels in any band."""
        mask = torch.zeros(height, width, dtype=torch.bool, device=device)
        for rows, cols in self.bands(height, width):
            mask[rows, cols].fill_(True)
        return mask

    def forward(self, context: LossContext) -> torch.Tensor:
        image = context.canvas
        height, width = image.shape[-2:]
        pulled = self._pulled(height, width, image.device)
        if pulled is None:
            return image.new_zeros(())
        if self.image is not None:
            target = F.interpolate(self.image.to(image), size=(height, width), mode="bicubic",
                                   antialias=True).clamp(0, 1)
        elif self.colour is None:  # the pulled pixels' mean colour, without indexing by a mask (a host read)
            target = (image * pulled).sum((-2, -1), keepdim=True) / pulled.sum()
        else:
            target = self.colour.to(image).view(1, 3, 1, 1)

        def distance(rows: slice = slice(None), cols: slice = slice(None),
                     where: torch.Tensor | None = None) -> torch.Tensor:
            """The mean distance of ``image[rows, cols]`` from the target (times ``where``)."""
            aim = target[..., rows, cols] if target.shape[-1] > 1 else target
            difference = image[..., rows, cols] - aim
            if where is not None:
                difference = difference * where
            squared = self.options.edge_distance == "mse"
            return difference.square().mean() if squared else difference.abs().mean()

        if self.mask is not None:
            total = distance(where=pulled)
        else:
            total = sum(distance(rows, cols) for rows, cols in self.bands(height, width))
        if self.options.global_color_weight:
            total = total + self.options.global_color_weight * distance()
        return self.options.edge_color_weight * total

    def _pulled(self, height: int, width: int, device: torch.device) -> torch.Tensor | None:
        """(1,1,H,W) 1 where the loss pulls (the mask's dark part, else the bands), None: nowhere. Made
        once per canvas size: whether a mask pulls anywhere is read back from the device."""
        key = (height, width, device)
        if key not in self._pulled_by_size:
            if self.mask is not None:
                grey = F.interpolate(self.mask.to(device), size=(height, width), mode="bicubic",
                                     antialias=True)
                pulled = (grey < 0.5).float()
                self._pulled_by_size[key] = pulled if pulled.any() else None
            else:
                pulled = self.band(height, width, device).float()[None, None]
                self._pulled_by_size[key] = pulled if self.bands(height, width) else None
        return self._pulled_by_size[key]
