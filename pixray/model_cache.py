"""Models loaded once on one device and kept across runs: CLIP perceptors and the parts' models.

A Cog predictor holds one :class:`ModelCache` for its lifetime; the CLI and ``pixray.generate``
make one per run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from .declared_models import DeclaredModel
from .errors import MissingWeightsError
from .options import SettingsError
from .perceptors import CLIP_MODELS, Perceptor, checkpoint_path, load_clip_checkpoint, load_pretrained_clip
from .registry import unknown_name_message
from .runtime import choose_device, usable_memory
from .settings import SECTION_KINDS, Settings, build_settings, clip_models_of, parts_in_use
from .weights import MANIFEST, WEIGHTS_ENV, fetch_command, find_weight_file
from .weights import weights_dir as weights_dir_of
from .weights.download import CannotWriteError, DownloadError, Progress, download

log = logging.getLogger(__name__)
M = TypeVar("M", bound=nn.Module)
T = TypeVar("T")


class ModelCache:
    """Loaded models by key, on ``device``; ``loads`` counts files actually read (proof of reuse).

    ``memory``: a budget in bytes for the models kept (parameters and buffers). Past it the least
    recently used models are dropped (never the one just asked for), so a server asked for many
    models does not grow without bound; a run keeps the models it holds until it ends. None: no
    budget.

    >>> cache = ModelCache("cpu", "weights")                      # doctest: +SKIP
    >>> cache.perceptors(["ViT-B/32"])                              # doctest: +SKIP
    """

    def __init__(self, device: torch.device | str, weights_dir: Path | str | None = None,
                 memory: int | None = None) -> None:
        self.device = torch.device(device)
        self.weights_dir = weights_dir_of(weights_dir)  # None: as a run's own (weights.weights_dir)
        self.memory = memory
        self._loaded: OrderedDict[str, nn.Module] = OrderedDict()  # least recently used first
        self.loads = 0
        self.evictions = 0

    @classmethod
    def for_settings(cls, settings: Settings) -> ModelCache:
        """An empty cache on the settings' device and weights directory (one run's, or one
        animation's: models are read when first asked for)."""
        return cls(choose_device(settings.device, settings.cuda_device), settings.weights_dir)

    def get(self, key: str, load: Callable[[], M]) -> M:
        """The model stored under ``key``, calling ``load`` (and moving it to the device) the first time."""
        if key in self._loaded:
            self._loaded.move_to_end(key)
        else:
            log.info("loading %s", key)
            self._loaded[key] = load().to(self.device)
            self.loads += 1
            self._evict(keep=key)
        return self._loaded[key]  # type: ignore[return-value]

    def get_file(self, filename: str, load: Callable[[Path], M]) -> M:
        """The model ``load`` reads from weight file ``filename`` of the weights directory (found and
        verified, or MissingWeightsError naming it and the command that fetches it), read once per file."""
        path = find_weight_file(filename, self.weights_dir)
        return self.get(f"file:{path.resolve()}", lambda: load(path))

    def held_bytes(self) -> int:
        """Bytes of the parameters and buffers of the models kept."""
        return sum(_bytes_of(model) for model in self._loaded.values())

    def _evict(self, keep: str) -> None:
        if self.memory is None:
            return
        while self.held_bytes() > self.memory and len(self._loaded) > 1:
            oldest = next(key for key in self._loaded if key != keep)
            log.info("dropping %s: the models kept would pass the %d MB budget", oldest, self.memory >> 20)
            del self._loaded[oldest]
            self.evictions += 1

    def perceptors(self, names: Sequence[str], weights: torch.dtype = torch.float32) -> list[Perceptor]:
        """The CLIP perceptors called ``names`` (catalog names or checkpoint paths), their matmul
        weights stored in ``weights`` (see :meth:`Perceptor.store_weights_in`; one copy kept per
        precision asked for)."""
        suffix = "" if weights == torch.float32 else f"@{str(weights).removeprefix('torch.')}"
        return [self.get(f"clip:{name}{suffix}",
                         lambda name=name: self._load_clip(name).store_weights_in(weights)) for name in names]

    def _load_clip(self, name: str) -> Perceptor:
        path = checkpoint_path(name, self.weights_dir)
        entry = CLIP_MODELS.get(name)
        if entry is not None and entry.pretrained is not None:
            return load_pretrained_clip(name, path, entry.architecture, entry.pretrained)
        return Perceptor(name, load_clip_checkpoint(path))

    def preload(self, names: Sequence[str], weights: torch.dtype = torch.float32) -> None:
        """Load models by name: CLIP models (their weights in ``weights``, as runs will ask for them),
        and those the parts declare (a server's setup)."""
        declared = declared_models()
        for name in names:
            if name in declared:
                declared[name].load(self)
            else:
                self.perceptors([name], weights)


