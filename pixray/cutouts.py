"""Augmented cutouts of the canvas: what the perceptors actually look at.

The canvas is first pooled ((avg + max) / 2) to the perceptor's input size *at the canvas's own
aspect* (its short side becomes the cut size; see :func:`pooled_shape`), so no view sees it squashed.
Each cutout is then one perspective warp of that pooled image into a square: a *crop* view of part
of it (what lies beyond the canvas filled by a padding mode), or a *framed* view of the whole canvas,
smaller, on a grey surround. Colour jitter and Gaussian noise follow.

Two recipes choose the views (setting ``cut_method``):

- :class:`PixrayCutouts` (default): Pixray's ``MakeCutouts``. 60 % crop views (a perspective warp,
  then a crop of 25-95 % of the area at width/height 0.85-1.2), 40 % framed views (the whole canvas
  letterboxed at 90-100 % of the view's width, or 95 % on a square canvas, with a milder
  perspective); one grey for every framed view of a batch; hue jitter of +-0.1 turn and saturation
  of +-10 % on 80 % of the views.
- :class:`RotatedCutouts`: this project's first recipe: 60 % crops of 10-100 % of the short side's
  square turned up to 15 degrees, 40 % zoom-out views showing the canvas at 1/2 to 1 of the view.
  The shapes-world guides were trained on its views.

Parameters are drawn from an explicit ``torch.Generator`` (``sample``) apart from the pure transform
(:meth:`Cutouts.apply`), so runs are repeatable and the transform is testable on fixed parameters.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F

from .homography import quad_to_quad, square_to_quad, transformed
from .runtime import device_vector

PADDING_MODES = ("border", "reflection", "zeros")


def unit_corners(device: torch.device) -> torch.Tensor:
    """(4,2) corners of the square [-1,1]^2, clockwise from the top left.

    Built by kernels on ``device``: a tensor copied from host memory would make every step wait
    for the GPU (each such constant showed up in torch.cuda.set_sync_debug_mode).
    """
    corners = torch.ones(4, 2, device=device)
    corners[::3, 0].fill_(-1)  # the left side: top left and bottom left
    corners[:2, 1].fill_(-1)  # the top
    return corners


def pooled_shape(cut_size: int, height: int, width: int) -> tuple[int, int]:
    """(height, width) the canvas is pooled to before views are cut: its aspect kept, the short side
    ``cut_size``, but the long side never beyond the canvas's own (or ``cut_size``), so a canvas
    already near the cut size is used as it is rather than resampled twice."""
    short, long = min(height, width), max(height, width)
    scale = min(cut_size / short, max(cut_size, long) / long)
    return max(1, round(height * scale)), max(1, round(width * scale))


def view_grid(quads: torch.Tensor, size: int) -> torch.Tensor:
    """(n,S,S,2) sampling grid of ``n`` square views of side S=``size``: where each view pixel lies in
    the pooled canvas, (x, y) in [-1,1] from its first to its last pixel centre (``grid_sample``'s
    ``align_corners=True``), beyond that outside it. View n's corners (clockwise from the top left)
    land on ``quads[n]`` (n,4,2) and the rest follows the perspective through them."""
    # The view's corners are the unit square's (0,0) to (1,1), its pixel centres spaced evenly between.
    homography = square_to_quad(quads)
    # A pixel's homogeneous image is h[:, 0] * u + h[:, 1] * v + h[:, 2] for the homography's columns
    # h: summed from the view's two axes, it is a few elementwise passes over the grid, where
    # multiplying every pixel's (u, v, 1) by the matrix (kornia's transform_points) is a product with 3
    # columns and copies, far slower on a CPU (docs/performance.md has the figures).
    axis = torch.linspace(0, 1, size, device=quads.device, dtype=quads.dtype)
    columns = homography[..., None, None]  # (n,3,3,1,1)
    points = columns[:, :, 0] * axis + (columns[:, :, 1] * axis[:, None] + columns[:, :, 2])  # (n,3,S,S)
    return (points[:, :2] / points[:, 2:]).permute(0, 2, 3, 1).contiguous()


def padded(grid: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """``grid`` with the coordinates beyond [-1,1] moved to where ``padding_mode`` reads them: the
    nearest edge ("border"), the mirror image across the edges ("reflection"), or left beyond ("zeros",
    which sampling with zero padding reads as black). ``grid_sample``'s own padding modes with
    ``align_corners=True``, so views with different modes can be sampled in one call."""
    if padding_mode == "border":
        return grid.clamp(-1, 1)
    if padding_mode == "reflection":
        folded = (grid + 1).abs().remainder(4)
        return torch.where(folded > 2, 4 - folded, folded) - 1
    return grid


def _sample(source: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (n,C,S,S) of ``source`` (1,C,H,W), or (n,C,H,W) one image per view, at ``grid``
    (n,S,S,2), zero beyond [-1,1]. One canvas is read by all the views' grids stacked as one (1, n·S,
    S, 2) grid, so its gradient is summed straight into (1,C,H,W) rather than into n expanded copies.
    On a CPU the stacked rows go in as many parts as torch has threads, the canvas expanded to them:
    torch's CPU sampler shares its work among threads by image, so one image is sampled (and its
    gradient summed) by one thread."""
    n, size = grid.shape[0], grid.shape[1]
    if source.shape[0] == 1 and n > 1:
        rows, channels = n * size, source.shape[1]
        parts = _cpu_parts(rows) if source.device.type == "cpu" else 1
        parted = grid.reshape(parts, rows // parts, *grid.shape[2:])
        stacked = F.grid_sample(source.expand(parts, -1, -1, -1), parted, padding_mode="zeros",
                                align_corners=True)
        # (parts, C, rows / parts, S) -> (n, C, S, S): a view for one part, a copy for more.
        return stacked.transpose(0, 1).reshape(channels, n, size, -1).transpose(0, 1)
    return F.grid_sample(source.expand(n, -1, -1, -1), grid, padding_mode="zeros", align_corners=True)


def _cpu_parts(rows: int) -> int:
    """How many parts ``rows`` stacked grid rows go in on a CPU: torch's thread count, or the largest
    number below it that divides them."""
    return next(parts for parts in range(torch.get_num_threads(), 0, -1) if rows % parts == 0)


@dataclass(frozen=True)
class CutoutParams:
    """Random parameters of ``n`` cutouts (all tensors on the canvas's device)."""

    quads: torch.Tensor  # (n,4,2) source corners (x, y) in [-1,1] pooled-canvas coordinates (beyond: padding)
    framed: torch.Tensor  # (n,) bool: a view of the whole canvas on a grey surround
    grey: torch.Tensor  # (n,) surround grey level in [0,1] for framed views
    hue: torch.Tensor  # (n,) hue shift in radians
    saturation: torch.Tensor  # (n,) saturation factor
    noise: torch.Tensor  # (n,) standard deviation of added noise


class _Draw:
    """Uniform draws of shape (n, ...) from one generator."""

    def __init__(self, n: int, generator: torch.Generator, device: torch.device) -> None:
        self.n, self.generator, self.device = n, generator, device

    def uniform(self, low: float | torch.Tensor, high: float | torch.Tensor, *shape: int,
                power: float = 1.0) -> torch.Tensor:
        """Draws in [low, high): ``low + (high - low) * u ** power`` for uniform u (power 1: uniform)."""
        u = torch.rand(self.n, *shape, generator=self.generator, device=self.device)
        return (u if power == 1 else u ** power) * (high - low) + low

    def chance(self, p: float) -> torch.Tensor:
        return torch.rand(self.n, generator=self.generator, device=self.device) < p


@dataclass(frozen=True)
class Cutouts:
    """Cutouts of size ``cut_size`` (a perceptor's input resolution); subclasses choose the views.

    Colour jitter (a hue shift up to ``hue`` radians and a saturation factor within 1 +-
    ``saturation``, on ``jitter_probability`` of the views) and noise (sd up to ``noise``) are common,
    and so is ``crop_power``: crop views' areas are drawn as ``low + (high - low) * u ** crop_power``
    (setting ``cut_pow``; above 1 favours close-ups).
    """

    cut_size: int
    hue: float = 0.1 * math.pi
    saturation: float = 0.1
    jitter_probability: float = 0.7
    noise: float = 0.1
    crop_power: float = 1.0

    def __call__(self, image: torch.Tensor, n: int, generator: torch.Generator,
                 padding_mode: str = "border", fill: float | str | None = None) -> torch.Tensor:
        """``n`` cutouts (n,3,S,S) of ``image`` (1,3,H,W) in [0,1].

        ``padding_mode`` fills what a crop view sees beyond the canvas ("border", "reflection",
        "zeros"). ``fill`` surrounds framed views: a grey level, None for the recipe's random grey,
        or a padding mode to extend the canvas instead of framing it.
        """
        params, zoom_padding = self.params_for(image, n, generator, fill)
        return self.apply(image, params, generator, padding_mode, zoom_padding)

    def params_for(self, image: torch.Tensor, n: int, generator: torch.Generator,
                   fill: float | str | None = None) -> tuple[CutoutParams, str | None]:
        """Parameters of ``n`` cutouts of ``image`` and the zoom padding, as :meth:`__call__` uses
        them (``fill`` as there); :meth:`apply` them to other images to see those the same way."""
        params = self.sample(n, generator, image.device, pooled_shape(self.cut_size, *image.shape[-2:]))
        if isinstance(fill, str):
            return params, fill
        if fill is not None:
            params = dataclasses.replace(params, grey=torch.full_like(params.grey, fill))
        return params, None

    def sample(self, n: int, generator: torch.Generator, device: torch.device,
               pooled: tuple[int, int]) -> CutoutParams:
        """Random parameters of ``n`` cutouts of a canvas pooled to ``pooled`` (height, width)."""
        raise NotImplementedError

    def _colour(self, draw: _Draw, jitter: torch.Tensor) -> dict[str, torch.Tensor]:
        """Hue, saturation and noise parameters of ``draw.n`` views; ``jitter``: which are jittered."""
        return {"hue": draw.uniform(-self.hue, self.hue) * jitter,
                "saturation": 1 + draw.uniform(-self.saturation, self.saturation) * jitter,
                "noise": draw.uniform(0, self.noise)}

    def apply(self, image: torch.Tensor, params: CutoutParams, generator: torch.Generator,
              padding_mode: str = "border", zoom_padding: str | None = None) -> torch.Tensor:
        """The cutouts (n,3,S,S) described by ``params``; ``generator`` draws the pixel noise.

        ``image`` is one canvas (1,3,H,W) viewed n times, or n images (n,3,H,W) viewed once each.
        Framed views sit on their grey (``params.grey``), or, given ``zoom_padding``, extend the
        canvas with that padding mode like crop views do.
        """
        for mode in (padding_mode, zoom_padding or padding_mode):
            if mode not in PADDING_MODES:
                raise ValueError(f"padding_mode {mode!r} is not one of {', '.join(PADDING_MODES)}")
        size = self.cut_size
        shape = pooled_shape(size, *image.shape[-2:])
        if shape == tuple(image.shape[-2:]):
            pooled = image  # both poolings of a canvas to its own size are the canvas
        else:
            pooled = (F.adaptive_avg_pool2d(image, shape) + F.adaptive_max_pool2d(image, shape)) / 2
        grid = view_grid(params.quads.to(pooled.dtype), size)
        framed = params.framed[:, None, None, None]
        grid = torch.where(framed, padded(grid, zoom_padding or "zeros"), padded(grid, padding_mode))
        out = _sample(pooled, grid)
        if zoom_padding is None:
            # Framed views sit on their grey where they see beyond the canvas (its coverage < 1).
            with torch.no_grad():
                coverage = _sample(torch.ones_like(pooled[:1, :1]), grid)
                surround = (1 - coverage) * (params.grey.to(out.dtype)[:, None, None, None] * framed)
            out = out + surround
        out = torch.einsum("nij,njhw->nihw", colour_matrices(params.hue, params.saturation).to(out), out)
        noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        return torch.addcmul(out, noise, params.noise[:, None, None, None])


@dataclass(frozen=True)
class PixrayCutouts(Cutouts):
    """Pixray's ``MakeCutouts`` views, at the canvas's true aspect (see the module docstring)."""

    crop_fraction: float = 0.6
    crop_area: tuple[float, float] = (0.25, 0.95)  # of the pooled canvas's area
    crop_ratio: tuple[float, float] = (0.85, 1.2)  # width / height, drawn log-uniformly
    crop_perspective: float = 0.4  # how far each corner may move in, as a fraction of the half size
    framed_perspective: float = 0.2
    perspective_probability: float = 0.7
    hue: float = 0.1 * 2 * math.pi  # kornia's ColorJitter(hue=0.1) is a tenth of a turn
    jitter_probability: float = 0.8

    def sample(self, n: int, generator: torch.Generator, device: torch.device,
               pooled: tuple[int, int]) -> CutoutParams:
        height, width = pooled
        n_crops = int(self.crop_fraction * n)
        crops = self._crop_quads(_Draw(n_crops, generator, device), height, width)
        framed = self._framed_quads(_Draw(n - n_crops, generator, device), height, width)
        draw = _Draw(n, generator, device)
        is_framed = torch.arange(n, device=device) >= n_crops
        grey = torch.rand((), generator=generator, device=device).expand(n)  # one grey for the batch
        jitter = draw.chance(self.jitter_probability)
        scale = device_vector(device, max((width - 1) / 2, 0.5), max((height - 1) / 2, 0.5))
        return CutoutParams(quads=torch.cat([crops, framed]) / scale - 1, framed=is_framed,
                            grey=grey.contiguous(), **self._colour(draw, jitter))

    def _perspective_inverse(self, draw: _Draw, frame: torch.Tensor, half: torch.Tensor,
                             distortion: float) -> torch.Tensor:
        """(n,3,3) inverse of a kornia-style random perspective of ``frame`` (n,4,2): each corner
        moves inwards by up to ``distortion`` x ``half`` (x, y), with probability
        ``perspective_probability``."""
        inwards = -unit_corners(frame.device)  # towards the middle from each corner
        moved = draw.uniform(0, 1, 4, 2) * draw.chance(self.perspective_probability)[:, None, None]
        end = frame + inwards * half * distortion * moved
        return quad_to_quad(end, frame)

    def _crop_quads(self, draw: _Draw, height: int, width: int) -> torch.Tensor:
        """(n,4,2) pixel corners in the pooled canvas whose warp to the view is Pixray's crop view:
        a perspective of the whole canvas, then a random resized crop of it."""
        device = draw.device
        size = device_vector(device, width - 1.0, height - 1.0)
        frame = (unit_corners(device) + 1) / 2 * size
        undo = self._perspective_inverse(draw, frame.expand(draw.n, 4, 2), size / 2, self.crop_perspective)
        area = draw.uniform(*self.crop_area, power=self.crop_power) * (width * height)
        ratio = torch.exp(draw.uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])))
        extent = torch.stack([(area * ratio).sqrt(), (area / ratio).sqrt()], -1)  # (n,2) as (w, h)
        # Too big for the canvas at this ratio: shrink, keeping the ratio (kornia redraws instead).
        limit = device_vector(device, width, height)
        extent = extent / (extent / limit).amax(-1, keepdim=True).clamp(min=1)
        corner = draw.uniform(0, 1, 2) * (limit - extent)
        rect = corner[:, None, :] + (unit_corners(device) + 1) / 2 * (extent - 1).clamp(min=0)[:, None, :]
        return transformed(undo, rect)

    def _framed_quads(self, draw: _Draw, height: int, width: int) -> torch.Tensor:
        """(n,4,2) pixel corners in the pooled canvas whose warp to the view is Pixray's framed view:
        the whole canvas scaled to 90-100 % of the view's side along its long side (95 % when the
        canvas is square), moved at random across the short side, then a mild perspective."""
        device, size = draw.device, self.cut_size
        square = height == width
        fit = size / max(height, width)
        low, high = (0.95, 0.95) if square else (0.9, 1.0)
        scale = draw.uniform(low * fit, high * fit)[:, None]
        # Pixray's translation range: what the largest scale leaves free, on each axis.
        room = device_vector(device, *(max(size - high * fit * side, 0) / 2 for side in (width, height)))
        shift = draw.uniform(-1, 1, 2) * room
        view = (unit_corners(device) + 1) / 2 * (size - 1)
        half = torch.full((2,), size / 2, device=device)
        undo = self._perspective_inverse(draw, view.expand(draw.n, 4, 2), half, self.framed_perspective)
        in_view = transformed(undo, view.expand(draw.n, 4, 2))
        # The view is a (size x size) window centred on the scaled canvas's centre, moved by shift.
        middle_view = (size - 1) / 2
        middle = device_vector(device, (width - 1) / 2, (height - 1) / 2)
        return middle + (in_view - middle_view - shift[:, None, :]) / scale[:, :, None]


