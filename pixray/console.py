"""What the command lines (``pixray``, ``python -m pixray.weights``) share about their console."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm

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

    with tqdm(desc=filename, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr) as bar:
        def progress(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress


@contextlib.contextmanager
def progress_bar(total: int, unit: str, quiet: bool) -> Iterator[tqdm]:
    """A progress bar on standard error (hidden when ``quiet``) of ``total`` ``unit``s. While it is up,
    log messages are written above it, each on its own line, instead of into the bar's line."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with (tqdm(total=total, disable=quiet, unit=unit, dynamic_ncols=True, file=sys.stderr) as bar,
          logging_redirect_tqdm(tqdm_class=tqdm)):
        yield bar
