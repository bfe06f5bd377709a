"""Pixray's starting canvases when there is no init image (its ``init_noise`` setting).

``pixels`` is fractal Perlin noise, one independent field per channel, pushed towards the ends of
the range: soft blobs of colour, the start Pixray's VQGAN results grew from. ``snow`` is a random
colour per pixel, ``gradient`` three random per-channel ramps, ``none`` a flat grey canvas. Every
random number comes from the run's generator, so a seed reproduces the start.
"""

from __future__ import annotations

import math

import torch

from .errors import SettingsError

NOISE_KINDS = ("pixels", "gradient", "snow", "none")

#: Lattice cells across the noise square at the coarsest octave (Pixray: 32).
PERLIN_PERIODS = 32


def noise_image(kind: str, width: int, height: int, generator: torch.Generator) -> torch.Tensor:
    """A starting canvas (1,3,height,width) in [0,1] on the generator's device."""
    device = generator.device
    if kind == "pixels":
        return pixels_noise(width, height, generator)
    if kind == "gradient":
        return gradient_noise(width, height, generator)
    if kind == "snow":
        return torch.rand(1, 3, height, width, generator=generator, device=device)
    if kind == "none":
        return torch.full((1, 3, height, width), 0.5, device=device)
    raise SettingsError(f"setting 'init_noise': {kind!r} is not allowed; "
                        f"expected one of {', '.join(NOISE_KINDS)}")


def pixels_noise(width: int, height: int, generator: torch.Generator) -> torch.Tensor:
    """Pixray's ``pixels`` start (1,3,height,width) in [0,1].

    Per channel: fractal Perlin noise laid over a square of 256, 512, 1024 or 2048 pixels (the
    smallest that holds the canvas above 256, with 3 to 6 octaves, as Pixray picks them) and
    cropped to the canvas from its top left corner, normalised to [0,1], then given more contrast
    by ``1 / (1 + ((1-n)/n)^2)``. Pixray normalises over the whole square; this normalises over
    what the canvas shows, so the visible start always spans the full range.
    """
    largest = max(width, height)
    side, octaves = next(((s, o) for s, o in ((256, 3), (512, 4), (1024, 5)) if largest <= s), (2048, 6))
    side = max(side, largest)  # Pixray caps the square at 2048; bigger canvases still get noise everywhere
    channels = []
    for _ in range(3):
        field = fractal_perlin(width, height, side, PERLIN_PERIODS, octaves, generator)
        field = (field - field.min()) / (field.max() - field.min()).clamp(min=1e-12)
        n = field * 0.9998 + 0.0001
        channels.append(1 / (1 + ((1 - n) / n) ** 2))
    return torch.stack(channels)[None]


def fractal_perlin(width: int, height: int, side: int, periods: int, octaves: int,
                   generator: torch.Generator, persistence: float = 0.5) -> torch.Tensor:
    """(height,width) top left corner of a (side,side) sum of ``octaves`` Perlin noise fields: the
    first with ``periods`` lattice cells across the side, each next one with twice as many cells
    and ``persistence`` times the amplitude."""
    total = torch.zeros(height, width, device=generator.device)
    amplitude = 1.0
    for octave in range(octaves):
        cells = min(periods * 2**octave, side)
        total += amplitude * perlin(width, height, side, cells, generator)
        amplitude *= persistence
    return total


def perlin(width: int, height: int, side: int, cells: int, generator: torch.Generator) -> torch.Tensor:
    """(height,width) top left corner of (side,side) Perlin gradient noise with ``cells`` lattice
    cells across; values in about [-0.7, 0.7], zero at the lattice points.

    A random unit gradient at each of the (cells+1)^2 lattice points; each pixel blends the dot
    products with its cell's four corner gradients by the quintic fade 6t^5 - 15t^4 + 10t^3.
    """
    device = generator.device
    angles = torch.rand(cells + 1, cells + 1, generator=generator, device=device) * (2 * math.pi)

    def axis(length: int) -> tuple[torch.Tensor, torch.Tensor]:
        position = (torch.arange(length, device=device) + 0.5) * (cells / side)
        index = position.floor().long().clamp(max=cells - 1)
        return index, position - index  # each pixel's cell, and where in it the pixel lies, in [0,1)

    (iy, dy), (ix, dx) = axis(height), axis(width)
    dy, dx = dy[:, None], dx[None, :]

    def corner(y: int, x: int) -> torch.Tensor:
        a = angles.index_select(0, iy + y).index_select(1, ix + x)
        return a.sin() * (dy - y) + a.cos() * (dx - x)

    fy, fx = fade(dy), fade(dx)
    top = torch.lerp(corner(0, 0), corner(0, 1), fx)
    bottom = torch.lerp(corner(1, 0), corner(1, 1), fx)
    return torch.lerp(top, bottom, fy)


def fade(t: torch.Tensor) -> torch.Tensor:
    """Perlin's quintic fade: 0 and 1 at the ends with zero first and second derivatives."""
    return t * t * t * (t * (t * 6 - 15) + 10)


def gradient_noise(width: int, height: int, generator: torch.Generator) -> torch.Tensor:
    """Pixray's ``gradient`` start (1,3,height,width) in [0,1]: red rises left to right from 0,
    green top to bottom from 0, blue runs top to bottom between two random levels."""
    device = generator.device

    def level(low: int, high: int) -> float:
        return int(torch.randint(low, high, (), generator=generator, device=device)) / 255

    red_end, green_end, blue_start, blue_end = level(1, 255), level(2, 255), level(0, 255), level(3, 128)
    xs = torch.linspace(0, 1, width, device=device)[None, :].expand(height, width)
    ys = torch.linspace(0, 1, height, device=device)[:, None].expand(height, width)
    return torch.stack([xs * red_end, ys * green_end,
                        blue_start + ys * (blue_end - blue_start)])[None].contiguous()
