"""``smoothness``: total variation, favouring flat regions with clean edges."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from .base import CanvasLoss


@dataclass(frozen=True)
class SmoothnessOptions:
    smoothness_weight: float = option(1.0, "Weight of the smoothness loss", minimum=0, maximum=1000)


class SmoothnessLoss(CanvasLoss):
    """Mean absolute difference between neighbouring pixels (L1 total variation), times the weight.

    The L1 form penalises a sharp edge no more than a gradual one, so it removes speckle while
    keeping flat shapes on flat backgrounds crisp.
    """

    Options = SmoothnessOptions

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
        dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
        return self.options.smoothness_weight * (dx + dy)
