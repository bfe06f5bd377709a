"""Text prompts (``prompts``): Pixray's ``text:weight:stop``, ``|``-separated."""

from __future__ import annotations

import torch

from ..init_images import ImageReader
from ..perceptors import Perceptor
from ..prompts import Prompt, parse_prompts
from ..settings import Settings
from .base import PromptSource, Targets


class TextPrompts(PromptSource):
    def __init__(self, prompts: list[Prompt]) -> None:
        self.prompts = prompts

    @classmethod
    def from_settings(cls, settings: Settings, images: ImageReader) -> TextPrompts | None:
        prompts = parse_prompts(settings.prompts)
        return cls(prompts) if prompts else None

    def encode(self, perceptor: Perceptor) -> Targets:
        device = perceptor.device
        embeds = perceptor.encode_text([p.text for p in self.prompts]).float()
        return Targets(embeds, torch.tensor([p.weight for p in self.prompts], device=device),
                       torch.tensor([p.stop for p in self.prompts], device=device))
