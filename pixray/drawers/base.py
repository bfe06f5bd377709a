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
    and implement :meth:`init_from_image` and :meth:`synth`; bounded parameters are declared in
    :meth:`param_groups`.
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

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: the trainable parameters, and for those confined to a
        box its ``bounds`` (low, high), numbers or tensors that broadcast against them.

        :meth:`clamp_` keeps the parameters inside their bounds; ``optimiser: NGD`` also steps only
        along the directions that can move (see optimisers.py).
        """
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]  # not frozen decoders

    @torch.no_grad()
    def clamp_(self) -> None:
        """Pull the parameters back into their bounds after an optimiser step."""
        for group in self.param_groups():
            if "bounds" in group:
                low, high = group["bounds"]
                for p in group["params"]:
                    p.clamp_(low, high)
