"""Colour settings as RGB tensors: '#rrggbb' codes, CSS names, and Pixray's forms ('(255,0,0)' or
'(255+0+0)' in 0-255, '[1,0,0]' in 0-1, its pixel_* names), checked when the setting is read."""

from __future__ import annotations

import re

import torch
from PIL import ImageColor

from .options import SettingsError, shown

#: Pixray's own colour names.
PIXRAY_COLOURS = {
    "pixel_green": (0.44, 1.00, 0.53),
    "pixel_orange": (1.00, 0.80, 0.20),
    "pixel_blue": (0.44, 0.53, 1.00),
    "pixel_red": (1.00, 0.53, 0.44),
    "pixel_grayscale": (1.00, 1.00, 1.00),
}
COLOUR_FORMS = ("'#rrggbb', a CSS name such as 'red' or 'navy', '(255,0,0)' (0-255), '[1,0,0]' (0-1) "
                "or one of " + ", ".join(PIXRAY_COLOURS))


def pixray_colour(text: str) -> tuple[float, float, float] | None:
    """``text`` (stripped) in one of Pixray's own forms, as RGB in [0,1]: a triple, ``(255,0,0)`` or
    ``(255+0+0)`` in 0-255 or ``[1,0,0]`` in 0-1, or a ``pixel_*`` name; None if it is neither, and
    ValueError for a malformed triple."""
    if text[:1] in "([" and text[-1:] in ")]":
        try:
            parts = [float(p) for p in re.split(r"[,+\s]+", text[1:-1].strip())]
        except ValueError:
            raise ValueError(f"{shown(text)} is not a colour triple") from None
        scale = 255.0 if text[0] == "(" else 1.0
        if len(parts) != 3 or not all(0 <= p <= scale for p in parts):
            raise ValueError(f"{shown(text)} is not a colour triple ('(255+0+0)' in 0-255 or '[1+0+0]' "
                             "in 0-1)")
        return parts[0] / scale, parts[1] / scale, parts[2] / scale
    return PIXRAY_COLOURS.get(text)


def rgb_of(text: str) -> tuple[float, float, float]:
    """``text`` as RGB in [0,1]; raises ValueError if it is none of the forms above."""
    text = text.strip()
    found = pixray_colour(text)
    if found is not None:
        return found
    r, g, b = ImageColor.getrgb(text)[:3]
    return r / 255, g / 255, b / 255


def parse_colour(value: object) -> object:
    """A colour setting's value, unchanged if it is a colour (for ``option(parse=...)``)."""
    if isinstance(value, str):
        rgb_of(value)
    return value


def parse_colours(colours: list[str], setting: str) -> torch.Tensor:
    """(N,3) RGB in [0,1]; raises SettingsError naming a bad colour."""
    if not colours:
        raise SettingsError(f"{setting} is empty; give at least one colour ({COLOUR_FORMS})")
    rgb = []
    for text in colours:
        try:
            rgb.append(rgb_of(text))
        except ValueError:
            raise SettingsError(f"{setting}: {text!r} is not a colour; give {COLOUR_FORMS}") from None
    return torch.tensor(rgb, dtype=torch.float32)