@dataclass(frozen=True)
class RotatedCutouts(Cutouts):
    """This project's first recipe (see the module docstring), at the canvas's true aspect.

    Lengths are drawn in units of half the pooled canvas's short side, so a square canvas is seen
    exactly as before aspect was taken into account.
    """

    zoom_fraction: float = 0.4
    crop_probability: float = 0.5
    crop_area: tuple[float, float] = (0.1, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # width / height, drawn log-uniformly
    rotate_degrees: float = 15.0
    rotate_probability: float = 0.8
    translate: float = 0.1
    perspective: float = 0.35
    perspective_probability: float = 0.7
    zoom_out: tuple[float, float] = (1.0, 2.0)

    def sample(self, n: int, generator: torch.Generator, device: torch.device,
               pooled: tuple[int, int]) -> CutoutParams:
        height, width = pooled
        # Half the pooled canvas in units of half its short side: (aspect, 1) or (1, 1 / aspect).
        extent = device_vector(device, max(width / height, 1.0), max(height / width, 1.0))
        draw = _Draw(n, generator, device)
        uniform, chance = draw.uniform, draw.chance
        zoom = chance(self.zoom_fraction)
        # Crop views: half-extents from a random area and aspect ratio, centred inside the canvas.
        whole = torch.ones(n, device=device)
        cropped = chance(self.crop_probability)  # drawn before the areas, as it always was
        area = torch.where(cropped, uniform(*self.crop_area, power=self.crop_power), whole)
        ratio = torch.exp(uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])))
        half = torch.stack([(area * ratio).sqrt(), (area / ratio).sqrt()], -1).clamp(max=1.0)
        # Zoom-out views: the whole canvas shown smaller, anywhere inside a larger square window.
        half = torch.where(zoom[:, None], uniform(*self.zoom_out)[:, None] * extent.max(), half)
        centre = (uniform(-1, 1, 2) * (1 - half / extent).abs()
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
        grey = uniform(0, 1)
        return CutoutParams(quads=centre[:, None, :] + rotated / extent + warp / extent, framed=zoom,
                            grey=grey, **self._colour(draw, jitter))


#: The recipes a run may choose (setting ``cut_method``).
CUT_METHODS: Mapping[str, type[Cutouts]] = MappingProxyType({
    "pixray": PixrayCutouts,
    "rotated": RotatedCutouts,
})


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
