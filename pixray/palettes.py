"""Pixray's ``palette`` syntax: a list of RGB colours for the ``lookup`` filter and ``palette`` loss.

Sections joined by ``;`` add up. A section is

- a ramp: ``red`` (16 steps from black to red), ``rust\\8`` (8 steps), ``red->yellow`` (16 from red
  to yellow), ``black->red->white\\32`` (through each colour in turn);
- a list: ``[black, red, #ffff00]``, or ``[black, red]\\8`` spread over 8 steps;
- the colours of an image: ``@file.png`` (``.jpg``, ``.gif``, ``.webp``; or an http(s) URL) all of
  them when there are at most 255 (``\\N``: N), else that many by median cut; ``@file.act``, an
  Adobe colour table;
- a preset: ``grayscale`` (black->white\\256), ``web safe`` (the 216 web-safe colours), or ``pixray``
  (the 16 colours Pixray's lookup filter falls back to).

A colour is ``(255+0+0)`` (0-255) or ``[1+0+0]`` (0-1) (``+``-separated, as commas separate list
items), one of Pixray's ``pixel_*`` names, an xkcd colour name (``rust``, taken before a CSS name of
the same spelling, as Pixray), ``mat:NAME`` for matplotlib's own names, or any colour matplotlib
reads (CSS names, ``#rrggbb``, ``tab:blue``).
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from .colours import pixray_colour
from .init_images import ImageReader
from .options import SettingsError, option, shown

RGB = tuple[float, float, float]

#: Steps of a ramp without ``\N``, and most colours taken from an image without it (Pixray's).
RAMP_STEPS, IMAGE_COLOURS = 16, 255
#: Most colours one palette may hold (a ramp of a million steps would be a mistake, not a palette).
MAX_COLOURS = 4096

#: The table Pixray's lookup filter uses without a palette (its duplicate orange included).
PIXRAY_LOOKUP = ((0, 0, 0), (255, 255, 255), (63, 40, 50), (38, 43, 68), (90, 105, 136), (139, 155, 180),
                 (25, 60, 62), (38, 92, 66), (62, 137, 72), (99, 199, 77), (254, 231, 97), (254, 174, 52),
                 (254, 174, 52), (247, 118, 34), (184, 111, 80), (116, 63, 57))


class PaletteFiles(Protocol):
    """How a palette's ``@`` sections are read (a run's: through its ImageReader, so a server reads
    only the files a request sent)."""

    def pixels(self, name: str) -> np.ndarray:
        """The image file or URL ``name`` as (H,W,3) uint8."""

    def table(self, name: str) -> bytes:
        """The bytes of the file or URL ``name`` (an .act colour table)."""


@dataclass(frozen=True)
class ReaderFiles:
    """:class:`PaletteFiles` through an :class:`ImageReader`; images of over a megapixel are read
    scaled down (median cut needs no more), smaller ones at their own size, every colour kept."""

    images: ImageReader
    setting: str = "palette"

    def pixels(self, name: str) -> np.ndarray:
        image = self.images.read_scaled(name, self.setting,
                                        lambda w, h: min(1.0, (_MAX_PALETTE_PIXELS / (w * h)) ** 0.5))
        return image[0].permute(1, 2, 0).mul(255).round().byte().numpy()

    def table(self, name: str) -> bytes:
        return self.images.read_bytes(name, self.setting, 1024)


_MAX_PALETTE_PIXELS = 1 << 20


@functools.cache
def _presets() -> dict[str, list[RGB]]:
    levels = [i / 5 for i in range(6)]
    return {
        "grayscale": _spread([(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)], 256),
        "web safe": [(r, g, b) for r, g, b in itertools.product(levels, repeat=3)],
        "pixray": [(r / 255, g / 255, b / 255) for r, g, b in PIXRAY_LOOKUP],
    }


PRESET_NAMES = ("grayscale", "greyscale", "web safe", "websafe", "pixray")


def colour(token: str) -> RGB:
    """One colour of a palette, in [0,1]; ValueError naming the token if it is none."""
    import matplotlib.colors as mcolors  # imported here: only palettes need it, and it takes 0.4 s

    text = token.strip()
    found = pixray_colour(text)
    if found is not None:
        return found
    name = text[4:] if text.startswith("mat:") else text
    if not text.startswith("mat:") and mcolors.is_color_like(f"xkcd:{text}"):
        name = f"xkcd:{text}"
    try:
        r, g, b = mcolors.to_rgb(name)
    except ValueError:
        bracket = "," in text and not text.startswith(("(", "["))
        listed = f"; a list of colours is bracketed: {shown(f'[{text}]')}" if bracket else ""
        raise ValueError(f"{shown(token.strip())} is not a colour (a name such as 'rust' or 'navy', "
                         f"'#rrggbb', '(255+0+0)', '[1+0+0]' or 'mat:NAME'){listed}") from None
    return r, g, b


def _spread(colours: list[RGB], steps: int) -> list[RGB]:
    """``steps`` colours evenly along the polyline through ``colours`` (Pixray's expand_colors; one
    step is the last colour, where Pixray divides by zero)."""
    if len(colours) == 1 or steps == 1:
        return [colours[-1]] * steps
    points = np.linspace(0, len(colours) - 1, steps)
    array = np.asarray(colours, dtype=np.float64)
    low = np.minimum(points.astype(int), len(colours) - 2)
    frac = (points - low)[:, None]
    return [tuple(row) for row in (array[low] * (1 - frac) + array[low + 1] * frac)]


def _steps(section: str) -> tuple[str, int | None]:
    """``section`` without a trailing ``\\N``, and N (None without one)."""
    body, sep, count = section.rpartition("\\")
    if not sep:
        return section, None
    if not count.strip().isdigit() or not 1 <= int(count) <= MAX_COLOURS:
        raise ValueError(f"{shown(sep + count)} is not a number of colours from 1 to {MAX_COLOURS}")
    return body, int(count)


def _image_colours(pixels: np.ndarray, count: int) -> list[RGB]:
    """The colours of (H,W,3) uint8 ``pixels``: all when there are at most ``count``, else ``count``
    by median cut (Pixray uses colorthief's MMCQ; Pillow's median cut is the maintained equivalent)."""
    image = Image.fromarray(pixels, "RGB")
    found = image.getcolors(maxcolors=image.width * image.height)
    if found is not None and len(found) <= count:
        rgb = [c for _, c in sorted(found, key=lambda pair: -pair[0])]
    else:
        quantised = image.quantize(colors=count, method=Image.Quantize.MEDIANCUT)
        used = sorted(quantised.getcolors(maxcolors=count) or [], key=lambda pair: -pair[0])
        flat = quantised.getpalette() or []
        rgb = [tuple(flat[3 * index:3 * index + 3]) for _, index in used]
    return [(r / 255, g / 255, b / 255) for r, g, b in rgb]


def _act_colours(data: bytes) -> list[RGB]:
    """An Adobe colour table: 256 RGB triples, then optionally the count used (big-endian)."""
    if len(data) < 768:
        raise ValueError(f"an .act colour table is 768 or 772 bytes, and this one is {len(data)}")
    count = int.from_bytes(data[768:770], "big") if len(data) >= 772 else 256
    if not 1 <= count <= 256:
        raise ValueError(f"the .act colour table says it holds {count} colours")
    return [(data[3 * i] / 255, data[3 * i + 1] / 255, data[3 * i + 2] / 255) for i in range(count)]


def _section(section: str, files: PaletteFiles | None) -> list[RGB]:
    text = section.strip()
    if not text:
        raise ValueError("an empty section")
    preset = {"greyscale": "grayscale", "websafe": "web safe"}.get(text, text)
    if preset in _presets():
        return _presets()[preset]
    if text.startswith("[") or (text.startswith("@") or re.match(r"https?://", text)):
        body, steps = _steps(text)
        if body.startswith("["):
            if not body.endswith("]"):
                raise ValueError(f"{shown(body)} is not a list ('[a, b, ...]')")
            colours = [colour(item) for item in body[1:-1].split(",")]
            return _spread(colours, steps) if steps else colours
        source = body[1:] if body.startswith("@") else body
        if files is None:  # checking the syntax only; the run reads the file
            return [(0.0, 0.0, 0.0)]
        if source.lower().endswith(".act"):
            return _act_colours(files.table(source))
        return _image_colours(files.pixels(source), steps or IMAGE_COLOURS)
    body, steps = _steps(text)
    if "->" not in body and re.search(r"\.(png|jpe?g|gif|webp|bmp|act)$", body.strip(), re.IGNORECASE):
        raise ValueError(f"{shown(body.strip())} is not a colour; a file's colours are taken with an '@' "
                         f"before its name: {shown('@' + text)}")
    stops = body.split("->") if "->" in body else ["black", body]
    return _spread([colour(stop) for stop in stops], steps or RAMP_STEPS)


def parse_palette(text: str, files: PaletteFiles | None = None, setting: str = "palette") -> torch.Tensor:
    """``text`` in Pixray's syntax as (N,3) colours in [0,1]; a SettingsError naming ``setting`` and
    the section that failed. Without ``files``, files are not read (the syntax is checked)."""
    colours: list[RGB] = []
    for section in text.split(";"):
        try:
            colours += _section(section, files)
        except SettingsError:  # a file's reader names the setting and the file itself
            raise
        except ValueError as exc:
            raise SettingsError(f"setting {setting!r}: in {shown(section.strip())}: {exc}") from None
        if len(colours) > MAX_COLOURS:
            raise SettingsError(f"setting {setting!r}: {len(colours)} colours is too many; at most "
                                f"{MAX_COLOURS}")
    return torch.tensor(colours, dtype=torch.float32)


def check_palette(value: object) -> object:
    """The ``palette`` setting's value, unchanged when its syntax is right (``option(parse=...)``); a
    list of texts is Pixray's list of those colours, ``[black, red]``: what YAML reads that unquoted
    spelling as."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, str) for item in value):
        value = f"[{', '.join(item.strip() for item in value)}]"
    if isinstance(value, str):
        parse_palette(value)
    return value


def nearest_colours(pixels: torch.Tensor, palette: torch.Tensor, block: int = 1 << 16) -> torch.Tensor:
    """Index (P,) of the nearest of ``palette`` (N,3) for each of ``pixels`` (P,3), found a block of
    pixels at a time without a graph, so memory stays O(P) whatever the palette's size."""
    with torch.no_grad():
        return torch.cat([torch.cdist(part, palette.to(part), compute_mode="donot_use_mm_for_euclid_dist")
                          .argmin(dim=1) for part in pixels.detach().split(block)])


def palette_option() -> Any:
    """The ``palette`` setting, declared alike by every part that uses it (the lookup filter, the
    palette loss), so it is one setting."""
    return option(None, "Colours in Pixray's palette syntax: ramps ('red->yellow\\8'), lists "
                        "('[black, red]'), image colours ('@file.png'), .act tables, presets "
                        "(grayscale, web safe, pixray), ';'-joined",
                  parse=check_palette,
                  describe="text in Pixray's palette syntax (a YAML list: its list of colours), or none")
