"""What every custom loss is: a module scoring one batch of a step, with its own settings section."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..declared_models import DeclaresModels

if TYPE_CHECKING:
    from ..resources import Resources


@dataclass(frozen=True)
class LossContext:
    """What a custom loss may look at in step ``index`` of ``iterations``: once per cutout batch for
    losses that look at the cutouts or their embeddings, once per step for those of the canvas alone.

    ``canvas`` (1,3,H,W) in [0,1] is the image the perceptors judge (after the filters, an RGBA
    drawing seen over the step's grey); ``cutouts`` maps each perceptor input resolution to that
    batch's cutouts of the whole canvas, (N,3,r,r) in about [0,1], and ``embeds`` each perceptor's
    name to its unit embeddings of them, (N,D). All carry gradient to the drawer; ``cutouts`` is
    filled only when a loss of the run :attr:`Loss.uses_cutouts`, ``embeds`` only when one
    :attr:`Loss.uses_embeds` (keeping every perceptor's graph alive costs memory).
    """

    canvas: torch.Tensor
    cutouts: Mapping[int, torch.Tensor]
    embeds: Mapping[str, torch.Tensor]
    index: int
    iterations: int
    #: The run's random generator (on the run's device), for losses that sample: a seed repeats.
    generator: torch.Generator | None = None


class Loss(DeclaresModels, nn.Module):
    """A custom loss (``custom_loss: name:weight``): a 0-d tensor, scaled by the weight (and divided
    by the number of batches when it is scored per batch).

    Subclasses set ``Options`` (their settings section) and implement :meth:`forward`; those that
    look at the cutouts or their embeddings say so in :attr:`uses_cutouts` / :attr:`uses_embeds`.
    """

    Options: ClassVar[type]
    uses_cutouts: bool = False  # a class's, or set per instance when its options decide
    uses_embeds: bool = False

    def __init__(self, options: Any) -> None:
        super().__init__()
        self.options = options

    @classmethod
    def create(cls, options: Any, resources: Resources) -> Loss:
        """The loss for ``options``; losses with models or files of their own load them through
        ``resources``."""
        return cls(options)

    def check_perceptors(self, names: Sequence[str], widths: Sequence[int]) -> None:
        """Raise :class:`~pixray.options.SettingsError` unless the run's perceptors (their names
        and embedding widths, in order) are what this loss reads; called before the first step."""

    def forward(self, context: LossContext) -> torch.Tensor:
        """A 0-d loss tensor for ``context``."""
        raise NotImplementedError
