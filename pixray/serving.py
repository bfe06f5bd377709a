"""Serving predictions (what the Cog predictor delegates to): models loaded once, frames as files.

A :class:`Service` holds a :class:`~pixray.model_cache.ModelCache` for its lifetime, turns one
request's inputs into validated settings before any work starts, and streams PNG frames, each a
new file with a unique name in a per-prediction directory (files of earlier predictions are
removed when the next one starts). Environment, read once at setup:

- ``PIXRAY_WEIGHTS_DIR``: the weights directory (default ./weights);
- ``PIXRAY_SETTINGS``: a YAML settings file applied under every request's inputs;
- ``PIXRAY_PRELOAD``: space-separated CLIP/VQGAN model names to load at setup (default: what a
  request with default inputs uses);
- ``PIXRAY_DOWNLOAD``: ``0`` to never fetch missing weight files at setup (default: try);
- ``PIXRAY_OUTPUT_DIR``: where per-prediction directories go (default: a new temporary directory).

Requests cannot set what the server owns (files, device, weight locations): see :data:`SERVER_OWNED`.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .engine import Run, Step
from .model_cache import ModelCache, models_for, weight_files
from .options import SettingsError
from .output import png_metadata, run_record, save_png
from .perceptors import CLIP_MODELS
from .runtime import choose_device
from .settings import Settings, all_specs, build_settings, parse_settings_text, read_settings_file
from .weights import MANIFEST, MissingWeightsError, fetch_command, weights_dir
from .weights.download import DownloadError, download

log = logging.getLogger(__name__)

#: record(name, value): where metrics go (Cog's ``current_scope().record_metric``).
Record = Callable[[str, Any], None]

#: Settings a request may not change: where files are read and written, and the hardware.
SERVER_OWNED = ("outdir", "output", "overwrite", "save_every", "device", "precision", "weights_dir",
                "vqgan_config", "vqgan_checkpoint")


@dataclass(frozen=True)
class Request:
    """One prediction's inputs. ``settings_text`` is Pixray-style ``name: value`` YAML."""

    prompts: str
    drawer: str
    quality: str
    aspect: str
    iterations: int | None = None
    seed: int | None = None
    display_every: int = 10
    init_image: Path | None = None
    settings_text: str = ""


def input_field(name: str) -> dict[str, Any]:
    """Description, default and bounds/choices of setting ``name``, as Cog ``Input`` arguments."""
    spec = all_specs()[name]
    field: dict[str, Any] = {"description": spec.help, "default": spec.default}
    if spec.choices is not None:
        field["choices"] = list(spec.choices)
    if spec.minimum is not None:
        field["ge"] = spec.minimum
    if spec.maximum is not None:
        field["le"] = spec.maximum
    return field


class Service:
    """Models on one device plus the per-prediction file handling of a server."""

    def __init__(self, models: ModelCache, base: Mapping[str, Any], workdir: Path) -> None:
        self.models = models
        self.base = dict(base)
        self.workdir = workdir
        self.predictions = 0
        self._directories: list[Path] = []  # only directories this service made are ever deleted

    @classmethod
    def from_environment(cls) -> Service:
        """Set up from ``PIXRAY_*`` variables (see the module docstring) and preload models."""
        settings_file = os.environ.get("PIXRAY_SETTINGS")
        base = read_settings_file(settings_file) if settings_file else {}
        defaults = build_settings(base)
        models = ModelCache(choose_device(defaults.device), weights_dir(defaults.weights_dir))
        names = os.environ.get("PIXRAY_PRELOAD", "").split() or models_for(defaults)
        fetch_missing(names, models.weights_dir, allow=os.environ.get("PIXRAY_DOWNLOAD", "1") != "0")
        models.preload(names)
        output_dir = os.environ.get("PIXRAY_OUTPUT_DIR")
        if output_dir:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="pixray-predictions-", dir=output_dir))
        return cls(models, base, workdir)

    def settings_for(self, request: Request) -> Settings:
        """Validated settings: base < ``settings_text`` < the explicit inputs. Raises SettingsError."""
        text = parse_settings_text(request.settings_text, origin="input 'settings'")
        owned = [key for key in text if key in SERVER_OWNED]
        if owned:
            raise SettingsError(f"input 'settings': {', '.join(map(repr, owned))} is set by the server, not "
                                f"per request; every other setting is allowed (server-owned: "
                                f"{', '.join(SERVER_OWNED)})")
        explicit = {"prompts": request.prompts, "drawer": request.drawer, "quality": request.quality,
                    "aspect": request.aspect, "display_every": request.display_every}
        optional = {"iterations": request.iterations, "seed": request.seed,
                    "init_image": str(request.init_image) if request.init_image else None}
        explicit.update({k: v for k, v in optional.items() if v is not None})
        settings = build_settings(self.base, text, explicit)
        paths = [name for name in settings.clip_models or () if name not in CLIP_MODELS]
        if paths and "clip_models" in text:
            raise SettingsError(f"input 'settings': clip_models {paths} are not model names; a request "
                                f"may name these: {', '.join(CLIP_MODELS)}")
        return settings

    def frames(self, request: Request, record: Record) -> Iterator[Path]:
        """Validate, then run, yielding a PNG every ``display_every`` steps and always the final one."""
        settings = self.settings_for(request)
        run = Run(settings, models=self.models)  # also validates (prompts, init image, model files)
        directory = self._fresh_directory()
        metadata = run_record(run)
        record("model_loads", self.models.loads)
        started, done, loss = time.perf_counter(), 0, None
        every = settings.display_every
        try:
            for step in run:
                if step.is_final or (every and step.index % every == 0):
                    yield self._write(step, metadata, directory)
                if not step.is_final:
                    done = step.index + 1
                loss = step.losses.get("total")
            seconds = time.perf_counter() - started
            record("iterations", done)
            record("seconds_per_iteration", round(seconds / max(done, 1), 4))
            if loss is not None:
                record("final_loss", round(float(loss), 6))
        finally:
            del run
            release_memory()

    def _fresh_directory(self) -> Path:
        """A new directory for this prediction; earlier predictions' files are deleted (Cog has
        uploaded or encoded them by the time the next prediction starts)."""
        while self._directories:
            shutil.rmtree(self._directories.pop(), ignore_errors=True)
        self.predictions += 1
        directory = self.workdir / f"p{self.predictions:04d}-{uuid.uuid4().hex[:8]}"
        directory.mkdir()
        self._directories.append(directory)
        return directory

    @staticmethod
    def _write(step: Step, metadata: dict[str, Any], directory: Path) -> Path:
        # The basename is the upload key in Cog: unique per prediction and per frame.
        path = directory / f"{directory.name}-{step.index:05d}.png"
        save_png(step.pil(), path, png_metadata(metadata, metadata["seed"], step.index))
        return path


def fetch_missing(names: list[str], directory: Path, allow: bool) -> None:
    """Download the weight files of ``names`` that are absent; raise naming any still missing."""
    for name in names:
        for filename in weight_files(name):
            if (directory / filename).is_file():
                continue
            if allow:
                try:
                    download(MANIFEST[filename], directory)
                    continue
                except DownloadError as exc:
                    log.warning("%s", exc)
            raise MissingWeightsError(
                f"weight file {filename!r} (for {name}) is missing from {str(directory.resolve())!r} and "
                f"could not be downloaded; fetch it with `{fetch_command(name)} --dir {directory}` "
                f"or copy it there")


def release_memory() -> None:
    """Return cached allocator memory so the next prediction starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__ = ["SERVER_OWNED", "Request", "Service", "fetch_missing", "input_field"]
