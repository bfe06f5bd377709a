"""``symmetry``: Pixray's pull towards a left-right mirror image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..options import option
from .base import Loss, LossContext


@dataclass(frozen=True)
class SymmetryOptions:
    symmetry_weight: float = option(1.0, "Strength of the symmetry loss (Pixray's)", minimum=0, maximum=1000)


class SymmetryLoss(Loss):
    """Mean squared difference of the canvas from its left-right mirror, times ``symmetry_weight``."""

    Options = SymmetryOptions

    def forward(self, context: LossContext) -> torch.Tensor:
        canvas = context.canvas
        return self.options.symmetry_weight * F.mse_loss(canvas, canvas.flip(-1))
