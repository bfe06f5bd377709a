"""``style``: the canvas pulled towards a style image's look in VGG16 feature space (Pixray's STROTSS
style loss: relaxed earth mover's distance and moments of VGG16 hypercolumns, with a content term
that keeps the canvas's own layout)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..declared_models import DeclaredModel
from ..init_images import read_native
from ..options import SettingsError, option
from ..weights import CheckpointError
from .base import Loss, LossContext

if TYPE_CHECKING:
    from ..resources import Resources

VGG16_MODEL, VGG16_FILE = "vgg16", "vgg16-397923af.pth"
#: Indices in torchvision's ``vgg16().features`` whose outputs make the hypercolumns (relu1_1,
#: relu1_2, relu2_1, relu2_2, relu3_1, relu3_2, relu3_3, relu4_3, relu5_3), as Pixray.
CAPTURED = (1, 3, 6, 8, 11, 13, 15, 22, 29)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: A scale is used while the canvas's short side, divided by it, is at least this (Pixray's).
MIN_SCALE_SIDE = 33
CANVAS_SAMPLES = 1024  # positions of the canvas compared per draw (at most the scale's positions)
DRAWS = 3  # draws of canvas positions per scale (Pixray's three inner iterations)
STYLE_SAMPLES = 5, 1000  # positions of the style image per scale: Pixray's 5 draws of up to 1000
#: Pixray's factors on each scale's loss: the coarse scales count 2e-3, the finest 1.
COARSE_FACTOR, FINEST_FACTOR = 2e-3, 1.0
# Pixray's YUV-like basis for the colour channels' distance.
_YUV = ((0.577350, 0.577350, 0.577350), (-0.577350, 0.788675, -0.211325),
        (-0.577350, -0.211325, 0.788675))


@dataclass(frozen=True)
class StyleOptions:
    style_file: str | None = option(None, "Image whose style (its VGG16 feature statistics and colours) the "
                                          "canvas is pulled towards", names_file=True)
    styleloss_content_weight: float = option(32.0, "Weight of keeping the canvas's own layout against "
                                                   "taking the style (halved at each finer scale, Pixray's)",
                                             minimum=0, maximum=10000)
    styleloss_ospace: str = option("uniform", "How images enter VGG16: uniform (normalised as VGG16 was "
                                              "trained) or vgg (the [0,1] values as they are)",
                                   choices=["uniform", "vgg"])
    styleloss_skip: int = option(100, "Steps before the style loss starts (Pixray's 100)", minimum=0,
                                 maximum=100000)
    styleloss_every: int = option(1, "Score the style loss every N steps", minimum=1, maximum=100000)


class Vgg16Features(nn.Module):
    """The convolutional part of VGG16 up to relu5_3, frozen; :meth:`forward` gives hypercolumn
    sources: the input and each :data:`CAPTURED` layer's output."""

    def __init__(self, layers: nn.Sequential) -> None:
        super().__init__()
        self.layers = layers
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def empty(cls) -> Vgg16Features:
        """VGG16's layers up to relu5_3 with uninitialised weights (built on the meta device, so the
        unused classifier's 120M parameters are never initialised)."""
        from torchvision.models import vgg16

        with torch.device("meta"):
            layers = vgg16(weights=None).features[:CAPTURED[-1] + 1]
        return cls(layers.to_empty(device="cpu"))

    @classmethod
    def load(cls, path: str | Path) -> Vgg16Features:
        """From torchvision's VGG16 state dict file (``features.N.weight`` keys; the classifier is
        not used)."""
        model = cls.empty()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            features = {key.removeprefix("features."): value for key, value in state.items()
                        if key.startswith("features.")}
            model.layers.load_state_dict(features)
        except Exception as exc:  # an unreadable file is the same error however it fails
            raise CheckpointError(f"{str(path)!r} is not torchvision's VGG16 state dict: "
                                  f"{str(exc).splitlines()[0]}") from None
        return model

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """``image`` (N,3,H,W) as VGG16 takes it -> [image, relu1_1, ..., relu5_3]."""
        outputs = [image]
        for index, layer in enumerate(self.layers):
            image = layer(image)
            if index in CAPTURED:
                outputs.append(image)
        return outputs


