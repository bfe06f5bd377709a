"""Loading perceptors by name or path, once, and keeping them for later runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ..options import SettingsError
from ..registry import unknown_name_message
from ..weights import PACKAGED_WEIGHTS, find_weight_file
from .catalog import CLIP_MODELS
from .checkpoint import load_clip_checkpoint
from .perceptor import Perceptor

log = logging.getLogger(__name__)

def checkpoint_path(name: str, weights_dir: Path) -> Path:
    """The file holding CLIP model ``name``: a catalog name or a path to a checkpoint."""
    if name in CLIP_MODELS:
        entry = CLIP_MODELS[name]
        directory = PACKAGED_WEIGHTS if entry.packaged else weights_dir
        return find_weight_file(entry.filename, directory)
    path = Path(name).expanduser()
    if path.is_file():
        return path
    raise SettingsError(unknown_name_message("CLIP model", name, list(CLIP_MODELS)) +
                        "; or give the path of an existing checkpoint file")


class PerceptorCache:
    """Perceptors loaded on one device, kept for reuse across runs (a Cog predictor holds one).

    >>> cache = PerceptorCache(torch.device("cpu"), Path("weights"))  # doctest: +SKIP
    >>> cache.get(["ViT-B/32"])                                       # doctest: +SKIP
    """

    def __init__(self, device: torch.device, weights_dir: Path) -> None:
        self.device = device
        self.weights_dir = weights_dir
        self._loaded: dict[str, Perceptor] = {}
        self.loads = 0  # number of files read; observable proof that models are not reloaded

    def get(self, names: Sequence[str]) -> list[Perceptor]:
        """The perceptors called ``names``, loading those not yet loaded."""
        return [self._loaded.get(name) or self._load(name) for name in names]

    def _load(self, name: str) -> Perceptor:
        path = checkpoint_path(name, self.weights_dir)
        log.info("loading CLIP model %s from %s", name, path)
        perceptor = Perceptor(name, load_clip_checkpoint(path)).to(self.device)
        self._loaded[name] = perceptor
        self.loads += 1
        return perceptor
