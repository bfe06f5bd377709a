"""Colour settings ('#rrggbb' codes or CSS names) as RGB tensors, with errors that name the setting."""

from __future__ import annotations

import torch
from PIL import ImageColor

from ..options import SettingsError


def parse_colours(colours: list[str], setting: str) -> torch.Tensor:
    """(N,3) RGB in [0,1] from '#rrggbb' codes or CSS names; raises SettingsError naming a bad one."""
    if not colours:
        raise SettingsError(f"{setting} is empty; give at least one colour ('#rrggbb' or a CSS name)")
    rgb = []
    for text in colours:
        try:
            rgb.append(ImageColor.getrgb(text.strip())[:3])
        except ValueError:
            raise SettingsError(f"{setting}: {text!r} is not a colour; give '#rrggbb' codes or "
                                "CSS colour names such as 'red' or 'navy'") from None
    return torch.tensor(rgb, dtype=torch.float32) / 255
