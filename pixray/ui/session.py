"""One run behind the web page: the engine in a thread of its own, writing into its outdir as the
``pixray`` command does (fetching the weight files it misses first, as the command does), and telling
the page what happens as :class:`Fetching`, :class:`Progress`, :class:`Finished` and :class:`Failed`
events; :meth:`RunSession.stop` ends it after the step under way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..engine import Drawn, Run, Step
from ..errors import USER_ERRORS, RunError
from ..model_cache import ModelCache, fetching_missing
from ..options import SettingsError
from ..output import OutputWriter
from ..settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetching:
    """A weight file the run misses is being downloaded: ``done`` bytes of ``total`` (None where the
    host does not say)."""

    filename: str
    done: int
    total: int | None


@dataclass(frozen=True)
class Progress:
    """Steps done (``done`` of ``total``), the last step's loss (None before the first), the
    seconds the rest should take (None until two steps have been timed), and a new frame (else
    None: the page keeps the last one): every ``display_every``-th step's picture, as soon as it is
    drawn (``done`` is then its index: the steps before it)."""

    done: int
    total: int
    loss: float | None
    seconds_left: float | None
    frame: Image.Image | None = None


@dataclass(frozen=True)
class Finished:
    """The run ended: its image (as written), the files it left (PNG, SVG, videos), how many steps
    it took, whether Stop ended it early, and its seed (chosen at random when the settings left it)."""

    image: Image.Image
    files: list[Path]
    steps: int
    stopped: bool
    seed: int


@dataclass(frozen=True)
class Failed:
    """The run could not start or go on: a one-line message (the CLI's), and whether it is a
    settings mistake (shown by the field it names) rather than a missing file or a fault."""

    message: str
    settings_error: bool = False


Event = Fetching | Progress | Finished | Failed


@dataclass
class _Clock:
    """When the first step ended: the rest's pace leaves out model loading and the first step's
    warm-up."""

    first: float | None = None

    def seconds_left(self, done: int, total: int) -> float | None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        if done < 2:
            return None
        return (now - self.first) / (done - 1) * (total - done)


class RunSession:
    """A run of ``settings`` with models from ``models`` (kept by the page between runs).

    :meth:`start` begins it in a thread; :meth:`events` yields what happens until the run has
    finished or failed; :meth:`stop` asks it to end after the step under way (its image is kept).
    """

    def __init__(self, settings: Settings, models: ModelCache) -> None:
        self.settings = settings
        self.models = models
        self._events: queue.Queue[Event] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="pixray-ui-run", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the run after the step under way (or before the first, while models load)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def events(self) -> Iterator[Event]:
        """What happens, in order, ending with one :class:`Finished` or :class:`Failed`. Progress
        that piled up while the caller was busy comes as one event (the latest, with the latest
        frame)."""
        while True:
            event = self._events.get()
            while isinstance(event, (Fetching, Progress)) and not self._events.empty():
                later = self._events.get()
                if isinstance(later, Progress) and isinstance(event, Progress) and later.frame is None \
                        and event.frame is not None:
                    later = Progress(later.done, later.total, later.loss, later.seconds_left, event.frame)
                event = later
            yield event
            if not isinstance(event, (Fetching, Progress)):
                return

    def _work(self) -> None:
        try:
            self._events.put(self._run())
        except USER_ERRORS as exc:
            self._events.put(Failed(" ".join(str(exc).split()), isinstance(exc, SettingsError)))
        except Exception as exc:  # a fault of pixray's: the page says so and stays up
            log.exception("the run failed")
            self._events.put(Failed(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"))

    @contextlib.contextmanager
    def _fetching(self, filename: str) -> Iterator[Callable[[int, int | None], None]]:
        """The progress callback of one weight file's download: :class:`Fetching` events; after Stop it
        ends the download (what was fetched stays, and the next run's download resumes from it)."""
        self._events.put(Fetching(filename, 0, None))

        def progress(done: int, total: int | None) -> None:
            if self._stop.is_set():
                raise RunError(f"stopped while downloading {filename} (what was fetched is kept: the next "
                               "run resumes it)")
            self._events.put(Fetching(filename, done, total))

        yield progress

    def _run(self) -> Finished:
        writer = OutputWriter(self.settings)  # before Run: a bad outdir is reported before models load
        run = fetching_missing(lambda: Run(self.settings, models=self.models), self.models.weights_dir,
                               self._fetching)
        if self._stop.is_set():
            raise RunError("stopped before the first step")
        total = run.plan.iterations
        clock = _Clock()
        latest = Progress(0, total, None, None)

        def progress(step: Step) -> None:
            nonlocal latest
            if step.is_final:
                return
            done = step.index + 1
            # Reading the loss waits for the device: only on the steps the plan displays, as the CLI.
            loss = step.loss if run.plan.displays(step.index) else latest.loss
            latest = Progress(done, total, loss, clock.seconds_left(done, total))
            self._events.put(latest)

        def drawn(picture: Drawn) -> None:
            self._events.put(dataclasses.replace(latest, frame=picture.pil()))

        last = writer.save_run(run, progress, stop=self._stop.is_set, drawn=drawn)
        return Finished(last.pil(), writer.outputs(), last.index if last.is_final else last.index + 1,
                        stopped=not last.is_final, seed=run.seed)
