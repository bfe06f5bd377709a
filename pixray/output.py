"""Writing a run to disk: the output directory, PNGs that carry their settings, settings.yaml."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import yaml
from PIL import Image, PngImagePlugin

from .atomic_files import write_atomically
from .engine import Drawn, Run, Step
from .errors import RunError
from .media import FrameSequence, FrameWriter
from .options import SettingsError
from .settings import SETTINGS_KEY, Settings, parse_settings_text
from .version import installed_version

SEED_KEY = "pixray_seed"
SEED_USED_KEY = "pixray_seed_used"  # Pixray's name for it
ITERATION_KEY = "pixray_iteration"
PROMPTS_IN_FORCE_KEY = "pixray_prompts_in_force"
#: Numbers a run tries for its %SEQ% outdir while runs started alongside take them.
MAX_CLAIMS = 1000


def resolve_outdir(pattern: str, today: _dt.date | None = None) -> Path:
    """``pattern`` with ``~`` expanded, %DATE% (YYYYMMDD) and %SEQ% (the first number from 1 giving an
    unused path, of two digits or more as Pixray writes it: 01, ..., 99, 100)."""
    text = os.path.expanduser(pattern).replace("%DATE%", (today or _dt.date.today()).strftime("%Y%m%d"))
    if "%SEQ%" not in text:
        return Path(text)
    for seq in range(1, 100000):
        candidate = Path(text.replace("%SEQ%", f"{seq:02d}"))
        if not candidate.exists():
            return candidate
    raise SettingsError(f"setting 'outdir': no unused directory for {pattern!r}")


def png_metadata(settings: dict[str, Any], seed: int, iteration: int,
                 prompts: str | None = None) -> PngImagePlugin.PngInfo:
    """PNG text chunks: the non-default settings (as YAML, which ``pixray --config`` reads back, and
    one ``pixray_<name>`` chunk each, as Pixray writes them), the seed, the iteration, and for
    prompts in phases those in force (``pixray_prompts_in_force``)."""
    info = PngImagePlugin.PngInfo()
    info.add_text(SETTINGS_KEY, yaml.safe_dump(settings, sort_keys=True))
    for name, value in sorted(settings.items()):
        if name != "seed":
            info.add_text(f"pixray_{name}", str(value))
    info.add_text(SEED_KEY, str(seed))
    info.add_text(SEED_USED_KEY, str(seed))
    info.add_text(ITERATION_KEY, str(iteration))
    if prompts is not None:
        info.add_text(PROMPTS_IN_FORCE_KEY, prompts)
    info.add_text("Software", f"pixray ({installed_version()})")
    return info


def read_png_metadata(path: str | Path) -> dict[str, Any]:
    """``{"settings": {...}, "seed": int, "iteration": int}`` read back from a pixray PNG."""
    with Image.open(path) as img:
        text = dict(getattr(img, "text", {}))
    return {
        "settings": parse_settings_text(text.get(SETTINGS_KEY, ""), origin=f"{path} metadata"),
        "seed": int(text[SEED_KEY]) if SEED_KEY in text else None,
        "iteration": int(text[ITERATION_KEY]) if ITERATION_KEY in text else None,
    }


def save_png(image: Image.Image, path: Path, info: PngImagePlugin.PngInfo | None) -> None:
    """Write ``image`` to ``path`` atomically (readers never see a half-written file)."""
    write_atomically(path, lambda f: image.save(f, format="PNG", pnginfo=info))


def save_image(image: Image.Image, path: Path, info: PngImagePlugin.PngInfo | None) -> None:
    """Write ``image`` to ``path`` atomically in the format its suffix names, as Pixray's animations did
    (``b.jpg`` a JPEG; ``info`` only where that is PNG, which an unknown suffix also gets). A format
    without an alpha channel (JPEG) gets the picture without it."""
    form = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    if form == "PNG":
        save_png(image, path, info)
        return
    try:
        write_atomically(path, lambda f: image.save(f, format=form))
    except OSError:  # "cannot write mode RGBA as JPEG"
        write_atomically(path, lambda f: image.convert("RGB").save(f, format=form))


def save_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` atomically, as :func:`save_png`."""
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def run_record(run: Run) -> dict[str, Any]:
    """What a run's outputs record: its non-default settings and its seed."""
    return {**run.settings.to_dict(only_changed=True), "seed": run.seed}


