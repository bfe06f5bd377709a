"""What the command lines (``pixray``, ``python -m pixray.weights``) share about their console."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

    from .engine import Run, Step


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line, without the usage dump (the message names the
    problem, and ``--help`` says the rest)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: The exit code when the reader of standard output went away first (``pixray ... | true``), as
#: Python's documentation advises for SIGPIPE's stand-in.
STDOUT_CLOSED = 1


def stdout_may_close(command: Callable[[], int]) -> int:
    """``command()``'s exit code, or :data:`STDOUT_CLOSED`, quietly, when what reads standard output
    stops reading before it is written (a traceback, or a wrong error, otherwise; whatever files the
    command wrote are kept). Output still buffered is written before returning, so the pipe's end is
    met here rather than when the interpreter exits."""
    try:
        code = command()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Later writes (the interpreter's own flush at exit) go nowhere instead of failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return STDOUT_CLOSED


@contextlib.contextmanager
def download_bar(filename: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on standard error for downloading ``filename``: the download's progress callback
    (bytes done, bytes in all where known), the bar closed after."""
    from tqdm import tqdm

    with tqdm(desc=filename, unit="B", unit_scale=True, unit_divisor=1024, **_bar_output()) as bar:
        def progress(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress


@contextlib.contextmanager
def progress_bar(total: int, unit: str, quiet: bool, label: str | None = None) -> Iterator[tqdm]:
    """A progress bar on standard error (hidden when ``quiet``) of ``total`` ``unit``s, after ``label``
    where given. While it is up, log messages are written above it, each on its own line, instead of
    into the bar's line."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    # Only a quiet bar passes disable: otherwise tqdm's own $TQDM_DISABLE decides.
    options = {**_bar_output(), **({"disable": True} if quiet else {})}
    with tqdm(total=total, unit=unit, desc=label, **options) as bar, logging_redirect_tqdm(tqdm_class=tqdm):
        yield bar


@contextlib.contextmanager
def run_bar(run: Run, quiet: bool) -> Iterator[Callable[[Step], None]]:
    """A run's progress bar, labelled with its seed (what repeats the picture when it was chosen at
    random, as Pixray said it); yields the run's progress callback: a tick a step, and the loss shown
    every ``display_every`` steps (reading it waits for the device)."""
    with progress_bar(run.plan.iterations, "it", quiet, f"seed {run.seed}") as bar:
        def progress(step: Step) -> None:
            if step.is_final:
                return
            if run.plan.displays(step.index):
                bar.set_postfix(loss=f"{step.loss:.4f}", refresh=False)
            bar.update(1)

        yield progress


@contextlib.contextmanager
def animation_bar(iterations: int, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """An animation's progress bar of ``iterations`` steps a picture; yields its ``progress(done,
    total)`` callback."""
    with progress_bar(iterations, "it", quiet) as bar:
        yield lambda done, total: bar.update(done - bar.n)


#: Seconds between the lines a progress bar writes where standard error is not a terminal.
LINE_INTERVAL = 30.0


def _bar_output() -> dict[str, Any]:
    """tqdm's options for a bar on standard error: redrawn in place on a terminal (or a notebook's
    output); elsewhere (a log file, a pipe, ``docker logs`` of a container without a terminal), where
    every redraw would pile onto one line, a line of its own at most every :data:`LINE_INTERVAL`
    seconds, and the last one as it ends."""
    stream = sys.stderr
    if stream is None:  # no console at all (pythonw)
        return {"disable": True}
    if stream.isatty() or type(stream).__module__.startswith("ipykernel"):
        return {"file": stream, "dynamic_ncols": True}
    return {"file": _Lines(stream), "mininterval": LINE_INTERVAL, "maxinterval": 2 * LINE_INTERVAL}


class _Lines:
    """A stream for tqdm that writes each state of the bar as a line of its own: tqdm starts each
    redraw with a carriage return, and clears the bar with one followed by spaces."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        for piece in re.split(r"[\r\n]", text):
            if piece.strip():
                self.stream.write(piece.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()
