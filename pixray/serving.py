"""Serving predictions (what the Cog predictor delegates to): models loaded once, frames as files.

A :class:`Service` holds a :class:`~pixray.model_cache.ModelCache` for its lifetime, turns one
request's inputs into validated settings before any work starts, and streams PNG frames (just
before the final one, the SVG of drawers that draw vector pictures), each a new file with a unique
name in a per-prediction directory (files of earlier predictions are removed when the next one
starts).
Environment, read once at setup:

- ``PIXRAY_WEIGHTS_DIR``: the weights directory (default ./weights, as in the image; see
  :func:`pixray.weights.weights_dir`);
- ``PIXRAY_SETTINGS``: a YAML settings file applied under every request's inputs;
- ``PIXRAY_PRELOAD``: space-separated model names to load at setup: CLIP models and those the parts
  declare, e.g. VQGAN models, ``vgg16`` (default: what a request with default inputs uses);
- ``PIXRAY_MODEL_MEMORY``: the memory the models kept may take (``8G``, ``512M``); past it the least
  recently used are dropped (default: 70 % of the GPU's memory, else half of the machine's);
- ``PIXRAY_DOWNLOAD``: ``0`` to never fetch missing weight files at setup (default: try);
- ``PIXRAY_OUTPUT_DIR``: where per-prediction directories go (default: a new temporary directory);
- ``PIXRAY_MAX_*``: the per-request budget (:class:`~pixray.limits.Budget`).

Requests cannot set what the server owns (files, device, weight locations): see
:func:`server_owned`. A request reads no file but those it sent; its errors are one bounded line
that names no server directory, and an unexpected error fails that prediction only.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .engine import Drawn, Run, Step, plan_for
from .errors import RunError
from .init_images import MAX_IMAGE_PIXELS, ImageReader
from .limits import Budget
from .media import FrameSequence, FrameWriter
from .model_cache import (
    ModelCache,
    default_model_memory,
    downloads_allowed,
    fetch_missing,
    models_for,
    parse_memory,
)
from .options import SettingsError
from .output import png_metadata, run_record, save_png, save_text
from .perceptors import CLIP_MODELS
from .runtime import MEMORY_ADVICE, choose_device, choose_precision, weights_precision
from .settings import (
    Settings,
    all_specs,
    build_settings,
    parse_settings_text,
    read_settings_file,
)
from .weights import CheckpointError, MissingWeightsError

log = logging.getLogger(__name__)

#: record(name, value): where metrics go (Cog's ``current_scope().record_metric``).
Record = Callable[[str, Any], None]

#: Settings a request may not change besides those naming files: where output goes, the hardware.
SERVER_OWNED = ("outdir", "output", "overwrite", "save_every", "device", "cuda_device", "precision",
                "cuda_graphs", "weights_dir")

#: Settings naming files that a request sends through file inputs of the same name (besides init_image).
FILE_INPUTS = ("image_prompts", "target_images", "image_labels", "overlay_image", "spot_file", "style_file",
               "edge_input_image", "edge_mask_image")
#: A file name read as nothing but a name by every setting (no '|', ':', glob or brace characters).
PLAIN_NAME = re.compile(r"[A-Za-z0-9._-]+")

#: Longest error message a request gets back (the whole message goes to the server's log).
MAX_ERROR_CHARS = 1000
PREDICTIONS_PREFIX = "pixray-predictions-"


def server_owned() -> tuple[str, ...]:
    """Settings a request's ``settings`` text may not set: :data:`SERVER_OWNED` and every
    setting that names a file on the server (its uploads come through file inputs instead)."""
    return SERVER_OWNED + tuple(name for name, spec in all_specs().items() if spec.names_file)


class PredictionError(RuntimeError):
    """Why a prediction failed, fit to show the requester: one bounded line, no server paths."""


@dataclass(frozen=True)
class Request:
    """One prediction's inputs; None means "from ``settings_text``, else the server's base settings,
    else the default". ``settings_text`` is Pixray-style ``name: value`` YAML."""

    prompts: str | None = None
    drawer: str | None = None
    quality: str | None = None
    aspect: str | None = None
    iterations: int | None = None
    seed: int | None = None
    display_every: int | None = None
    init_image: Path | None = None
    settings_text: str = ""
    make_video: bool | None = None
    #: Files sent for settings that name files (image_prompts, spot_file, ...): setting -> paths.
    files: Mapping[str, Sequence[Path]] = field(default_factory=dict)


