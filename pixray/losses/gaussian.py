"""``gaussian``: Pixray's pull towards a colour away from the centre (a vignette)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from ..runtime import device_vector
from .base import Loss, LossContext


@dataclass(frozen=True)
class GaussianOptions:
    gaussian_weight: float = option(1.0, "Strength of the gaussian loss (Pixray's)", minimum=0, maximum=1000)
    gaussian_std: list[float] = option([40.0, 40.0], "Standard deviations (pixels) of the centred gaussian "
                                                     "that frees the middle: 'y x'", minimum=0.01,
                                       maximum=100000, length=2)
    gaussian_color: list[float] = option([255.0, 255.0, 255.0], "Colour (0-255 'r g b') pulled towards "
                                                                "away from the centre", minimum=0,
                                         maximum=255, length=3)


def centred_gaussian(height: int, width: int, std_y: float, std_x: float,
                     device: torch.device | None = None) -> torch.Tensor:
    """(height, width) float32 on ``device``: exp(-d^2 / (2 std^2)) per axis, multiplied, 1 at the centre."""
    y = torch.arange(height, dtype=torch.float32, device=device) - (height - 1) / 2
    x = torch.arange(width, dtype=torch.float32, device=device) - (width - 1) / 2
    return torch.outer(torch.exp(-y.square() / (2 * std_y**2)), torch.exp(-x.square() / (2 * std_x**2)))


class GaussianLoss(Loss):
    """Mean absolute difference of the canvas from ``gaussian_color``, each pixel weighted by one
    minus a centred gaussian (free in the middle, full at the edges), times ``gaussian_weight``."""

    Options = GaussianOptions

    def forward(self, context: LossContext) -> torch.Tensor:
        canvas = context.canvas
        std = self.options.gaussian_std
        weight = 1 - centred_gaussian(*canvas.shape[-2:], *std, canvas.device).to(canvas)
        colour = device_vector(canvas.device, *self.options.gaussian_color).to(canvas)[:, None, None] / 255
        return self.options.gaussian_weight * ((canvas - colour).abs() * weight).mean()