def _bytes_of(model: nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in {id(t): t for t in tensors}.values())


def parse_memory(text: str, setting: str = "$PIXRAY_MODEL_MEMORY") -> int:
    """Bytes from '8G', '512M', '2.5G' or a number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not match:
        raise SettingsError(f"{setting}: {text!r} is not an amount of memory; give e.g. 8G, 512M or bytes")
    return int(float(match[1]) * 1024 ** " KMGT".index(match[2].upper() or " "))


def default_model_memory(device: torch.device) -> int:
    """Models a long-running server keeps by default: 70 % of the GPU's memory, or half of the
    memory this process may use elsewhere (:func:`~pixray.runtime.usable_memory`: a container's
    limit where it has one)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory * 0.7)
    return int(usable_memory() * 0.5)


def declared_models() -> dict[str, DeclaredModel]:
    """Every model a part (drawer, custom loss, filter) declares, by name."""
    declared: dict[str, DeclaredModel] = {}
    for registry in SECTION_KINDS.values():
        for part in registry.values():
            declared.update(part.declared_models())
    return declared


def models_for(settings: Settings | None = None) -> list[str]:
    """Names of the models a run with ``settings`` (default: the defaults) loads: its CLIP models,
    then what its drawer, custom losses and filters declare they need."""
    settings = settings or build_settings({})
    names = list(clip_models_of(settings))
    for kind, name in parts_in_use(settings):
        names += SECTION_KINDS[kind].lookup(name).models_needed(settings.section(name))
    return list(dict.fromkeys(names))


def missing_weight_files(names: Sequence[str], directory: Path) -> dict[str, list[str]]:
    """Each model of ``names`` whose weight files are not all in ``directory``, with those files."""
    return {name: files for name in names
            if (files := [f for f in weight_files(name) if not (directory / f).is_file()])}


#: Set to ``0``, the commands and the Cog server never fetch missing weight files (they say which to fetch).
DOWNLOAD_ENV = "PIXRAY_DOWNLOAD"


def downloads_allowed() -> bool:
    """Whether missing weight files are fetched: unless ``$PIXRAY_DOWNLOAD`` is ``0``."""
    return os.environ.get(DOWNLOAD_ENV, "1") != "0"


#: The progress callback of one file's download, given its file name.
ProgressFor = Callable[[str], AbstractContextManager[Progress]]


def fetching_missing(make: Callable[[], T], directory: Path, progress_for: ProgressFor | None = None) -> T:
    """``make()`` (a run, an animation), fetching first the weight files it finds missing (the files its
    :class:`MissingWeightsError` names) into ``directory`` when the manifest has them all and
    :func:`downloads_allowed`, then making it again, as Pixray fetched what a first run needs; otherwise
    the error stands, naming them and the command that fetches them. ``make`` checks every setting
    before it looks for weight files, so nothing is fetched for a run that could not start."""
    fetched: set[str] = set()
    while True:
        try:
            return make()
        except MissingWeightsError as exc:
            files = [f for f in exc.files if f not in fetched]
            if not (files and downloads_allowed() and all(f in MANIFEST for f in exc.files)):
                raise
            fetch_files(files, directory, progress_for)
            fetched.update(files)


