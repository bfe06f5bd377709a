"""``tiler``: a random toroidal roll each step, so the picture tiles seamlessly (Pixray's)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Filter, random_roll


@dataclass(frozen=True)
class TilerOptions:
    pass


class TilerFilter(Filter):
    """Rolls the image by a random offset in both directions: every cutout that crosses an edge
    sees the opposite edge next to it, so the optimisation makes the edges meet. No loss."""

    Options = TilerOptions

    def forward(self, image: torch.Tensor,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        return random_roll(image, (-2, -1), generator), None
