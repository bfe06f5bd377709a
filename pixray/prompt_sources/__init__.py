"""Prompt sources by name: every kind of prompt the spherical prompt loss pulls towards.

A new kind is one file plus one line here; the engine asks each for its prompts.
"""

from __future__ import annotations

from ..registry import Registry
from .base import CutTarget, PromptSource, StepViews, Targets
from .image_prompts import ImagePrompts
from .init_image import InitImagePrompt
from .labels import Labels
from .noise import NoisePrompts
from .spot import SpotOffPrompts, SpotPrompts
from .target_images import TargetImages
from .text import TextPrompts
from .vector_prompts import VectorPrompts

PROMPT_SOURCES: Registry[type[PromptSource]] = Registry("prompt source", {
    "text": TextPrompts,
    "target_images": TargetImages,
    "image_prompts": ImagePrompts,
    "labels": Labels,
    "noise": NoisePrompts,
    "spot": SpotPrompts,
    "spot_off": SpotOffPrompts,
    "vector": VectorPrompts,
    "init_image": InitImagePrompt,
})

__all__ = ["PROMPT_SOURCES", "CutTarget", "PromptSource", "StepViews", "Targets"]