def input_field(name: str, nullable: bool = False) -> dict[str, Any]:
    """Description, default and bounds/choices of setting ``name``, as Cog ``Input`` arguments.

    ``nullable``: the input defaults to None, meaning the request leaves the setting to its
    ``settings`` text or the server's base settings.
    """
    spec = all_specs()[name]
    arguments: dict[str, Any] = {"description": spec.help, "default": None if nullable else spec.default}
    if spec.choices is not None:
        arguments["choices"] = list(spec.choices)
    if spec.minimum is not None:
        arguments["ge"] = spec.minimum
    if spec.maximum is not None:
        arguments["le"] = spec.maximum
    return arguments


class Service:
    """Models on one device plus the per-prediction file handling of a server.

    ``workdir`` holds one directory per prediction and ``uploads``, where the HTTP layer saves the
    files a request sends (the only files a request may read).
    """

    def __init__(self, models: ModelCache, base: Mapping[str, Any], workdir: Path,
                 budget: Budget | None = None) -> None:
        self.models = models
        self.base = dict(base)
        self.workdir = workdir
        self.uploads = workdir / "uploads"
        self.uploads.mkdir(exist_ok=True)
        self.budget = budget or Budget()
        self.images = ImageReader(self.budget.image_pixels or MAX_IMAGE_PIXELS, self.uploads)
        self.predictions = 0
        self._directories: list[Path] = []  # only directories this service made are ever deleted
        self._renamed: list[Path] = []  # uploads this service renamed (see _plainly_named)

    @classmethod
    def from_environment(cls) -> Service:
        """Set up from ``PIXRAY_*`` variables (see the module docstring) and preload models."""
        budget = Budget.from_environment()
        settings_file = os.environ.get("PIXRAY_SETTINGS")
        base = read_settings_file(settings_file) if settings_file else {}
        defaults = build_settings(base)
        device = choose_device(defaults.device, defaults.cuda_device)
        memory = os.environ.get("PIXRAY_MODEL_MEMORY")
        models = ModelCache(device, defaults.weights_dir,
                            parse_memory(memory) if memory else default_model_memory(device))
        names = os.environ.get("PIXRAY_PRELOAD", "").split() or models_for(defaults)
        if downloads_allowed():  # otherwise the preload names what is missing
            fetch_missing(names, models.weights_dir, logged_download)
        models.preload(names, weights_precision(device, choose_precision(defaults.precision, device)))
        output_dir = Path(os.environ.get("PIXRAY_OUTPUT_DIR") or tempfile.gettempdir())
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_workdirs(output_dir)
        workdir = Path(tempfile.mkdtemp(prefix=f"{PREDICTIONS_PREFIX}{os.getpid()}-", dir=output_dir))
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
        return cls(models, base, workdir, budget)

    def settings_for(self, request: Request) -> Settings:
        """Validated settings: base < ``settings_text`` < the inputs given. Raises SettingsError."""
        self.budget.require("settings_chars", len(request.settings_text), "input 'settings' of length")
        text = parse_settings_text(request.settings_text, origin="input 'settings'")
        owned = server_owned()
        refused = [key for key in text if key in owned]
        if refused:
            names = f"{', '.join(map(repr, refused))} {'is' if len(refused) == 1 else 'are'}"
            raise SettingsError(f"input 'settings': {names} set by the server, "
                                "not per request (images go in the file inputs: init_image, "
                                f"{', '.join(FILE_INPUTS)}); every other setting is allowed (server-owned: "
                                f"{', '.join(owned)})")
        files = {name: list(paths) for name, paths in request.files.items() if paths}
        unknown = [name for name in files if name not in FILE_INPUTS]
        if unknown:
            raise ValueError(f"no file input for {unknown}")
        if request.init_image:
            files["init_image"] = [request.init_image]
        given = {"prompts": request.prompts, "drawer": request.drawer, "quality": request.quality,
                 "aspect": request.aspect, "display_every": request.display_every,
                 "iterations": request.iterations, "seed": request.seed, "make_video": request.make_video,
                 **{name: "|".join(str(self._plainly_named(path)) for path in paths)
                    for name, paths in files.items()}}
        settings = build_settings(self.base, text, {k: v for k, v in given.items() if v is not None})
        paths = [name for name in settings.clip_models or () if name not in CLIP_MODELS]
        if paths and "clip_models" in text:
            raise SettingsError(f"input 'settings': clip_models {paths} are not model names; a request "
                                f"may name these: {', '.join(CLIP_MODELS)}")
        self.budget.check(settings, plan_for(settings, self.images))
        return settings

    def _plainly_named(self, sent: Path | str) -> Path:
        """An uploaded file under a name no setting reads as more than a name (the HTTP layer names
        files after their URL, which may hold '|', ':' or glob characters): renamed when needed,
        and deleted with the prediction's files."""
        path = Path(sent)
        if PLAIN_NAME.fullmatch(path.name):
            return path
        plain = self.uploads / f"upload-{uuid.uuid4().hex}{''.join(PLAIN_NAME.findall(path.suffix))}"
        if path.resolve().parent != self.uploads.resolve():  # the reader refuses it anyway
            return path
        try:
            os.replace(path, plain)
        except OSError:
            return path  # the reader says what is wrong with it
        self._renamed.append(plain)
        return plain

    def frames(self, request: Request, record: Record) -> Iterator[Path]:
        """Validate, then run, yielding a PNG every ``display_every`` steps and always the final one.

        Every failure is raised as :class:`PredictionError` (see :func:`public_error`).
        """
        try:
            yield from self._frames(request, record)
        except Exception as exc:
            raise public_error(exc) from None
        finally:
            while self._renamed:
                self._renamed.pop().unlink(missing_ok=True)
            release_memory()

    def _frames(self, request: Request, record: Record) -> Iterator[Path]:
        settings = self.settings_for(request)
        # Also validates (prompts, init image, model files) before the first step.
        run = Run(settings, models=self.models, images=self.images)
        directory = self._fresh_directory()
        metadata = run_record(run)
        record("model_loads", self.models.loads)
        record("seed", run.seed)  # chosen at random where the request left it: what repeats the picture
        started, done, loss = time.perf_counter(), 0, None
        plan = run.plan
        # The prediction's logs say how it goes, as Pixray's printed lines did.
        log.info("drawer %s, %dx%d, %d iterations, clip_models %s, seed %d", settings.drawer, plan.width,
                 plan.height, plan.iterations, ", ".join(plan.clip_models), run.seed)
        video = Video(directory, settings) if settings.make_video else None
        try:
            # A shown step's frame streams as soon as it is drawn, a perceptor pass before its loss is
            # known (the frame does not hold the loss): the first comes without waiting for a pass.
            for item in run.drawn_and_steps(plan.displays):
                if isinstance(item, Drawn):
                    yield self._write(item, metadata, directory)
                    continue
                step = item
                if video is not None:
                    video.add(step)
                if step.is_final and step.vector is not None:  # before the PNG: clients take the last output
                    yield self._write_vector(step, directory)
                loss = step.losses.get("total")
                if step.is_final:
                    yield self._write(step, metadata, directory)
                elif plan.displays(step.index) and loss is not None:
                    parts = ", ".join(f"{name} {float(value):.4f}" for name, value in step.losses.items()
                                      if name != "total")
                    log.info("step %d of %d: loss %.4f%s", step.index, plan.iterations, step.loss,
                             f" ({parts})" if parts else "")
                if not step.is_final:
                    done = step.index + 1
                elapsed = time.perf_counter() - started
                if self.budget.seconds and elapsed > self.budget.seconds and not step.is_final:
                    raise PredictionError(f"the run took over this server's limit of {self.budget.seconds} s "
                                          f"($PIXRAY_MAX_SECONDS) at step {step.index}; ask for fewer "
                                          "iterations or cuts")
            if video is not None:
                yield from video.finish()  # last: the output a request for a video takes
        finally:
            if video is not None:
                video.close()
        seconds = time.perf_counter() - started
        log.info("done: %d steps in %.1f s (%.3f s per step)%s", done, seconds, seconds / max(done, 1),
                 f", loss {float(loss):.4f}" if loss is not None else "")
        record("iterations", done)
        record("seconds_per_iteration", round(seconds / max(done, 1), 4))
        if loss is not None:
            record("final_loss", round(float(loss), 6))

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
    def _write_vector(step: Step, directory: Path) -> Path:
        """The final step's vector picture, streamed just before its PNG."""
        assert step.vector is not None
        path = directory / f"{directory.name}-{step.index:05d}.svg"
        try:
            save_text(step.vector.svg(), path)
        except OSError as exc:
            raise PredictionError(f"cannot write the SVG of step {step.index}: {exc.strerror or exc}") \
                from None
        return path

    @staticmethod
    def _write(step: Drawn | Step, metadata: dict[str, Any], directory: Path) -> Path:
        # The basename is the upload key in Cog: unique per prediction and per frame.
        path = directory / f"{directory.name}-{step.index:05d}.png"
        try:
            save_png(step.pil(), path, png_metadata(metadata, metadata["seed"], step.index, step.prompts))
        except OSError as exc:
            raise PredictionError(f"cannot write frame {step.index}: {exc.strerror or exc}") from None
        return path


