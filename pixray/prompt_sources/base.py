"""What every prompt source is: settings in, per-perceptor target embeddings out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..init_images import ImageReader
from ..perceptors import Perceptor
from ..settings import Settings


@dataclass(frozen=True)
class Targets:
    """Prompts in one perceptor's embedding space: ``embeds`` (P,D) unit vectors, ``weights`` (P,)
    (negative: push away), ``stops`` (P,) (no pull once the distance is below)."""

    embeds: torch.Tensor
    weights: torch.Tensor
    stops: torch.Tensor

    @staticmethod
    def cat(parts: list[Targets]) -> Targets:
        """All ``parts`` as one set of prompts."""
        return Targets(torch.cat([p.embeds for p in parts]), torch.cat([p.weights for p in parts]),
                       torch.cat([p.stops for p in parts]))


class PromptSource(ABC):
    """A kind of prompt (text, images, noise directions, ...) that the spherical prompt loss pulls
    the cutouts towards. A new kind is one file plus one registry line."""

    #: Whether prompts of this kind alone say what to draw (a run needs one such); a fixed nudge
    #: applied to every run (vector prompts) does not.
    steers: ClassVar[bool] = True

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings, images: ImageReader) -> PromptSource | None:
        """The source the settings ask for, checked and with its files read (so mistakes surface
        before models load), or None when they ask for none of this kind."""

    @abstractmethod
    def encode(self, perceptor: Perceptor) -> Targets:
        """The prompts in ``perceptor``'s space, on its device (called once per run, no grad)."""
