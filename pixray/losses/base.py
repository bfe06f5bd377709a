"""What every custom loss is: a module scoring the whole canvas, with its own settings section."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class CanvasLoss(nn.Module):
    """A loss on the drawer's image (1,3,H,W) in [0,1], added to the perceptors' prompt losses."""

    Options: ClassVar[type]

    def __init__(self, options: Any) -> None:
        super().__init__()
        self.options = options

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """A 0-d loss tensor for ``image``."""
        raise NotImplementedError
