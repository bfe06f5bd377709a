"""Models loaded once on one device and kept across runs: CLIP perceptors and drawer models.

A Cog predictor holds one :class:`ModelCache` for its lifetime; the CLI and ``pixray.generate``
make one per run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from .drawers.vqgan import VQGAN_MODELS, shared_model
from .options import SettingsError
from .perceptors import CLIP_MODELS, Perceptor, checkpoint_path, load_clip_checkpoint
from .registry import unknown_name_message
from .settings import Settings, build_settings, clip_models_of
from .weights import MANIFEST

log = logging.getLogger(__name__)
M = TypeVar("M", bound=nn.Module)


class ModelCache:
    """Loaded models by key, on ``device``; ``loads`` counts files actually read (proof of reuse).

    >>> cache = ModelCache(torch.device("cpu"), Path("weights"))  # doctest: +SKIP
    >>> cache.perceptors(["ViT-B/32"])                              # doctest: +SKIP
    """

    def __init__(self, device: torch.device, weights_dir: Path) -> None:
        self.device = device
        self.weights_dir = weights_dir
        self._loaded: dict[str, nn.Module] = {}
        self.loads = 0

    def get(self, key: str, load: Callable[[], M]) -> M:
        """The model stored under ``key``, calling ``load`` (and moving it to the device) the first time."""
        if key not in self._loaded:
            log.info("loading %s", key)
            self._loaded[key] = load().to(self.device)
            self.loads += 1
        return self._loaded[key]  # type: ignore[return-value]

    def perceptors(self, names: Sequence[str]) -> list[Perceptor]:
        """The CLIP perceptors called ``names`` (catalog names or checkpoint paths)."""
        return [self.get(f"clip:{name}", lambda name=name: self._load_clip(name)) for name in names]

    def _load_clip(self, name: str) -> Perceptor:
        return Perceptor(name, load_clip_checkpoint(checkpoint_path(name, self.weights_dir)))

    def preload(self, names: Sequence[str]) -> None:
        """Load CLIP models and VQGAN models by name (what a server does before its first request)."""
        for name in names:
            if name in VQGAN_MODELS:
                shared_model(build_settings({"vqgan_model": name}).section("vqgan"), self)
            else:
                self.perceptors([name])


def models_for(settings: Settings | None = None) -> list[str]:
    """Names of the CLIP and VQGAN models a run with ``settings`` (default: the defaults) loads."""
    settings = settings or build_settings({})
    names = list(clip_models_of(settings))
    if settings.drawer == "vqgan" and not settings.section("vqgan").vqgan_config:
        names.append(settings.section("vqgan").vqgan_model)
    return names


def weight_files(name: str) -> list[str]:
    """Files to download for a CLIP model name, a VQGAN model name, a manifest file name, or the
    path of a CLIP checkpoint (none for those, and for the CLIPs that ship inside the package)."""
    if name in CLIP_MODELS:
        return [] if CLIP_MODELS[name].packaged else [CLIP_MODELS[name].filename]
    if name in VQGAN_MODELS:
        return [VQGAN_MODELS[name].config, VQGAN_MODELS[name].checkpoint]
    if name in MANIFEST:
        return [name]
    if Path(name).expanduser().is_file():
        return []  # a CLIP checkpoint by path (a server owner's fine-tuned model): nothing to fetch
    raise SettingsError(unknown_name_message("model or weight file", name,
                                          [*CLIP_MODELS, *VQGAN_MODELS, *MANIFEST]))
