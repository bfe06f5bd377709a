"""``vdiff``: CLIP-guided v-objective diffusion (Katherine Crowson's v-diffusion models; Pixray's drawer).

The learnable state is the sampler's noisy image ``x`` at the current timestep. Each step the model
predicts the clean image from it (``pred = x·α - v·σ``, v the predicted velocity); that prediction,
clamped to [0,1] and centre-cropped to the canvas, is the step's image, and the perceptors' losses
move ``x`` through it. After the update the sampler takes one DDIM step (eta 1: fresh noise) to the
next timestep, and the optimiser starts afresh at Pixray's rate ``min(σ/α · 0.001, 0.01)``. So a run
of N iterations is an N-step sampling whose every step is steered by CLIP, and the last step's
prediction is the picture.

Timesteps: ``vdiff_skip`` percent of the way in, N + 1 of them spaced evenly down to 0 (exclusive)
and mapped through ``vdiff_schedule`` (the spliced DDPM/cosine schedule, or log-SNR spaced), as
Pixray. The network is the v-diffusion-pytorch package's definition; the working canvas is the
canvas rounded up to the network's multiple (its number of halvings) and the image is cropped
from its centre. cc12m models are also conditioned on the perceptor ViT-B/16's embedding of the
prompts (their weighted sum, normalised); ``cc12m_1_cfg`` mixes in its unconditional prediction by
``vdiff_guidance`` (classifier-free guidance; 1 is the conditional model alone, Pixray's use).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..declared_models import DeclaredModel
from ..errors import SettingsError
from ..frozen_convolution import use_frozen_convolutions
from ..options import option
from ..registry import Registry
from ..weights import CheckpointError
from ..weights.torch_file import read_torch_file
from ..weights.without_storage import built_without_storage, unloaded
from .base import Drawer
from .clamp import clamp_with_grad

if TYPE_CHECKING:
    from ..model_cache import ModelCache


@dataclass(frozen=True)
class VdiffModel:
    """One v-diffusion network: its weight file, the multiple its sides must be (2 to the number
    of times the U-Net halves them), and the perceptor whose embedding of the prompts it is
    conditioned on (its ``clip_model``), if any."""

    file: str
    multiple: int
    conditioning: str | None = None


#: Pixray's model names (the v-diffusion-pytorch package's), their files in the weights manifest.
VDIFF_MODELS: Registry[VdiffModel] = Registry("vdiff model", {
    "yfcc_2": VdiffModel("vdiff_yfcc_2.pth", 128),
    "yfcc_1": VdiffModel("vdiff_yfcc_1.pth", 128),
    "cc12m_1": VdiffModel("vdiff_cc12m_1.pth", 64, "ViT-B/16"),
    "cc12m_1_cfg": VdiffModel("vdiff_cc12m_1_cfg.pth", 64, "ViT-B/16"),
    "danbooru_128": VdiffModel("vdiff_danbooru_128.pth", 32),
    "imagenet_128": VdiffModel("vdiff_imagenet_128.pth", 32),
    "wikiart_128": VdiffModel("vdiff_wikiart_128.pth", 32),
    "wikiart_256": VdiffModel("vdiff_wikiart_256.pth", 64),
})
#: The model with classifier-free guidance (trained also with a zero embedding for "no prompt").
GUIDED = "cc12m_1_cfg"
ETA = 1.0  # Pixray's: DDPM-like, fresh noise each step


@dataclass(frozen=True)
class VdiffOptions:
    vdiff_model: str = option("yfcc_2", "The v-diffusion model; cc12m ones also read the prompts "
                                        "through ViT-B/16, which must be among clip_models",
                              choices=list(VDIFF_MODELS))
    vdiff_schedule: str = option("default", "Noise schedule: default (spliced DDPM/cosine) or log "
                                            "(evenly spaced log signal-to-noise)", choices=["default", "log"])
    vdiff_skip: float = option(0.0, "Start this percentage of the way into the schedule (less noise: more "
                                    "of the init image stays)", minimum=0, maximum=99)
    vdiff_guidance: float = option(1.0, "cc12m_1_cfg only: classifier-free guidance scale (1: the "
                                        "conditional model alone, as Pixray; higher follows the prompts "
                                        "more closely)", minimum=0, maximum=20)


def _architecture(name: str) -> Callable[[], nn.Module]:
    from diffusion import get_model  # v-diffusion-pytorch, imported only when a vdiff model loads

    return get_model(name)


def load_vdiff(name: str, path: str | Path) -> nn.Module:
    """The frozen network ``name`` (a v-diffusion-pytorch model) with the weights in ``path`` (its
    state dict, as the v-diffusion releases are), on the CPU in float32.

    The network is built without storage and takes the file's tensors, so a 968M-parameter model
    costs its file's memory once and no random initialisation.
    """
    state = read_torch_file(Path(path))
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{str(path)!r} is not a v-diffusion checkpoint (a state dict of tensors)")
    model = built_without_storage(_architecture(name))
    try:
        model.load_state_dict(state, assign=True)
    except RuntimeError as exc:  # missing, unexpected or misshapen keys
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise CheckpointError(f"{str(path)!r} does not hold the {name} network's weights: {first}") from None
    if left := unloaded(model):
        raise CheckpointError(f"{str(path)!r} leaves {name}'s {left[0]} unset")
    use_frozen_convolutions(model)  # the gradient reaches only the image: no convolution keeps its input
    return model.float().eval().requires_grad_(False)


def shared_vdiff(name: str, models: ModelCache) -> nn.Module:
    """The network ``name``, loaded through ``models`` once per file (half precision on CUDA, as Pixray)."""
    def load(path: Path) -> nn.Module:
        model = load_vdiff(name, path)
        # Halved before it moves: the GPU never holds the float32 copy (3.9 GB for yfcc_2).
        return (model.half() if models.device.type == "cuda" else model).to(models.device)

    return models.get_file(VDIFF_MODELS.lookup(name).file, load)


def _spliced_or_log(schedule: str) -> Callable[[torch.Tensor], torch.Tensor]:
    from diffusion import utils

    return utils.get_log_schedule if schedule == "log" else utils.get_spliced_ddpm_cosine_schedule


def _round_up(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


class VdiffDrawer(Drawer):
    """Learns the sampler's noisy image; synth = the model's prediction of the clean image."""

    Options = VdiffOptions
    encodes_images = False
    image_encoding_refusal = "starts from random noise and redraws it at every timestep"
    follows_schedule = True

    def __init__(self, options: VdiffOptions, width: int, height: int, model: nn.Module) -> None:
        super().__init__(options, width, height)
        self.model = model
        spec = VDIFF_MODELS.lookup(options.vdiff_model)
        self.work_height, self.work_width = _round_up(height, spec.multiple), _round_up(width, spec.multiple)
        # Where the canvas sits in the working canvas: its middle.
        self._canvas = (slice((self.work_height - height) // 2, (self.work_height - height) // 2 + height),
                        slice((self.work_width - width) // 2, (self.work_width - width) // 2 + width))
        device = next(model.parameters()).device
        self.x = nn.Parameter(torch.zeros(1, 3, self.work_height, self.work_width, device=device))
        #: The perceptor whose embedding of the prompts conditions the model (cc12m), else None.
        self.conditioning = spec.conditioning
        self.register_buffer("clip_embed", None)
        self.index = 0
        self._steps = torch.ones(1, device=device)  # timesteps, set by start_run
        self._rates: list[float] = []
        self._generator: torch.Generator | None = None
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # pred and v of the last synth

    @classmethod
    def create(cls, options: VdiffOptions, width: int, height: int, models: ModelCache) -> Drawer:
        if options.vdiff_guidance != 1 and options.vdiff_model != GUIDED:  # before loading anything
            raise SettingsError(f"setting 'vdiff_guidance' ({options.vdiff_guidance:g}) needs vdiff_model "
                                f"{GUIDED!r}, the one trained for classifier-free guidance; "
                                f"{options.vdiff_model!r} takes only 1")
        return cls(options, width, height, shared_vdiff(options.vdiff_model, models))

    @classmethod
    def declared_models(cls) -> Mapping[str, DeclaredModel]:
        def loader(name: str) -> Callable[[ModelCache], nn.Module]:
            return lambda cache: shared_vdiff(name, cache)

        return {name: DeclaredModel((spec.file,), loader(name)) for name, spec in VDIFF_MODELS.items()}

    @classmethod
    def models_needed(cls, options: VdiffOptions) -> list[str]:
        return [options.vdiff_model]

    def learning_rate(self, from_image: bool = False) -> float:
        return 0.01 if from_image else 0.2  # Pixray's, until end_step sets the schedule's

    @classmethod
    def check_perceptors(cls, options: VdiffOptions, names: Sequence[str]) -> None:
        needed = VDIFF_MODELS.lookup(options.vdiff_model).conditioning
        if needed is not None and needed not in names:
            raise SettingsError(f"vdiff_model {options.vdiff_model!r} is conditioned on {needed}'s embedding "
                                f"of the prompts: add {needed} to clip_models (now {', '.join(names)})")

    def condition(self, prompts: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Conditioned models take the normalised weighted sum of their perceptor's prompt embeddings
        ((N,D), weights (N,)); without prompts on the whole canvas, the zero embedding (no prompt)."""
        if self.conditioning is None:
            return
        embeds, weights = prompts[self.conditioning]
        total = (embeds.float() * weights.float()[:, None]).sum(0, keepdim=True)
        width = embeds.shape[-1]
        self.clip_embed = (F.normalize(total, dim=-1) if len(embeds)
                           else torch.zeros(1, width, device=self.x.device))

    def start_run(self, iterations: int) -> None:
        """The run's timesteps: ``iterations`` + 1 of them (the last for the final image)."""
        top = 1 - self.options.vdiff_skip / 100
        t = torch.linspace(top, 0, iterations + 2, device=self.x.device)[:-1]
        self._steps = _spliced_or_log(self.options.vdiff_schedule)(t)
        # Pixray's rate rule, on the host once, so that no step waits for the device to read it; in float64
        # there only, as Apple's mps devices have no float64.
        steps = self._steps.cpu().double() * math.pi / 2
        self._rates = (steps.sin() / steps.cos().clamp(min=1e-12) * 0.001).clamp(max=0.01).tolist()
        self.index = 0
        self._last = None

    def _alpha_sigma(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = self._steps[index]
        return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor, generator: torch.Generator) -> None:
        """``image`` (1,3,H,W) in [0,1] (the init image, or the init noise) placed in the middle of the
        working canvas (grey around it) and noised to the first timestep."""
        self._generator = generator
        start = torch.zeros_like(self.x)
        start[:, :, self._canvas[0], self._canvas[1]] = image.to(start) * 2 - 1
        alpha, sigma = self._alpha_sigma(0)
        noise = torch.randn(start.shape, generator=generator, device=start.device)
        self.x.copy_(start * alpha + noise * sigma)

    def _velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The model's v for ``x`` (1,3,h,w) at timestep ``t``, float32; with guidance, mixed with
        the unconditional prediction."""
        ts = t.reshape(1)
        extra: dict[str, torch.Tensor] = {}
        guidance = self.options.vdiff_guidance
        if self.clip_embed is not None:
            extra["clip_embed"] = self.clip_embed
            if guidance != 1:
                x = x.expand(2, -1, -1, -1)
                ts = ts.expand(2)
                extra["clip_embed"] = torch.cat([torch.zeros_like(self.clip_embed), self.clip_embed])
        dtype = next(self.model.parameters()).dtype
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32):
            v = self.model(x, ts, **extra).float()
        if len(v) == 2:
            v = v[:1] * (1 - guidance) + v[1:] * guidance
        return v

    def synth(self) -> torch.Tensor:
        index = min(self.index, len(self._steps) - 1)
        alpha, sigma = self._alpha_sigma(index)
        v = self._velocity(self.x, self._steps[index])
        pred = self.x * alpha - v * sigma
        self._last = (pred.detach(), v.detach())
        return clamp_with_grad(pred[:, :, self._canvas[0], self._canvas[1]].add(1).div(2))

    @torch.no_grad()
    def end_step(self, index: int) -> float | None:
        """After step ``index``'s update: from the second step on, one DDIM step (eta 1) from the
        step's prediction to the next timestep, and Pixray's rate for the fresh optimiser."""
        self.index = index + 1
        if index == 0 or self._last is None:  # Pixray's first update moves no timestep
            return None
        pred, v = self._last
        alpha, sigma = self._alpha_sigma(index)
        next_alpha, next_sigma = self._alpha_sigma(index + 1)
        eps = self.x * sigma + v * alpha
        ddim_sigma = (ETA * (next_sigma**2 / sigma**2).sqrt()
                      * (1 - alpha**2 / next_alpha**2).clamp(min=0).sqrt())
        adjusted = (next_sigma**2 - ddim_sigma**2).clamp(min=0).sqrt()
        noise = torch.randn(self.x.shape, generator=self._generator, device=self.x.device)
        self.x.copy_(pred * next_alpha + eps * adjusted + noise * ddim_sigma)
        return self._rates[index]

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [self.x]}]
