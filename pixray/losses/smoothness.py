"""``smoothness``: Pixray's sharpness penalty on the cutouts, or L1 total variation on the canvas."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..options import option
from .base import Loss, LossContext

SMOOTHNESS_TYPES = ("default", "clipped", "log", "tv")
_EPS = 1e-12  # keeps the gradient of a square root finite where the image is flat


@dataclass(frozen=True)
class SmoothnessOptions:
    smoothness_weight: float = option(1.0, "Weight of the smoothness loss", minimum=0, maximum=1000)
    smoothness_type: str = option(
        "default", "default: the mean gradient magnitude of the cutouts (Pixray's); clipped: each pixel's "
                   "capped at 0.5; log: log(1 + it); tv: the mean absolute difference of neighbouring "
                   "canvas pixels (L1 total variation: flat regions with crisp edges)",
        choices=list(SMOOTHNESS_TYPES))
    smoothness_gaussian_kernel: int = option(0, "Size of a gaussian blur applied to the cutouts first "
                                                "(0: none)", minimum=0, maximum=64)
    smoothness_gaussian_std: float = option(1.0, "Spread of that blur (Pixray's kernel formula)",
                                            minimum=0.01, maximum=100)
    smoothness_spacing: float = option(1.0, "Pixel spacing of the gradient (torch.gradient's)", minimum=0.01,
                                       maximum=100)
    smoothness_edge_order: int = option(1, "Edge order of the gradient (torch.gradient's)", choices=[1, 2])


def pixray_blur_kernel(size: int, std: float) -> torch.Tensor:
    """Pixray's smoothing kernel, (size, size), summing to 1: exp(-((i - mean) / (2 std))^2) per
    axis (a gaussian of spread std * sqrt(2), as Pixray writes it)."""
    steps = torch.arange(size, dtype=torch.float32)
    axis = torch.exp(-(((steps - (size - 1) / 2) / (2 * std)) ** 2)) / (std * math.sqrt(2 * math.pi))
    kernel = torch.outer(axis, axis)
    return kernel / kernel.sum()


class SmoothnessLoss(Loss):
    """Pixray's types (on each resolution's cutouts, summed over resolutions): the mean over pixels
    of the gradient magnitude across the three channels, ``clipped`` at 0.5 or ``log``-compressed,
    optionally after Pixray's gaussian blur (no padding); ``tv`` is the canvas's L1 total variation.
    Pixray stacks the cutouts' rows into one tall image, so its gradient crosses from one cutout to
    the next; here each cutout is its own image. Times ``smoothness_weight``."""

    Options = SmoothnessOptions

    def __init__(self, options: SmoothnessOptions) -> None:
        super().__init__(options)
        self.uses_cutouts = options.smoothness_type != "tv"
        size = options.smoothness_gaussian_kernel
        blur = pixray_blur_kernel(size, options.smoothness_gaussian_std)[None, None].repeat(3, 1, 1, 1) \
            if size else None
        self.register_buffer("blur", blur, persistent=False)

    def forward(self, context: LossContext) -> torch.Tensor:
        o = self.options
        if o.smoothness_type == "tv":
            image = context.canvas
            dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
            dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
            return o.smoothness_weight * (dx + dy)
        total = context.canvas.new_zeros(())
        for cutouts in context.cutouts.values():
            if self.blur is not None and min(cutouts.shape[-2:]) >= self.blur.shape[-1]:
                cutouts = F.conv2d(cutouts, self.blur.to(cutouts), groups=3)
            gy, gx = torch.gradient(cutouts, spacing=o.smoothness_spacing, dim=(-2, -1),
                                    edge_order=o.smoothness_edge_order)
            sharpness = (gy.square().sum(1) + gx.square().sum(1) + _EPS).sqrt()
            if o.smoothness_type == "clipped":
                sharpness = sharpness.clamp(max=0.5)
            elif o.smoothness_type == "log":
                sharpness = sharpness.log1p()
            total = total + sharpness.mean()
        return o.smoothness_weight * total
