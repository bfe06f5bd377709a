"""Noise prompts (``noise_prompt_seeds``, ``noise_prompt_weights``): random directions in each
perceptor's embedding space, each from its own seed.

Pixray applies them to its last perceptor only; here every perceptor gets them. Pixray pairs seeds
and weights with ``zip`` (so seeds without weights do nothing, silently); here a seed without a
weight weighs 1, and more weights than seeds is an error.
"""

from __future__ import annotations

import torch

from ..init_images import ImageReader
from ..options import SettingsError
from ..perceptors import Perceptor
from ..settings import Plan, Settings
from .base import PromptSource, Targets


class NoisePrompts(PromptSource):
    def __init__(self, seeds: list[int], weights: list[float]) -> None:
        self.seeds, self.weights = seeds, weights

    @classmethod
    def from_settings(cls, settings: Settings, plan: Plan, images: ImageReader) -> NoisePrompts | None:
        seeds, weights = settings.noise_prompt_seeds, settings.noise_prompt_weights
        if len(weights) > len(seeds):
            raise SettingsError(f"setting 'noise_prompt_weights': {len(weights)} weights for "
                                f"{len(seeds)} noise_prompt_seeds; give at most one weight per seed")
        if not seeds:
            return None
        return cls(seeds, [*weights, *[1.0] * (len(seeds) - len(weights))])

    def encode(self, perceptor: Perceptor) -> Targets:
        device = perceptor.device
        width = int(perceptor.model.visual.output_dim)
        directions = torch.stack([torch.randn(width, generator=torch.Generator().manual_seed(seed))
                                  for seed in self.seeds])
        embeds = torch.nn.functional.normalize(directions, dim=-1).to(device)
        return Targets(embeds, torch.tensor(self.weights, device=device),
                       torch.full((len(self.seeds),), float("-inf"), device=device))
