"""What every drawer is: an ``nn.Module`` whose parameters render an image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from ..model_cache import ModelCache


class Drawer(nn.Module):
    """Learnable parameters plus a differentiable renderer.

    Subclasses set ``Options`` (a settings dataclass: the drawer's section of the settings tree)
    and implement :meth:`init_from_image`, :meth:`synth` and :meth:`clamp_`.
    """

    Options: ClassVar[type]
    #: Step size used when the ``learning_rate`` setting is unset.
    default_learning_rate: ClassVar[float] = 0.2

    def __init__(self, options: Any, width: int, height: int) -> None:
        super().__init__()
        self.options = options
        self.width = width
        self.height = height

    @classmethod
    def create(cls, options: Any, width: int, height: int, models: ModelCache) -> Drawer:
        """A drawer for a ``width`` x ``height`` canvas; drawers with models load them via ``models``.

        The drawer may round the canvas (see its ``width`` and ``height``).
        """
        return cls(options, width, height)

    def learning_rate(self) -> float:
        """Step size used when the ``learning_rate`` setting is unset."""
        return self.default_learning_rate

    def init_from_image(self, image: torch.Tensor) -> None:
        """Set the parameters so that :meth:`synth` approximates ``image`` (1,3,H,W) in [0,1]."""
        raise NotImplementedError

    def synth(self) -> torch.Tensor:
        """The current image, (1,3,height,width) in [0,1], differentiable w.r.t. the parameters."""
        raise NotImplementedError

    @torch.no_grad()
    def clamp_(self) -> None:
        """Pull the parameters back into their valid range after an optimiser step."""
