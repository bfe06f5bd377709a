"""``saturation``: Pixray's colourfulness reward on the cutouts."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from .base import Loss, LossContext

_EPS = 1e-8  # keeps the gradient of a square root finite on a grey batch


@dataclass(frozen=True)
class SaturationOptions:
    saturation_weight: float = option(1.0, "Strength of the saturation loss (Pixray's)", minimum=-1000,
                                      maximum=1000)


class SaturationLoss(Loss):
    """Minus Hasler and Süsstrunk's colourfulness of each resolution's cutouts (all their pixels
    together): sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2), with rg = R - G and
    yb = (R + G)/2 - B, times ``saturation_weight`` / 10, summed over resolutions, as Pixray."""

    Options = SaturationOptions
    uses_cutouts = True

    def forward(self, context: LossContext) -> torch.Tensor:
        total = context.canvas.new_zeros(())
        for cutouts in context.cutouts.values():
            red, green, blue = cutouts.movedim(1, -1).reshape(-1, 3).unbind(-1)
            rg, yb = red - green, (red + green) / 2 - blue
            rg_std, rg_mean = torch.std_mean(rg)
            yb_std, yb_mean = torch.std_mean(yb)
            colourfulness = ((rg_std.square() + yb_std.square() + _EPS).sqrt()
                             + 0.3 * (rg_mean.square() + yb_mean.square() + _EPS).sqrt())
            total = total - colourfulness * self.options.saturation_weight / 10
        return total
