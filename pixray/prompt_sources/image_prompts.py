"""Image prompts (``image_prompts``, ``image_prompt_weight``, ``image_prompt_shuffle``).

Each step, every image prompt is seen through the same cutouts as the canvas (the same crops,
warps, colour jitter and noise, per CLIP model resolution), and each canvas cutout is pulled towards
its counterpart, pair by pair; with ``image_prompt_shuffle`` the image gets cutouts of its own.
Entries are ``file:weight:stop``, ``|``-separated; a file may be a URL or a glob, braces included
(``frames/{a,b}*.png``), matching any number of files. Images are stretched to the canvas, as Pixray.
A prompt's weight is its entry's times ``image_prompt_weight``.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re

import torch

from ..init_images import ImageReader
from ..options import SettingsError
from ..perceptors import Perceptor
from ..prompts import Prompt, parse_prompts
from ..settings import Plan, Settings
from .base import CutTarget, PromptSource, StepViews, Targets

#: Most image prompts one run may hold.
MAX_IMAGES = 64


def expand_braces(pattern: str) -> list[str]:
    """``a{b,c}d`` -> ``[abd, acd]``, nested and repeated braces included (as shells do)."""
    match = re.search(r"\{([^{}]*,[^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [out for option in match[1].split(",") for out in expand_braces(head + option + tail)]


def image_files(entry: str) -> list[str]:
    """The files (or URL) an entry names: itself, or what its glob and braces match, sorted (``~``
    expanded, as a shell would)."""
    if re.match(r"https?://", entry):
        return [entry]
    names = []
    for pattern in map(os.path.expanduser, expand_braces(entry)):
        names += sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    return names


def matched_files(entries: list[str], setting: str) -> list[list[str]]:
    """The files each entry of setting ``setting`` names (:func:`image_files`), checked before
    anything is read: every entry matches a file, and :data:`MAX_IMAGES` at most in all."""
    matched = []
    for entry in entries:
        files = image_files(entry)
        if not files:
            raise SettingsError(f"setting {setting!r}: {entry!r} matches no file")
        matched.append(files)
    count = sum(map(len, matched))
    if count > MAX_IMAGES:
        raise SettingsError(f"setting {setting!r}: {count} images is too many; at most {MAX_IMAGES}")
    return matched


class ImagePrompts(PromptSource):
    def __init__(self, prompts: list[Prompt], images: list[torch.Tensor], shuffle: bool) -> None:
        self.prompts, self.images, self.shuffle = prompts, images, shuffle

    @classmethod
    def from_settings(cls, settings: Settings, plan: Plan, images: ImageReader) -> ImagePrompts | None:
        if not settings.image_prompts:
            return None
        scale = settings.image_prompt_weight if settings.image_prompt_weight is not None else 1.0
        entries = parse_prompts(settings.image_prompts)
        prompts = [dataclasses.replace(entry, text=name, weight=entry.weight * scale)
                   for entry, files in zip(entries, matched_files([e.text for e in entries], "image_prompts"),
                                           strict=True)
                   for name in files]
        pictures = [images.read(prompt.text, plan.width, plan.height, "image_prompts") for prompt in prompts]
        return cls(prompts, pictures, settings.image_prompt_shuffle)

    def encode(self, perceptor: Perceptor) -> Targets:
        width = int(perceptor.model.visual.output_dim)
        empty = torch.zeros(0, device=perceptor.device)
        return Targets(torch.zeros(0, width, device=perceptor.device), empty, empty)

    def cut_targets(self, perceptor: Perceptor, views: StepViews) -> list[CutTarget]:
        view = views.fresh if self.shuffle else views.same
        return [CutTarget(perceptor.encode_image(view(image)).float(), prompt.weight, prompt.stop)
                for prompt, image in zip(self.prompts, self.images, strict=True)]