def fetch_missing(names: Sequence[str], directory: Path,
                  progress_for: ProgressFor | None = None) -> list[Path]:
    """Download the weight files of the models ``names`` that are not in ``directory``; as
    :func:`fetch_files`."""
    return fetch_files([f for files in missing_weight_files(names, directory).values() for f in files],
                       directory, progress_for)


def fetch_files(filenames: Sequence[str], directory: Path,
                progress_for: ProgressFor | None = None) -> list[Path]:
    """Download the manifest files ``filenames`` into ``directory`` (each verified and renamed into
    place whole; one there already is verified); their paths. ``progress_for(filename)`` gives each
    download's progress callback. Raises :class:`MissingWeightsError` for a file that no URL gave,
    saying why and what to do offline. What it fetches is logged first (a warning: a command shows it)."""
    if absent := [f for f in filenames if not (directory / f).is_file()]:
        log.warning("fetching %s into %s (%s=0 turns this off)", ", ".join(absent), directory, DOWNLOAD_ENV)
    paths = []
    for i, filename in enumerate(filenames):
        with progress_for(filename) if progress_for else contextlib.nullcontext() as progress:
            try:
                paths.append(download(MANIFEST.lookup(filename), directory, progress))
            except CannotWriteError as exc:
                raise MissingWeightsError(str(exc), [filename]) from None
            except DownloadError as exc:
                # Offline, every file is said at once, with the one command that fetches them elsewhere.
                rest = [f for f in filenames[i + 1:] if not (directory / f).is_file()]
                verb = "is" if len(rest) == 1 else "are"
                also = (f"; {', '.join(map(repr, rest))} {verb} missing there too "
                        f"(`{fetch_command(' '.join([filename, *rest]))} --dir {directory}` fetches them all)"
                        if rest else "")
                raise MissingWeightsError(" ".join(str(exc).split()) + also, [filename, *rest]) from None
            except OSError as exc:  # a weights directory that cannot be made or written
                raise MissingWeightsError(
                    f"cannot fetch weight file {filename!r} into {str(directory)!r}: {exc.strerror or exc}; "
                    f"point the weights_dir setting or ${WEIGHTS_ENV} at a directory this user may write",
                    [filename]) from None
    return paths


def require_weights(names: Sequence[str], directory: Path) -> None:
    """Raise one :class:`MissingWeightsError` naming every model of ``names`` whose weight files are
    not in ``directory``, with the one command that fetches them all, when two or more are missing (a
    first run of the defaults misses three: said one at a time, each download only led to the next
    message). One missing model is left to its loader, whose message also gives its URL."""
    missing = missing_weight_files(names, directory)
    if len(missing) < 2:
        return
    listed = ", ".join(f"{name} ({', '.join(files)})" for name, files in missing.items())
    raise MissingWeightsError(
        f"weight files missing from {str(directory.resolve())!r}: {listed}; fetch them all with "
        f"`{fetch_command(' '.join(missing))} --dir {directory}`, or point the weights_dir setting or "
        f"${WEIGHTS_ENV} at a directory holding them", [f for files in missing.values() for f in files])


def weight_files(name: str) -> list[str]:
    """Files to download for a CLIP model name, a model a part declares (a VQGAN, vgg16), a
    manifest file name, or the path of a CLIP checkpoint (none for those, and for the CLIPs that
    ship inside the package)."""
    declared = declared_models()
    if name in CLIP_MODELS:
        return [] if CLIP_MODELS[name].packaged else [CLIP_MODELS[name].filename]
    if name in declared:
        return list(declared[name].files)
    if name in MANIFEST:
        return [name]
    if Path(name).expanduser().is_file():
        return []  # a CLIP checkpoint by path (a server owner's fine-tuned model): nothing to fetch
    raise SettingsError(unknown_name_message("model or weight file", name, [*CLIP_MODELS, *declared],
                                             also=list(MANIFEST)) +
                        "; or a weight file's name (`python -m pixray.weights list` shows them)")
