"""``init_weight``: the init image as a prompt, pulling the cutouts' embeddings towards its own
(a spherical distance, weighted by ``init_weight``), so the run keeps what the image shows."""

from __future__ import annotations

import torch

from ..init_images import ImageReader
from ..perceptors import Perceptor
from ..settings import Plan, Settings
from .base import PromptSource, Targets
from .target_images import centre_crop, read_for_encoding


class InitImagePrompt(PromptSource):
    steers = False  # it keeps an image, it does not say what to draw

    def __init__(self, image: torch.Tensor, weight: float) -> None:
        self.image, self.weight = image, weight

    @classmethod
    def from_settings(cls, settings: Settings, plan: Plan, images: ImageReader) -> InitImagePrompt | None:
        if not settings.init_weight or not settings.init_image:
            return None  # without an init image, init_losses.check_init_weights has already said so
        return cls(read_for_encoding(images, settings.init_image, "init_image"), settings.init_weight)

    def encode(self, perceptor: Perceptor) -> Targets:
        device = perceptor.device
        view = centre_crop(self.image.to(device), perceptor.input_resolution)
        embeds = perceptor.encode_image(view).float()
        return Targets(embeds, torch.tensor([self.weight], device=device),
                       torch.tensor([float("-inf")], device=device))