class Video:
    """A prediction's video (``make_video``): a frame of every step written off the loop into
    ``directory/video``, then the mp4 (and with ``gif`` a GIF, streamed before it)."""

    def __init__(self, directory: Path, settings: Settings) -> None:
        self.frames = FrameSequence(directory / "video", directory / f"{directory.name}.mp4")
        self.frames.directory.mkdir()
        self.gif = settings.gif
        self.comment = settings.prompts or None
        self._writer = FrameWriter()

    def add(self, step: Step) -> None:
        """Queue ``step``'s image as the next frame."""
        self._writer.submit([self.frames.frame_path(step.index)], step.image)
        self.frames.add(step.index)

    def finish(self) -> list[Path]:
        """Wait for the frames, then make the GIF (when asked for) and the mp4, in that order."""
        self._writer.close()
        try:
            return self.frames.make_videos(self.comment, self.gif)
        except OSError as exc:
            raise PredictionError(f"cannot make the video: {exc.strerror or exc}") from None

    def close(self) -> None:
        """Stop the frame thread (a failed or cancelled prediction)."""
        with contextlib.suppress(Exception):
            self._writer.close()


def public_error(exc: Exception) -> PredictionError:
    """What a requester is told of ``exc``: one line of at most :data:`MAX_ERROR_CHARS`, with no
    server directory in it. Errors that are not the request's fault are logged in full."""
    if isinstance(exc, PredictionError):
        message = str(exc)
    elif isinstance(exc, MissingWeightsError):
        message = (f"model weights {', '.join(exc.files) or '(unknown)'} are not installed on this server "
                   f"(its owner can fetch them with `python -m pixray.weights download NAME`)")
    elif isinstance(exc, (SettingsError, RunError, CheckpointError)):
        message = str(exc)
    elif isinstance(exc, torch.OutOfMemoryError):
        message = f"out of memory: {MEMORY_ADVICE}"  # outside a run's steps, which say their own
    else:
        log.error("prediction failed: %s", str(exc)[:20 * MAX_ERROR_CHARS], exc_info=exc)
        message = f"internal error ({type(exc).__name__}): {exc}"
    message = " ".join(scrub_paths(message).split())
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS - 1] + "…"
    return PredictionError(message)


