"""``vqgan``: the image is a VQGAN latent, quantised to the codebook and decoded (VQGAN+CLIP).

The decoder stays frozen; only the latent grid (embed_dim, H/f, W/f) learns. The canvas is floored
to a multiple of the model's downsampling factor f (16 for every model Pixray lists), as in Pixray:
384x216 becomes 384x208.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..declared_models import DeclaredModel
from ..options import SettingsError, option
from ..registry import Registry
from ..weights import WEIGHTS_ENV, MissingWeightsError, fetch_command, find_weight_file
from .base import Drawer, network_layout
from .clamp import clamp_with_grad
from .vqgan_model import VQGAN, load_vqgan, quantise

if TYPE_CHECKING:
    from ..model_cache import ModelCache


@dataclass(frozen=True)
class VqganFiles:
    """The taming config and Lightning checkpoint of a named model, in the weights directory."""

    config: str
    checkpoint: str


def _files(name: str) -> VqganFiles:
    return VqganFiles(f"vqgan_{name}.yaml", f"vqgan_{name}.ckpt")


# Pixray's model names; the files and their URLs are in the weights manifest.
VQGAN_MODELS: Registry[VqganFiles] = Registry("VQGAN model", {name: _files(name) for name in [
    "imagenet_f16_16384", "imagenet_f16_1024", "openimages_f16_8192", "coco", "faceshq", "sflckr",
    "wikiart_1024", "wikiart_16384"]})


#: Pixray's names for its mirror hosts' copies of a model (``m``: mirror): here the model itself, whose
#: download tries every host the manifest lists.
PIXRAY_MIRROR_NAMES = {"imagenet_f16_16384m": "imagenet_f16_16384", "wikiart_1024m": "wikiart_1024",
                       "wikiart_16384m": "wikiart_16384", "wikiart_16384m2": "wikiart_16384"}


def _model_name(value: object) -> object:
    return PIXRAY_MIRROR_NAMES.get(value, value) if isinstance(value, str) else value


@dataclass(frozen=True)
class VqganOptions:
    vqgan_model: str = option("imagenet_f16_16384", "VQGAN model (its .yaml and .ckpt in the weights "
                              "directory; Pixray's mirror names such as imagenet_f16_16384m read as "
                              "the model)", choices=list(VQGAN_MODELS), parse=_model_name)
    vqgan_config: str | None = option(None, "A custom taming config .yaml (with vqgan_checkpoint); "
                                      "overrides vqgan_model",
                                      names_file=True)
    vqgan_checkpoint: str | None = option(None, "A custom Lightning .ckpt (with vqgan_config)",
                                          names_file=True)


def model_files(options: VqganOptions, weights_dir: Path) -> tuple[Path, Path]:
    """(config, checkpoint) paths for the options: the custom pair if given, else the named model's."""
    custom = options.vqgan_config, options.vqgan_checkpoint
    if any(custom):
        if not all(custom):
            raise SettingsError("settings 'vqgan_config' and 'vqgan_checkpoint' go together: give both "
                                "paths, or neither and pick a vqgan_model")
        paths = tuple(Path(p).expanduser() for p in custom)
        for key, path in zip(("vqgan_config", "vqgan_checkpoint"), paths, strict=True):
            if not path.is_file():
                raise SettingsError(f"setting {key!r}: {str(path)!r} is not a file")
        return paths
    name = options.vqgan_model
    files = VQGAN_MODELS.lookup(name)
    missing = [f for f in (files.config, files.checkpoint) if not (weights_dir / f).is_file()]
    if missing:
        raise MissingWeightsError(
            f"VQGAN model {name!r} needs {' and '.join(missing)} in {str(weights_dir.resolve())!r}: "
            f"fetch them with `{fetch_command(name)} --dir {weights_dir}`, or point "
            f"the weights_dir setting or ${WEIGHTS_ENV} at a directory holding them", missing)
    return find_weight_file(files.config, weights_dir), find_weight_file(files.checkpoint, weights_dir)


def shared_model(options: VqganOptions, models: ModelCache) -> VQGAN:
    """The VQGAN the options name, loaded through ``models`` (once per checkpoint file)."""
    config, checkpoint = model_files(options, models.weights_dir)
    return models.get(f"vqgan:{checkpoint.resolve()}", lambda: load_vqgan(config, checkpoint))


class VqganDrawer(Drawer):
    """Learns a latent grid; synth = decode(nearest codes, straight-through) mapped to [0,1]."""

    Options = VqganOptions
    synth_in_run_precision = True  # the decoder in bfloat16 where that is fast (quantise stays float32)

    def __init__(self, options: VqganOptions, width: int, height: int, model: VQGAN) -> None:
        f = model.factor
        columns, rows = max(1, width // f), max(1, height // f)
        super().__init__(options, columns * f, rows * f)
        self.model = model
        self.layout = network_layout(model, model.codebook.device)
        codebook = model.codebook
        self.latent = nn.Parameter(torch.zeros(1, codebook.shape[1], rows, columns, device=codebook.device))
        self.register_buffer("low", codebook.min(0).values[None, :, None, None], persistent=False)
        self.register_buffer("high", codebook.max(0).values[None, :, None, None], persistent=False)

    @classmethod
    def create(cls, options: VqganOptions, width: int, height: int, models: ModelCache) -> Drawer:
        return cls(options, width, height, shared_model(options, models))

    @classmethod
    def declared_models(cls) -> Mapping[str, DeclaredModel]:
        def loader(name: str) -> Callable[[ModelCache], VQGAN]:
            return lambda cache: shared_model(VqganOptions(vqgan_model=name), cache)

        return {name: DeclaredModel((files.config, files.checkpoint), loader(name))
                for name, files in VQGAN_MODELS.items()}

    @classmethod
    def models_needed(cls, options: VqganOptions) -> list[str]:
        return [] if options.vqgan_config else [options.vqgan_model]

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor, generator: torch.Generator) -> None:
        self.latent.copy_(self.model.encode(image.to(self.latent) * 2 - 1))

    def synth(self) -> torch.Tensor:
        codes = quantise(self.latent, self.model.codebook)
        decoded = self.model.decode(codes.contiguous(memory_format=self.layout))
        return clamp_with_grad((decoded.float() + 1) / 2)

    def param_groups(self) -> list[dict[str, Any]]:
        # The codebook's per-channel range: a latent beyond it only moves further from every code.
        return [{"params": [self.latent], "bounds": (self.low, self.high)}]