def claim_outdir(pattern: str, first: Path | None = None) -> tuple[Path, list[Path]]:
    """The outdir ``pattern`` names, and the directories created for it, innermost first. A %SEQ%
    one is created here, so no other run shares it: ``first`` (resolved earlier) or, when another
    run created that one first, the next unused number. Any other is only resolved (nothing created)."""
    outdir = first or resolve_outdir(pattern)
    if "%SEQ%" not in pattern:
        return outdir, []
    for _ in range(MAX_CLAIMS):
        missing = [p for p in (outdir, *outdir.parents) if not p.exists()]
        try:
            outdir.mkdir(parents=True)
            return outdir, missing
        except FileExistsError:
            outdir = resolve_outdir(pattern)
    raise SettingsError(f"setting 'outdir': no unused directory for {pattern!r}: other runs took the last "
                        f"{MAX_CLAIMS}")


class OutputWriter:
    """Saves a run's image every ``save_every`` steps and at the end, into a fresh outdir; with
    ``save_intermediates`` each saved image also as ``steps/frame_NNNN.png``, with ``make_video``
    every step's as ``video/frame_NNNN.png``, and at the end an mp4 of each (and a GIF with
    ``gif``). Images are written by a background thread, off the optimisation loop.

    An outdir that already holds files is refused unless ``overwrite`` is set, so a run never
    replaces a user's files by accident.
    """

    def __init__(self, settings: Settings) -> None:
        """Check ``output`` and choose the outdir; nothing is written until :meth:`start`."""
        self._settings = settings
        self._place(resolve_outdir(settings.outdir))
        nearest = next(p for p in (self.outdir, *self.outdir.parents) if p.exists() or p == p.parent)
        if not nearest.is_dir() or not os.access(nearest, os.W_OK):
            what = "is not writable" if nearest.is_dir() else "is a file, not a directory"
            place = f"{str(nearest)!r}" + ("" if nearest.is_absolute() else f" ({nearest.resolve()})")
            made = "" if nearest == self.outdir else f"cannot make {str(self.outdir)!r}: "
            raise SettingsError(f"setting 'outdir': {made}{place} {what}; choose another outdir")
        if self.outdir.exists() and any(self.outdir.iterdir()) and not settings.overwrite:
            self._refuse_taken()
        self.gif = settings.gif
        self.comment = settings.prompts or None  # the mp4's metadata
        self.save_every = 0  # from the run's plan, at start()
        self.record: dict = {}
        self._made: list[Path] = []  # what start() created, removed by abandon() if no image followed
        self._images: FrameWriter | None = None
        self._wrote = False

    def _place(self, outdir: Path) -> None:
        """Put the run's files under ``outdir``."""
        self.outdir = outdir
        self.path = outdir / self._settings.output
        self.vector_path = self.path.with_suffix(".svg")  # for drawers that draw vector pictures
        #: Frames of the saved images (save_intermediates) and of every step (make_video).
        self.steps = (FrameSequence(outdir / "steps", outdir / "steps" / "output.mp4")
                      if self._settings.save_intermediates else None)
        self.video = (FrameSequence(outdir / "video", self.path.with_suffix(".mp4"))
                      if self._settings.make_video else None)

    def _refuse_taken(self) -> NoReturn:
        raise SettingsError(f"outdir {str(self.outdir)!r} already holds files; choose another "
                            "outdir (%SEQ% picks an unused one) or set overwrite: true")

    def start(self, run: Run) -> None:
        """Claim the outdir, create the frame directories and write settings.yaml (the non-default
        settings and the run's seed).

        Runs started side by side never share an outdir: a %SEQ% outdir is claimed by creating it
        (when another run created that one first, this run takes the next unused number), and
        without ``overwrite`` settings.yaml is only created, never replaced."""
        self.record = run_record(run)
        self.save_every = run.plan.save_every
        try:
            made = self._claim()
            settings_file = self.outdir / "settings.yaml"
            folders = [self.path.parent, *(frames.directory for frames in (self.steps, self.video) if frames)]
            made += [p for folder in folders for p in (folder, *folder.parents) if not p.exists()]
            # What abandon() removes, innermost first.
            self._made = sorted(set(made), key=lambda p: -len(p.parts))
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
            if not settings_file.exists():
                self._made.insert(0, settings_file)
            try:
                with settings_file.open("w" if self._settings.overwrite else "x", encoding="utf-8") as f:
                    f.write(yaml.safe_dump(self.record, sort_keys=True))
            except FileExistsError:
                self._made = []  # a run started alongside wrote it first: the folders are its too
                self._refuse_taken()
        except OSError as exc:
            raise SettingsError(f"setting 'outdir': cannot write to {str(self.outdir)!r}: "
                                f"{exc.strerror or exc}") from None

    def _claim(self) -> list[Path]:
        """Claim the outdir (:func:`claim_outdir`); the directories created."""
        outdir, made = claim_outdir(self._settings.outdir, self.outdir)
        if outdir != self.outdir:
            self._place(outdir)
        return made

    def abandon(self) -> None:
        """Undo :meth:`start` when the run failed before writing an image, so a rerun with the
        same outdir is not refused; an outdir that already existed keeps everything else in it."""
        if self._wrote or self.path.exists():
            return
        for path in self._made:  # the file, then the directories innermost first
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink()  # a directory only if empty
        self._made = []

    def wants(self, step: Step) -> bool:
        """Whether ``step`` is one to write."""
        return step.is_final or (self.save_every > 0 and step.index % self.save_every == 0)

    def write(self, step: Step) -> Path:
        """Write ``step``'s image to the output path (and its vector picture beside it, as .svg,
        when the drawer draws one; and its frame, with save_intermediates) and return the
        image's path once it is written."""
        self._queue(step)
        self._flush()
        return self.path

    def save_run(self, run: Run, progress: Callable[[Step], None] | None = None,
                 stop: Callable[[], bool] | None = None,
                 drawn: Callable[[Drawn], None] | None = None) -> Step:
        """Run ``run`` to the end, writing what :meth:`wants` (and the videos' frames); ``progress``
        sees every step, and ``drawn`` the picture of every step the run's plan displays
        (``display_every``) as soon as it is drawn, before its pass. Returns the final step once
        every file is written. A run that fails before its first image leaves no outdir behind; one
        interrupted (Ctrl-C) still gets the videos of the frames it wrote. ``stop``, asked after
        every step, ends the run there: that step's image is written as the run's image (its
        metadata says which iteration) and the videos are made, and that step is returned."""
        def wanted(index: int) -> bool:
            return drawn is not None and run.plan.displays(index)

        try:
            self.start(run)
            for item in run.drawn_and_steps(wanted):
                if isinstance(item, Drawn):
                    assert drawn is not None
                    drawn(item)
                    continue
                step = item
                stopping = not step.is_final and stop is not None and stop()
                if self.wants(step) or stopping:
                    self._queue(step)
                if self.video is not None:
                    self._queue_frame(self.video, step)
                if progress is not None:
                    progress(step)
                if step.is_final or stopping:
                    self.finish()
                    return step
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                self.finish()
            raise
        except BaseException:
            self._close_quietly()
            self.abandon()
            raise
        raise RunError("the run ended without a final step")

    def finish(self) -> None:
        """Stop the image thread and make the videos (and GIFs) of the frames written."""
        self._flush()
        if self._images is not None:
            self._images.close()
            self._images = None
        for sequence in (self.steps, self.video):
            if sequence is None or not sequence.frames:
                continue
            try:
                sequence.make_videos(self.comment, self.gif)
            except OSError as exc:
                raise RunError(f"cannot make {str(sequence.video)!r}: {exc.strerror or exc}") from None

    def outputs(self) -> list[Path]:
        """The files a finished run left for its user: the image, its SVG, and each video with
        its GIF (those that exist)."""
        candidates = [self.path, self.vector_path]
        for sequence in (self.video, self.steps):
            if sequence is not None:
                candidates += [sequence.video, sequence.video.with_suffix(".gif")]
        return [path for path in candidates if path.is_file()]

    def _queue(self, step: Step) -> None:
        """Hand ``step``'s image (and its frame in steps/) to the image thread; write its SVG."""
        paths = [self.path]
        if self.steps is not None:
            paths.append(self.steps.frame_path(step.index))
        info = png_metadata(self.record, self.record["seed"], step.index, step.prompts)
        self._submit(paths, step, info)
        if self.steps is not None:
            self.steps.add(step.index)
        if step.vector is not None:
            try:
                save_text(step.vector.svg(), self.vector_path)
            except OSError as exc:
                raise SettingsError(f"setting 'outdir': cannot write {str(self.vector_path)!r}: "
                                    f"{exc.strerror or exc}") from None

    def _queue_frame(self, sequence: FrameSequence, step: Step) -> None:
        self._submit([sequence.frame_path(step.index)], step, None)
        sequence.add(step.index)

    def _submit(self, paths: list[Path], step: Step, info: PngImagePlugin.PngInfo | None) -> None:
        if self._images is None:
            self._images = FrameWriter()
        self._wrote = True
        try:
            self._images.submit(paths, step.image, info)
        except OSError as exc:
            raise self._write_error(exc) from None

    def _flush(self) -> None:
        if self._images is not None:
            try:
                self._images.flush()
            except OSError as exc:
                raise self._write_error(exc) from None

    def _close_quietly(self) -> None:
        if self._images is not None:
            with contextlib.suppress(Exception):
                self._images.close()
            self._images = None

    def _write_error(self, exc: OSError) -> SettingsError:
        name = exc.filename if isinstance(exc.filename, str) else str(self.outdir)
        return SettingsError(f"setting 'outdir': cannot write {name!r}: {exc.strerror or exc}")
