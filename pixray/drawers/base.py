"""What every drawer is: an ``nn.Module`` whose parameters render an image."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..declared_models import DeclaresModels

if TYPE_CHECKING:
    from ..model_cache import ModelCache


@dataclass(frozen=True)
class VectorImage:
    """A drawer's state at one step, to be written as a vector file when someone asks.

    ``state`` holds detached copies of the parameters taken when the step's image was rendered,
    so later updates do not change it; ``write`` turns such a state into SVG text.
    """

    state: Mapping[str, torch.Tensor]
    write: Callable[[Mapping[str, torch.Tensor]], str]

    def svg(self) -> str:
        """The SVG document of this state."""
        return self.write(self.state)


def network_layout(model: nn.Module, device: torch.device) -> torch.memory_format:
    """The memory layout a drawer's convolutional network computes in on ``device``: channels-last on
    the CPU, whose convolutions run faster so (docs/performance.md has the figures), after switching
    ``model``'s weights to it in place (their values are the same, so a shared network can change); elsewhere
    torch's default. A drawer lays its network's input out so too (``x.contiguous(memory_format=...)``)."""
    if device.type != "cpu":
        return torch.contiguous_format
    model.to(memory_format=torch.channels_last)
    return torch.channels_last


class Drawer(DeclaresModels, nn.Module):
    """Learnable parameters plus a differentiable renderer.

    Subclasses set ``Options`` (a settings dataclass: the drawer's section of the settings tree)
    and implement :meth:`init_from_image` and :meth:`synth`; bounded parameters and per-group
    rates are declared in :meth:`param_groups`. Drawers whose state is a vector picture implement
    :meth:`svg` (see :meth:`vector_image`).
    """

    Options: ClassVar[type]
    #: Step size used when the ``learning_rate`` setting is unset.
    default_learning_rate: ClassVar[float] = 0.2
    #: Whether :meth:`init_from_image` sets the parameters from the image alone (no randomness), so
    #: that an image can be redrawn onto the drawer mid-run (overlays) and read as a point in its
    #: parameter space (image labels). Stroke drawers, which place strokes at random, do not.
    encodes_images: ClassVar[bool] = True
    #: Why a drawer that does not :attr:`encodes_images` cannot, for the settings error that says so.
    image_encoding_refusal: ClassVar[str] = "does not take its parameters from an image"
    #: Whether the drawer's state moves along a fixed schedule of the run's iterations (a diffusion
    #: sampler's timesteps, see :meth:`start_run` and :meth:`end_step`): its learning rate follows
    #: that schedule (``learning_rate_drops`` do not apply) and a run cannot end early (``auto_stop``).
    follows_schedule: ClassVar[bool] = False
    #: Whether :meth:`synth` may compute in the run's precision when that is bfloat16 (under autocast,
    #: as the perceptors do): for a network renderer whose picture tolerates it (the engine turns the
    #: image back to float32). Pixel and vector renderers, which are cheap, stay float32.
    synth_in_run_precision: ClassVar[bool] = False

    def __init__(self, options: Any, width: int, height: int) -> None:
        super().__init__()
        self.options = options
        self.width = width
        self.height = height

    @classmethod
    def create(cls, options: Any, width: int, height: int, models: ModelCache) -> Drawer:
        """A drawer for a ``width`` x ``height`` canvas; drawers with models load them via ``models``.

        The drawer may round the canvas (see its ``width`` and ``height``).
        """
        return cls(options, width, height)

    def learning_rate(self, from_image: bool = False) -> float:
        """Step size used when the ``learning_rate`` setting is unset; ``from_image``: the run starts
        from an init image."""
        return self.default_learning_rate

    def start_run(self, iterations: int) -> None:
        """Called before :meth:`init_from_image` with the number of steps the run will take."""

    def end_step(self, index: int) -> float | None:
        """Called after step ``index``'s update (and :meth:`clamp_`). A drawer whose state moves on
        its own (a sampler stepping to its next timestep) does so here; a rate returned asks for a
        fresh optimiser at that step size from the next step on."""
        return None

    @classmethod
    def check_perceptors(cls, options: Any, names: Sequence[str]) -> None:
        """Raise :class:`SettingsError` when a drawer with ``options`` needs a perceptor the run
        lacks (``names``); checked before any model loads."""

    def condition(self, prompts: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Take the prompts on the whole canvas, once per run before the first step: per perceptor
        name, their embeddings (N,D) and weights (N,) (for drawers whose model reads them)."""

    def init_from_image(self, image: torch.Tensor, generator: torch.Generator) -> None:
        """Set the parameters so that :meth:`synth` approximates ``image`` (1,3,H,W) in [0,1] (or
        starts from it: a stroke drawer places strokes at random and takes their colours from it).

        Any randomness comes from ``generator`` (the run's, on the drawer's device), so a seed
        always gives the same start.
        """
        raise NotImplementedError

    @torch.no_grad()
    def reapply_image(self, image: torch.Tensor) -> None:
        """Set the parameters from ``image`` (1,3,H,W) in [0,1] in the middle of a run, in place
        (the optimiser keeps its state), for drawers that :attr:`encodes_images`."""
        if not self.encodes_images:
            raise NotImplementedError(f"{type(self).__name__} cannot take its parameters from an image")
        self.init_from_image(image, torch.Generator(image.device))

    @torch.no_grad()
    def parameter_vector_for(self, image: torch.Tensor) -> torch.Tensor:
        """The parameters (flattened, (P,), as :meth:`parameter_vector`) that :meth:`reapply_image`
        would set for ``image``; the drawer's own state is left as it was."""
        params = self.trainable()
        saved = [p.detach().clone() for p in params]
        self.reapply_image(image)
        vector = self.parameter_vector().detach().clone()
        for p, value in zip(params, saved, strict=True):
            p.copy_(value)
        return vector

    def parameter_vector(self) -> torch.Tensor:
        """Every trainable parameter, flattened into one (P,) vector (differentiable)."""
        return torch.cat([p.flatten() for p in self.trainable()])

    def trainable(self) -> list[torch.Tensor]:
        """The parameters the optimiser moves, in :meth:`param_groups` order."""
        return [p for group in self.param_groups() for p in group["params"]]

    def synth(self) -> torch.Tensor:
        """The current image, (1,3,height,width) in [0,1], differentiable w.r.t. the parameters."""
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: the trainable parameters; for those confined to a box
        its ``bounds`` (low, high), numbers or tensors that broadcast against them; and for those
        stepping at another pace than the run's rate, ``lr_scale`` (the group's rate is the run's
        times this, so ``learning_rate`` scales every group).

        :meth:`clamp_` keeps the parameters inside their bounds; ``optimiser: NGD`` also steps only
        along the directions that can move (see optimisers.py).
        """
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]  # not frozen decoders

    @torch.no_grad()
    def clamp_(self) -> None:
        """Pull the parameters back into their bounds after an optimiser step."""
        for group in self.param_groups():
            if "bounds" in group:
                low, high = group["bounds"]
                for p in group["params"]:
                    p.clamp_(low, high)

    def svg(self, state: Mapping[str, torch.Tensor]) -> str:
        """The SVG document of ``state`` (a :meth:`vector_image` snapshot), for vector drawers."""
        raise NotImplementedError(f"{type(self).__name__} draws no vector picture")

    def vector_image(self) -> VectorImage | None:
        """A snapshot of the current state as a vector picture, or None for raster drawers.

        Drawers that implement :meth:`svg` get one holding a detached copy of their parameters.
        """
        if type(self).svg is Drawer.svg:
            return None
        state = {name: value.detach().clone() for name, value in self.state_dict().items()}
        return VectorImage(state, self.svg)
