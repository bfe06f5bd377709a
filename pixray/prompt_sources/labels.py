"""Labels (``labels``): class names read the way CLIP's zero-shot classifiers read them.

Each ``label:weight:stop`` (``|``-separated) is written into Pixray's seven ImageNet prompt templates
(``"itap of a {}."``, ...), each filled template is embedded, and the normalised mean of those
embeddings is the prompt, as Pixray does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..init_images import ImageReader
from ..perceptors import Perceptor
from ..prompts import Prompt, parse_prompts
from ..settings import Plan, Settings
from .base import PromptSource, Targets

#: Pixray's templates (the seven-template ensemble of CLIP's ImageNet notebook).
TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)


class Labels(PromptSource):
    def __init__(self, labels: list[Prompt]) -> None:
        self.labels = labels

    @classmethod
    def from_settings(cls, settings: Settings, plan: Plan, images: ImageReader) -> Labels | None:
        labels = parse_prompts(settings.labels) if settings.labels else []
        return cls(labels) if labels else None

    def encode(self, perceptor: Perceptor) -> Targets:
        device = perceptor.device
        texts = [template.format(label.text) for label in self.labels for template in TEMPLATES]
        embeds = perceptor.encode_text(texts).float().view(len(self.labels), len(TEMPLATES), -1)
        means = F.normalize(F.normalize(embeds, dim=-1).mean(1), dim=-1)
        return Targets(means, torch.tensor([label.weight for label in self.labels], device=device),
                       torch.tensor([label.stop for label in self.labels], device=device))
