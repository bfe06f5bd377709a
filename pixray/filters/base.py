"""What every filter is: a stage between the drawer's image and the cutouts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..declared_models import DeclaresModels

if TYPE_CHECKING:
    from ..resources import Resources


class Filter(DeclaresModels, nn.Module):
    """An image (1,C,H,W) in [0,1] (C: 3, or 4 with straight opacity last) -> the image the next
    stage sees, and a 0-d loss (weighted by the ``filters: name:weight`` entry) or None.

    ``shown``: whether the filtered image is what the user gets (a palette lookup), or only how the
    perceptors view the picture (a tiler's random roll, which never reaches a file).
    """

    Options: ClassVar[type]
    shown: ClassVar[bool] = False

    def __init__(self, options: Any) -> None:
        super().__init__()
        self.options = options

    @classmethod
    def create(cls, options: Any, resources: Resources) -> Filter:
        """The filter for ``options``; filters with files of their own read them through ``resources``."""
        return cls(options)

    def forward(self, image: torch.Tensor,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The filtered image and the filter's loss; randomness from ``generator`` (the run's)."""
        raise NotImplementedError


def random_roll(image: torch.Tensor, dims: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """``image`` rolled as ``torch.roll`` along each of ``dims`` by a shift in [0, size) drawn from
    ``generator``. The shifts stay on the device (``torch.roll`` takes them as Python ints, and reading
    one back from a GPU makes the host wait for it): each roll is a gather of shifted indices."""
    for dim in dims:
        size = image.shape[dim]
        shift = torch.randint(size, (), generator=generator, device=generator.device).to(image.device)
        image = image.index_select(dim, (torch.arange(size, device=image.device) - shift).remainder(size))
    return image
