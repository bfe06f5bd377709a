"""What the page's buttons do, without Gradio: Generate (settings from the form, then a run whose
progress comes back as :class:`View` updates), Stop, the gallery, "use these settings" and the demo
preset. Models stay loaded between runs, in one :class:`ModelCache` per device and weights folder.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..model_cache import ModelCache, default_model_memory
from ..options import SettingsError
from ..runtime import choose_device
from ..settings import Settings, build_settings, read_settings_file
from ..weights import weights_dir
from .form import field_of, form_from_settings, settings_from_form
from .gallery import Picture, output_root, pictures
from .session import Failed, Fetching, Finished, Progress, RunSession

#: The caption the demo preset fills in (the shapes-world guides know 224 such scenes).
DEMO_CAPTION = "a red circle on a blue background"
DEMO_DRAWER = "pixel"


@dataclass(frozen=True)
class View:
    """One update of the page while a run goes on.

    ``image``: a new picture to show (None keeps the one shown); ``done``/``total``/``loss``/
    ``seconds_left``: the progress bar (``total`` 0: no bar); ``message``: a line above it;
    ``errors``: field name (or "advanced") -> the one-line settings message shown by that field
    (every other field's message is cleared); ``files``: the finished run's files to download (None
    keeps the list shown); ``running``: whether a run is under way (Generate waits, Stop works).
    """

    message: str = ""
    image: Image.Image | None = None
    done: int = 0
    total: int = 0
    loss: float | None = None
    seconds_left: float | None = None
    errors: Mapping[str, str] = field(default_factory=dict)
    files: list[Path] | None = None
    running: bool = False


def one_line(error: Exception) -> str:
    """An error's message as the CLI prints it: one line."""
    return " ".join(str(error).split())


class Page:
    """The state behind ``pixray ui``: ``base`` settings (its --config files and flags) under every
    form, the model caches, and the run of each browser session (by Gradio's session id)."""

    def __init__(self, base: Mapping[str, Any]) -> None:
        self.base = dict(base)
        self.root = output_root(build_settings(self.base).outdir)  # raises SettingsError for a bad base
        self._caches: dict[tuple[str, Path], ModelCache] = {}
        self._sessions: dict[str, RunSession] = {}
        self._lock = threading.Lock()

    def models(self, settings: Settings) -> ModelCache:
        """The cache for the settings' device and weights folder, made on first use and kept (the
        least recently used models dropped past a server's default budget: 70 % of the GPU's
        memory, else half of the machine's)."""
        device = choose_device(settings.device, settings.cuda_device)
        folder = weights_dir(settings.weights_dir)
        with self._lock:
            cache = self._caches.get((str(device), folder))
            if cache is None:
                cache = ModelCache(device, folder, default_model_memory(device))
                self._caches[(str(device), folder)] = cache
            return cache

    def generate(self, session_id: str, form: Mapping[str, Any], advanced: str) -> Iterator[View]:
        """Check the form, run, and tell the page how it goes: a settings mistake is one update
        with the message by its field and no run; otherwise updates until the run has finished
        (or failed: the message, and by its field when it is a setting's)."""
        try:
            settings = settings_from_form(self.base, form, advanced)
        except SettingsError as exc:
            message = one_line(exc)
            yield View(message="Not started: a setting needs changing", errors={field_of(message): message})
            return
        session = RunSession(settings, self.models(settings))
        with self._lock:
            self._sessions[session_id] = session
        session.start()
        try:
            yield View(message="Preparing the run (loading models)…", running=True)
            for event in session.events():
                if isinstance(event, Fetching):
                    of = f" of {event.total / 1e6:.0f}" if event.total else ""
                    yield View(f"Downloading {event.filename}, which the run needs: {event.done / 1e6:.0f}"
                               f"{of} MB (once; PIXRAY_DOWNLOAD=0 turns this off)…", running=True)
                elif isinstance(event, Progress):
                    yield View("Stopping after this step…" if session.stopping else "Running",
                               event.frame, event.done, event.total, event.loss, event.seconds_left,
                               running=True)
                elif isinstance(event, Finished):
                    what = (f"Stopped after step {event.steps}" if event.stopped
                            else f"Done: {event.steps} steps") + f", seed {event.seed}"
                    where = f" · {event.files[0]}" if event.files else ""
                    yield View(what + where, event.image, files=event.files)
                elif isinstance(event, Failed):
                    errors = {field_of(event.message): event.message} if event.settings_error else {}
                    yield View(f"Failed: {event.message}", errors=errors)
        finally:  # also when the page goes away mid-run (the generator is closed): end the run
            session.stop()
            with self._lock:
                if self._sessions.get(session_id) is session:
                    del self._sessions[session_id]

    def stop(self, session_id: str) -> bool:
        """Ask the session's run to end after the step under way; False when it has none."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            return False
        session.stop()
        return True

    def gallery(self) -> list[Picture]:
        """This and earlier sessions' pictures under the output folder, newest first."""
        return pictures(self.root)

    def settings_of(self, path: str | Path) -> tuple[dict[str, Any], str]:
        """The form (field values, advanced text) filled from the settings a picture was made with.
        Raises SettingsError for a PNG without pixray's metadata."""
        return form_from_settings(read_settings_file(path))

    @staticmethod
    def demo_preset() -> tuple[dict[str, Any], str]:
        """The form filled with the shapes-world guides' settings (offline: no weights needed)."""
        from ..demo.evaluate import demo_prompt, demo_settings

        values = {**demo_settings(DEMO_DRAWER), "drawer": DEMO_DRAWER,
                  "prompts": demo_prompt(DEMO_DRAWER, DEMO_CAPTION)}
        return form_from_settings(values)