def _laplacian(image: torch.Tensor) -> torch.Tensor:
    """``image`` minus its blur (down to half size and back): the detail one octave holds."""
    height, width = image.shape[-2:]
    small = _resample(image, max(height // 2, 1), max(width // 2, 1))
    return image - _resample(small, height, width)


def _resample(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(image, (height, width), mode="bilinear", align_corners=False)


def _hypercolumns(features: list[torch.Tensor], rows: torch.Tensor, cols: torch.Tensor,
                  bilinear: bool) -> torch.Tensor:
    """(C,N): every feature map read at the N positions (``rows``, ``cols`` in the first map's
    pixels, halved with each map's halving), bilinearly or at the nearest lower position."""
    columns, size = [], features[0].shape[-2]
    for feature in features:
        height, width = feature.shape[-2:]
        halvings = 2 ** round(math.log2(size / height))  # VGG16's poolings halve, rounding down
        r, c = rows / halvings, cols / halvings
        flat = feature[0].flatten(1)  # (C, h*w)
        r0, c0 = r.floor().clamp(0, height - 1), c.floor().clamp(0, width - 1)
        if not bilinear:
            columns.append(flat[:, (r0 * width + c0).long()])
            continue
        fr, fc = (r - r.floor())[None], (c - c.floor())[None]
        r1, c1 = (r0 + 1).clamp(max=height - 1), (c0 + 1).clamp(max=width - 1)

        def at(y: torch.Tensor, x: torch.Tensor, flat: torch.Tensor = flat, width: int = width
               ) -> torch.Tensor:
            return flat[:, (y * width + x).long()]

        columns.append(at(r0, c0) * (1 - fr) * (1 - fc) + at(r0, c1) * (1 - fr) * fc
                       + at(r1, c0) * fr * (1 - fc) + at(r1, c1) * fr * fc)
    return torch.cat(columns)


def _cosine_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,M): 1 - cosine similarity of the rows of ``x`` (N,C) and ``y`` (M,C)."""
    return 1 - F.normalize(x, dim=1, eps=1e-12) @ F.normalize(y, dim=1, eps=1e-12).T


def _l2_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,M): Pixray's root of the clamped squared distance per channel."""
    squared = x.square().sum(1, keepdim=True) + y.square().sum(1)[None] - 2 * x @ y.T
    return (squared.clamp(1e-5, 1e5) / x.shape[1]).sqrt()


def _relaxed_emd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Relaxed earth mover's distance between the columns of ``x`` (C,N) and ``y`` (C,M): the larger
    of each side's mean distance to its nearest match; for colours (C=3) in a YUV basis with the
    cosine and L2 distances added."""
    x, y = x.T, y.T
    if x.shape[1] == 3:
        basis = x.new_tensor(_YUV)
        x, y = x @ basis.T, y @ basis.T
        cost = _cosine_distances(x, y) + _l2_distances(x, y)
    else:
        cost = _cosine_distances(x, y)
    return torch.maximum(cost.min(1).values.mean(), cost.min(0).values.mean())


@dataclass(frozen=True)
class _Columns:
    """Hypercolumns (C,N) with their channel means (C,1) and covariance (C,C)."""

    values: torch.Tensor
    mean: torch.Tensor
    covariance: torch.Tensor

    @classmethod
    def of(cls, values: torch.Tensor) -> _Columns:
        mean = values.mean(1, keepdim=True)
        return cls(values, mean, (values - mean) @ (values - mean).T / (values.shape[1] - 1))


def _moments(x: _Columns, y: _Columns) -> torch.Tensor:
    """Mean absolute difference of the channel means plus that of the channel covariances."""
    return (x.mean - y.mean).abs().mean() + (x.covariance - y.covariance).abs().mean()


class StyleLoss(Loss):
    """Pixray's style loss (STROTSS), scored on the canvas from step ``styleloss_skip`` on.

    At each scale (the canvas halved while its short side stays at least 33 pixels, coarse first)
    a "result" is built as Pixray does (the canvas's detail over the style image's mean colour at
    the coarsest scale, then each finer scale's detail over the coarser result, the finest the
    coarser result enlarged), and VGG16 hypercolumns (input and nine ReLU layers) are compared at
    sampled positions: relaxed EMD and moments against the style image's (colours matched too,
    by 1/content weight), and the self-similarity of the result's against the canvas's (the
    content term, weighted ``styleloss_content_weight``, halved per finer scale). Positions are
    drawn from the run's generator, so a seed repeats.
    """

    Options = StyleOptions

    def __init__(self, options: StyleOptions, style: torch.Tensor, vgg: Vgg16Features) -> None:
        super().__init__(options)
        self.register_buffer("style", style, persistent=False)  # (1,3,h,w) in [0,1]
        self.vgg = vgg
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[None, :, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[None, :, None, None], persistent=False)
        self._style_columns_by_size: dict[tuple[int, ...], _Columns] = {}
        self._styles: dict[tuple[int, ...], torch.Tensor] = {}  # by canvas size and scale size

    @classmethod
    def create(cls, options: StyleOptions, resources: Resources) -> StyleLoss:
        if not options.style_file:
            raise SettingsError("custom_loss 'style' needs setting 'style_file': the image whose style the "
                                "canvas takes")
        style = read_native(resources.images, options.style_file, "style_file")
        return cls(options, style, resources.models.get_file(VGG16_FILE, Vgg16Features.load))

    @classmethod
    def declared_models(cls) -> Mapping[str, DeclaredModel]:
        return {VGG16_MODEL: DeclaredModel((VGG16_FILE,),
                                           lambda cache: cache.get_file(VGG16_FILE, Vgg16Features.load))}

    @classmethod
    def models_needed(cls, options: StyleOptions) -> list[str]:
        return [VGG16_MODEL]

    def _vgg(self, image: torch.Tensor) -> list[torch.Tensor]:
        if self.options.styleloss_ospace == "uniform":
            image = (image - self.mean) / self.std
        return self.vgg(image)

    def forward(self, context: LossContext) -> torch.Tensor:
        o = self.options
        canvas = context.canvas[:, :3]
        if context.index < o.styleloss_skip or context.index % o.styleloss_every:
            return canvas.new_zeros(())
        height, width = canvas.shape[-2:]
        scales = [2**k for k in range(9, -1, -1) if min(height, width) // 2**k >= MIN_SCALE_SIDE] or [1]
        total, content_weight, result = canvas.new_zeros(()), o.styleloss_content_weight, canvas
        for i, scale in enumerate(scales):
            size = (height // scale, width // scale)
            content = _resample(canvas, *size)
            style_here = self._style_at(canvas, size)
            if i == 0:
                result = _laplacian(content) + style_here.mean((2, 3), keepdim=True)
            elif i == len(scales) - 1:
                result = _resample(result, *size)
            else:
                result = _resample(result, *size) + _laplacian(content)
            factor = FINEST_FACTOR if i == len(scales) - 1 and i > 0 else COARSE_FACTOR
            total = total + factor * self._scale_loss(result, content, style_here, content_weight,
                                                      context.generator)
            content_weight /= 2
        return total

    def _style_at(self, canvas: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The style image stretched to the canvas (as Pixray), then resampled to a scale's ``size``;
        made once per canvas and scale."""
        key = (*canvas.shape[-2:], *size)
        if key not in self._styles:
            self._styles[key] = _resample(_resample(self.style.to(canvas), *canvas.shape[-2:]), *size)
        return self._styles[key]

    def _style_columns(self, style: torch.Tensor, generator: torch.Generator | None) -> _Columns:
        """The style image's hypercolumns at :data:`STYLE_SAMPLES` positions, drawn once per scale
        (Pixray draws them anew each step; their statistics barely move, and the covariance of
        2179 channels is most of the loss's cost)."""
        key = tuple(style.shape[-2:])
        if key not in self._style_columns_by_size:
            height, width = key
            device = generator.device if generator is not None else style.device
            count = STYLE_SAMPLES[0] * min(STYLE_SAMPLES[1], height * width)
            positions = torch.randint(height * width, (count,), generator=generator, device=device)
            positions = positions.to(style.device)
            with torch.no_grad():
                columns = _hypercolumns(self._vgg(style), (positions // width).float(),
                                        (positions % width).float(), bilinear=False)
            self._style_columns_by_size[key] = _Columns.of(columns)
        return self._style_columns_by_size[key]

    def _scale_loss(self, result: torch.Tensor, content: torch.Tensor, style: torch.Tensor,
                    content_weight: float, generator: torch.Generator | None) -> torch.Tensor:
        style_columns = self._style_columns(style, generator)
        result_maps, content_maps = self._vgg(result), self._vgg(content)
        height, width = content.shape[-2:]
        device = generator.device if generator is not None else content.device
        total = content.new_zeros(())
        samples = min(CANVAS_SAMPLES, height * width)
        for _ in range(DRAWS):
            rows = torch.randint(height, (samples,), generator=generator, device=device)
            cols = torch.randint(width, (samples,), generator=generator, device=device)
            rows, cols = rows.to(content.device).float(), cols.to(content.device).float()
            ours = _hypercolumns(result_maps, rows, cols, bilinear=True)
            layout = _hypercolumns(content_maps, rows, cols, bilinear=True)
            content_term = (_cosine_distances(ours.T, ours.T)
                            - _cosine_distances(layout.T, layout.T)).abs().mean()
            colours = _relaxed_emd(ours[:3], style_columns.values[:3]) / max(content_weight, 1)
            style_term = (_relaxed_emd(ours, style_columns.values)
                          + _moments(_Columns.of(ours), style_columns) + colours)
            total = total + (content_weight * content_term + style_term) / (content_weight + 2)
        return total
