"""What every prompt source is: settings in, per-perceptor target embeddings out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..init_images import ImageReader
from ..perceptors import Perceptor
from ..settings import Plan, Settings

#: The end step of prompts in force for the whole run.
FOREVER = 2**62


@dataclass(frozen=True)
class Targets:
    """Prompts in one perceptor's embedding space: ``embeds`` (P,D) unit vectors, ``weights`` (P,)
    (negative: push away), ``stops`` (P,) (no pull once the distance is below), and the steps each
    is in force, ``starts`` (P,) up to ``ends`` (P,) (long; None: the whole run)."""

    embeds: torch.Tensor
    weights: torch.Tensor
    stops: torch.Tensor
    starts: torch.Tensor | None = None
    ends: torch.Tensor | None = None

    def span(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(starts, ends), filled in for prompts in force for the whole run."""
        count, device = len(self.weights), self.weights.device
        starts = (self.starts if self.starts is not None
                  else torch.zeros(count, dtype=torch.long, device=device))
        ends = self.ends if self.ends is not None else torch.full((count,), FOREVER, device=device)
        return starts, ends

    @staticmethod
    def cat(parts: list[Targets]) -> Targets:
        """All ``parts`` as one set of prompts."""
        spans = [p.span() for p in parts]
        return Targets(torch.cat([p.embeds for p in parts]), torch.cat([p.weights for p in parts]),
                       torch.cat([p.stops for p in parts]), torch.cat([s for s, _ in spans]),
                       torch.cat([e for _, e in spans]))


class PromptSource(ABC):
    """A kind of prompt (text, images, noise directions, ...) that the spherical prompt loss pulls
    the cutouts towards. A new kind is one file plus one registry line."""

    #: Whether prompts of this kind alone say what to draw (a run needs one such); a fixed nudge
    #: applied to every run (vector prompts) does not.
    steers: ClassVar[bool] = True

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings, plan: Plan, images: ImageReader) -> PromptSource | None:
        """The source the settings ask for in a run of ``plan``, checked and with its files read
        (so mistakes surface before models load), or None when they ask for none of this kind."""

    @abstractmethod
    def encode(self, perceptor: Perceptor) -> Targets:
        """The prompts in ``perceptor``'s space, on its device (called once per run, no grad)."""

    def in_force(self, index: int) -> str | None:
        """The prompts in force at step ``index`` as text, for sources whose prompts change during
        a run (else None)."""
        return None

    def region(self, height: int, width: int) -> torch.Tensor | None:
        """The part of a ``height`` x ``width`` canvas this source's prompts see, (1,1,H,W) of 0s and
        1s (the rest is black to them, through the same cutouts as the whole canvas), or None: the
        whole canvas."""
        return None

    def cut_targets(self, perceptor: Perceptor, views: StepViews) -> list[CutTarget]:
        """Targets seen through this step's cutouts (image prompts), compared with the canvas's
        cutouts pair by pair; most kinds have none. Called every step, without gradient."""
        return []


@dataclass(frozen=True)
class StepViews:
    """How this step's cutouts see an image (1,3,H,W): ``same`` with the canvas's cutout parameters,
    ``fresh`` with parameters of its own (drawn from the run's generator)."""

    same: Callable[[torch.Tensor], torch.Tensor]
    fresh: Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CutTarget:
    """Embeddings (N,D) of a target's cutouts, one per canvas cutout, with the target's weight and stop."""

    embeds: torch.Tensor
    weight: float
    stop: float = float("-inf")
