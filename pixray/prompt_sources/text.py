"""Text prompts (``prompts``): Pixray's ``text:weight:stop``, ``|``-separated, optionally in phases
(``a forest ^ a city@60-100%``: story mode, see :func:`pixray.prompts.parse_schedule`)."""

from __future__ import annotations

import torch

from ..init_images import ImageReader
from ..perceptors import Perceptor
from ..prompts import Phase, parse_schedule
from ..settings import Plan, Settings
from .base import PromptSource, Targets


class TextPrompts(PromptSource):
    def __init__(self, phases: list[Phase]) -> None:
        self.phases = phases

    @classmethod
    def from_settings(cls, settings: Settings, plan: Plan, images: ImageReader) -> TextPrompts | None:
        phases = [phase for phase in parse_schedule(settings.prompts, plan.iterations) if phase.prompts]
        return cls(phases) if phases else None

    def encode(self, perceptor: Perceptor) -> Targets:
        device = perceptor.device
        rows = [(prompt, phase) for phase in self.phases for prompt in phase.prompts]
        embeds = perceptor.encode_text([prompt.text for prompt, _ in rows]).float()
        return Targets(embeds, torch.tensor([p.weight for p, _ in rows], device=device),
                       torch.tensor([p.stop for p, _ in rows], device=device),
                       torch.tensor([phase.start for _, phase in rows], device=device),
                       torch.tensor([phase.end for _, phase in rows], device=device))

    def in_force(self, index: int) -> str | None:
        """The prompts in force at step ``index`` as text, when the prompts come in phases."""
        if len(self.phases) < 2:
            return None
        return " | ".join(p.text for phase in self.phases if phase.start <= index < phase.end
                          for p in phase.prompts)
