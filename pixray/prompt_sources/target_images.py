"""Target images (``target_images``): images whose embeddings pull like text prompts.

Each entry is ``file:weight:stop`` (``|``-separated, as Pixray); each image is resized so its short
side is the perceptor's input size and centre-cropped, as Pixray does, then encoded once per run.
Pixray gives every target the weight and stop of the last entry; here each keeps its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..init_images import ImageReader
from ..perceptors import Perceptor
from ..prompts import Prompt, parse_prompts
from ..settings import Plan, Settings
from .base import PromptSource, Targets

#: Short side at which target images are read (larger than any perceptor's input, so encoding
#: only ever shrinks them).
READ_SIDE = 448


class TargetImages(PromptSource):
    def __init__(self, entries: list[Prompt], images: list[torch.Tensor]) -> None:
        self.entries, self.images = entries, images

    @classmethod
    def from_settings(cls, settings: Settings, plan: Plan, images: ImageReader) -> TargetImages | None:
        if not settings.target_images:
            return None
        entries = parse_prompts(settings.target_images)
        pictures = [read_for_encoding(images, entry.text, "target_images") for entry in entries]
        return cls(entries, pictures) if entries else None

    def encode(self, perceptor: Perceptor) -> Targets:
        device = perceptor.device
        views = [centre_crop(picture.to(device), perceptor.input_resolution) for picture in self.images]
        embeds = perceptor.encode_image(torch.cat(views)).float()
        return Targets(embeds, torch.tensor([e.weight for e in self.entries], device=device),
                       torch.tensor([e.stop for e in self.entries], device=device))


def centre_crop(picture: torch.Tensor, side: int) -> torch.Tensor:
    """``picture`` (1,3,H,W) resized so its short side is ``side`` (bicubic, antialiased) and cut to
    the centred ``side`` x ``side`` square, as CLIP's preprocessing does. Values stay in [0,1]."""
    height, width = picture.shape[-2:]
    scale = side / min(width, height)
    size = (max(side, round(height * scale)), max(side, round(width * scale)))
    resized = F.interpolate(picture, size=size, mode="bicubic", antialias=True)
    top, left = (size[0] - side) // 2, (size[1] - side) // 2
    return resized[..., top:top + side, left:left + side].clamp(0, 1)


def read_for_encoding(images: ImageReader, value: str, setting: str) -> torch.Tensor:
    """The image setting ``setting`` names, (1,3,H,W) at its own aspect with the short side
    :data:`READ_SIDE`, ready for :func:`centre_crop` to any perceptor's size."""
    return images.read_scaled(value, setting, lambda width, height: READ_SIDE / min(width, height))