def scrub_paths(text: str) -> str:
    """``text`` with every absolute path reduced to its file name (``/srv/weights/x.pt`` -> ``x.pt``)."""
    return _ABSOLUTE_PATH.sub(lambda m: Path(m.group(0)).name or "/", text)


# A slash that starts a token (not "AC/DC"), up to a space, quote or bracket.
_ABSOLUTE_PATH = re.compile(r"""(?<![\w.~:/-])/[^\s'"()\[\]{},;]*""")


def remove_stale_workdirs(directory: Path) -> None:
    """Delete the prediction directories of servers that are no longer running (a server that
    was killed cannot delete its own); a directory carries its server's process id."""
    for path in directory.glob(f"{PREDICTIONS_PREFIX}*"):
        pid = path.name[len(PREDICTIONS_PREFIX):].split("-")[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def logged_download(filename: str) -> Iterator[Callable[[int, int | None], None]]:
    """The progress callback of a weight file's download at setup: a log line at each tenth (a server's
    log has no progress bar, and a gigabyte's download would otherwise look like a hang)."""
    said = 0

    def progress(done: int, total: int | None) -> None:
        nonlocal said
        tenth = done * 10 // total if total else 0
        if tenth > said:
            said = tenth
            log.warning("%s: %d %% of %.0f MB", filename, tenth * 10, total / 1e6)

    yield progress


def release_memory() -> None:
    """Return cached allocator memory so the next prediction starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__ = ["SERVER_OWNED", "PredictionError", "Request", "Service", "input_field",
           "public_error", "server_owned"]
