"""Augmented cutouts of the canvas: what the perceptors actually look at.

Pixray's recipe: the whole canvas is pooled to the perceptor's input size ((avg + max) / 2), then
each cutout is a random view of it. Most views are a random crop seen through a random rotation,
shift and perspective; the rest zoom *out*, showing the whole canvas smaller on a random grey
surround. Colour jitter and Gaussian noise follow. Parameters are drawn from an explicit
``torch.Generator`` (:meth:`Cutouts.sample`) apart from the pure transform (:meth:`Cutouts.apply`),
so runs are repeatable and the transform is testable on fixed parameters.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_perspective_transform, warp_perspective

PADDING_MODES = ("border", "reflection", "zeros")



def unit_corners(device: torch.device) -> torch.Tensor:
    """(4,2) corners of the square [-1,1]^2, clockwise from the top left.

    Built by kernels on ``device``: a tensor copied from host memory would make every step wait
    for the GPU (each such constant showed up in torch.cuda.set_sync_debug_mode).
    """
    k = torch.arange(4, device=device)
    x = ((k == 1) | (k == 2)).float() * 2 - 1
    y = (k >= 2).float() * 2 - 1
    return torch.stack([x, y], dim=-1)


@dataclass(frozen=True)
class CutoutParams:
    """Random parameters of ``n`` cutouts (all tensors on the canvas's device)."""

    quads: torch.Tensor  # (n,4,2) source corners in [-1,1] canvas coordinates (beyond: padding)
    zoom: torch.Tensor  # (n,) bool: zoom-out view with a grey surround
    grey: torch.Tensor  # (n,) surround grey level in [0,1] for zoom-out views
    hue: torch.Tensor  # (n,) hue shift in radians
    saturation: torch.Tensor  # (n,) saturation factor
    noise: torch.Tensor  # (n,) standard deviation of added noise


@dataclass(frozen=True)
class Cutouts:
    """Cutouts of size ``cut_size`` (a perceptor's input resolution), with Pixray's proportions."""

    cut_size: int
    zoom_fraction: float = 0.4
    crop_probability: float = 0.5
    crop_area: tuple[float, float] = (0.1, 1.0)
    rotate_degrees: float = 15.0
    rotate_probability: float = 0.8
    translate: float = 0.1
    perspective: float = 0.35
    perspective_probability: float = 0.7
    zoom_out: tuple[float, float] = (1.0, 2.0)
    hue: float = 0.1 * math.pi
    saturation: float = 0.1
    jitter_probability: float = 0.7
    noise: float = 0.1

    def __call__(self, image: torch.Tensor, n: int, generator: torch.Generator,
                 padding_mode: str = "border", fill: float | str | None = None) -> torch.Tensor:
        """``n`` cutouts (n,3,S,S) of ``image`` (1,3,H,W) in [0,1].

        ``padding_mode`` fills what a crop view sees beyond the canvas ("border", "reflection",
        "zeros"). ``fill`` surrounds zoom-out views: a grey level, None for a random grey per
        cutout (Pixray), or a padding mode to extend the canvas instead of framing it.
        """
        params = self.sample(n, generator, image.device)
        if isinstance(fill, str):
            return self.apply(image, params, generator, padding_mode, zoom_padding=fill)
        if fill is not None:
            params = dataclasses.replace(params, grey=torch.full_like(params.grey, fill))
        return self.apply(image, params, generator, padding_mode)

    def sample(self, n: int, generator: torch.Generator, device: torch.device) -> CutoutParams:
        """Random parameters of ``n`` cutouts."""

        def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            return torch.rand(n, *shape, generator=generator, device=device) * (high - low) + low

        def chance(p: float) -> torch.Tensor:
            return torch.rand(n, generator=generator, device=device) < p

        zoom = chance(self.zoom_fraction)
        # Crop views: half-extents from a random area and aspect ratio, centred inside the canvas.
        whole = torch.ones(n, device=device)
        area = torch.where(chance(self.crop_probability), uniform(*self.crop_area), whole)
        ratio = torch.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
        half = torch.stack([(area * ratio).sqrt(), (area / ratio).sqrt()], -1).clamp(max=1.0)
        # Zoom-out views: the canvas shown smaller, anywhere inside a larger window.
        half = torch.where(zoom[:, None], uniform(*self.zoom_out)[:, None].expand(n, 2), half)
        centre = (uniform(-1, 1, 2) * (1 - half).abs()
                  + uniform(-self.translate, self.translate, 2) * ~zoom[:, None])
        angle = torch.where(chance(self.rotate_probability) & ~zoom,
                            uniform(-1, 1) * math.radians(self.rotate_degrees), torch.zeros(n, device=device))
        corners = unit_corners(device) * half[:, None, :]
        cos, sin = angle.cos()[:, None], angle.sin()[:, None]
        rotated = torch.stack([corners[..., 0] * cos - corners[..., 1] * sin,
                               corners[..., 0] * sin + corners[..., 1] * cos], -1)
        warp = uniform(-self.perspective, self.perspective, 4, 2) * half[:, None, :]
        warp = warp * chance(self.perspective_probability)[:, None, None]
        jitter = chance(self.jitter_probability)
        return CutoutParams(
            quads=centre[:, None, :] + rotated + warp,
            zoom=zoom,
            grey=uniform(0, 1),
            hue=uniform(-self.hue, self.hue) * jitter,
            saturation=1 + uniform(-self.saturation, self.saturation) * jitter,
            noise=uniform(0, self.noise),
        )

    def apply(self, image: torch.Tensor, params: CutoutParams, generator: torch.Generator,
              padding_mode: str = "border", zoom_padding: str | None = None) -> torch.Tensor:
        """The cutouts (n,3,S,S) described by ``params``; ``generator`` draws the pixel noise.

        ``image`` is one canvas (1,3,H,W) viewed n times, or n images (n,3,H,W) viewed once each.
        Zoom-out views sit on their grey (``params.grey``), or, given ``zoom_padding``, extend the
        canvas with that padding mode like crop views do.
        """
        for mode in (padding_mode, zoom_padding or padding_mode):
            if mode not in PADDING_MODES:
                raise ValueError(f"padding_mode {mode!r} is not one of {', '.join(PADDING_MODES)}")
        size = self.cut_size
        pooled = (F.adaptive_avg_pool2d(image, size) + F.adaptive_max_pool2d(image, size)) / 2
        n = params.quads.shape[0]
        target = unit_corners(image.device).to(image.dtype).expand(n, 4, 2)
        to_pixels = (size - 1) / 2
        matrix = get_perspective_transform((params.quads + 1) * to_pixels, (target + 1) * to_pixels)
        source = pooled.expand(n, -1, -1, -1) if pooled.shape[0] == 1 else pooled
        crops = warp_perspective(source, matrix, (size, size), padding_mode=padding_mode)
        if zoom_padding is None:
            # Warp with zeros and a coverage mask, then fill the surround with grey.
            framed = warp_perspective(torch.cat([source, torch.ones_like(source[:, :1])], 1), matrix,
                                      (size, size), padding_mode="zeros")
            zoomed = framed[:, :3] + (1 - framed[:, 3:]) * params.grey[:, None, None, None]
        elif zoom_padding == padding_mode:
            zoomed = crops
        else:
            zoomed = warp_perspective(source, matrix, (size, size), padding_mode=zoom_padding)
        out = torch.where(params.zoom[:, None, None, None], zoomed, crops)
        out = torch.einsum("nij,njhw->nihw", colour_matrices(params.hue, params.saturation).to(out), out)
        noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        return out + noise * params.noise[:, None, None, None]


# Rec. 601 luma weights: the grey that saturation changes move towards.
_LUMA = (0.299, 0.587, 0.114)


def colour_matrices(hue: torch.Tensor, saturation: torch.Tensor) -> torch.Tensor:
    """(n,3,3) RGB matrices: rotate hue by ``hue`` radians about the grey axis, then scale
    saturation by ``saturation`` around luma.

    Linear colour jitter keeps gradients smooth everywhere; an HSV round trip has none to give
    at grey pixels (hue is undefined there), which stalls a canvas that starts grey.
    """
    # All constants built on the device (see unit_corners).
    eye = torch.eye(3, device=hue.device)
    axis = torch.full((3,), 3**-0.5, device=hue.device)
    shift = eye.roll(1, dims=0)
    cross = (shift - shift.T) * 3**-0.5  # cross-product matrix of the grey axis
    cos, sin = hue.cos()[:, None, None], hue.sin()[:, None, None]
    rotation = cos * eye + sin * cross + (1 - cos) * torch.outer(axis, axis)
    weights = sum(w * eye[i] for i, w in enumerate(_LUMA))
    luma = torch.ones(3, 1, device=hue.device) * weights
    s = saturation[:, None, None]
    return (s * eye + (1 - s) * luma) @ rotation
