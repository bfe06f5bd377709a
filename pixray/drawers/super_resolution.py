"""``super_resolution``: a small picture optimised through Real-ESRGAN x4 (Pixray's drawer).

The learnable picture is a quarter of the canvas on each side, in [0,1]; the canvas is the
network's 4x enlargement, clamped. The network is loaded by spandrel, which recognises
ESRGAN-family checkpoints from their state dicts (no network code here). The canvas is floored to
a multiple of 4, as Pixray's quarter-size picture makes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..declared_models import DeclaredModel
from ..frozen_convolution import use_frozen_convolutions
from ..options import option
from ..registry import Registry
from ..weights import CheckpointError
from .base import Drawer, network_layout
from .clamp import clamp_with_grad

if TYPE_CHECKING:
    from ..model_cache import ModelCache

SCALE = 4
#: Pixray's model names and their weight files (URLs in the weights manifest).
UPSCALERS: Registry[str] = Registry("super-resolution model", {"RealESRGAN_x4plus": "RealESRGAN_x4plus.pth"})


@dataclass(frozen=True)
class SuperResolutionOptions:
    super_resolution_model: str = option("RealESRGAN_x4plus", "The 4x super-resolution network the small "
                                                              "picture is enlarged through",
                                         choices=list(UPSCALERS))


def load_upscaler(path: str | Path) -> nn.Module:
    """A frozen 4x RGB super-resolution network from its checkpoint, through spandrel."""
    import spandrel

    try:
        descriptor = spandrel.ModelLoader().load_from_file(path)
    except Exception as exc:  # an unreadable file is the same error however it fails
        raise CheckpointError(f"{str(path)!r} is not a super-resolution checkpoint spandrel recognises: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.scale != SCALE \
            or descriptor.input_channels != 3 or descriptor.output_channels != 3:
        scale = getattr(descriptor, "scale", "?")
        raise CheckpointError(f"{str(path)!r} holds a {descriptor.architecture.name} network of scale "
                              f"{scale}; the super_resolution drawer needs a 4x RGB one")
    model = descriptor.model.eval().requires_grad_(False)
    use_frozen_convolutions(model)  # the gradient reaches only the picture: no convolution keeps its input
    return model


def shared_upscaler(options: SuperResolutionOptions, models: ModelCache) -> nn.Module:
    """The network the options name, loaded through ``models`` (once per file)."""
    return models.get_file(UPSCALERS.lookup(options.super_resolution_model), load_upscaler)


class SuperResolutionDrawer(Drawer):
    """Learns the quarter-size picture; synth = the network's enlargement, clamped to [0,1]."""

    Options = SuperResolutionOptions
    synth_in_run_precision = True  # the network in bfloat16 where that is fast

    def __init__(self, options: SuperResolutionOptions, width: int, height: int, model: nn.Module) -> None:
        columns, rows = max(1, width // SCALE), max(1, height // SCALE)
        super().__init__(options, columns * SCALE, rows * SCALE)
        self.model = model
        device = next(model.parameters()).device
        self.layout = network_layout(model, device)
        self.small = nn.Parameter(torch.full((1, 3, rows, columns), 0.5, device=device))

    @classmethod
    def create(cls, options: SuperResolutionOptions, width: int, height: int, models: ModelCache) -> Drawer:
        return cls(options, width, height, shared_upscaler(options, models))

    @classmethod
    def declared_models(cls) -> Mapping[str, DeclaredModel]:
        def loader(name: str) -> Callable[[ModelCache], nn.Module]:
            return lambda cache: shared_upscaler(SuperResolutionOptions(super_resolution_model=name), cache)

        return {name: DeclaredModel((file,), loader(name)) for name, file in UPSCALERS.items()}

    @classmethod
    def models_needed(cls, options: SuperResolutionOptions) -> list[str]:
        return [options.super_resolution_model]

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor, generator: torch.Generator) -> None:
        small = F.interpolate(image.to(self.small), size=self.small.shape[-2:], mode="bilinear",
                              align_corners=False)  # Pixray's
        self.small.copy_(small.clamp(0, 1))

    def synth(self) -> torch.Tensor:
        return clamp_with_grad(self.model(self.small.contiguous(memory_format=self.layout)).float())

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [self.small], "bounds": (0.0, 1.0)}]
