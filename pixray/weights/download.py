"""Fetching manifest files: resumable, checksum-verified, renamed into place only when complete.

A file downloads to ``NAME.part`` (resumed with an HTTP Range request when a partial file is
there), is checked against the manifest's size and sha256, and only then renamed to ``NAME``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: downloads are not serialised there
    fcntl = None  # type: ignore[assignment]

from . import WEIGHTS_ENV, CheckpointError, WeightFile, stamp_path, verify

#: progress(bytes_done, bytes_total or None), called as data arrives; an exception it raises ends the
#: download, the partial file kept for the next one to resume.
Progress = Callable[[int, "int | None"], None]
_CHUNK = 1 << 20


class DownloadError(OSError):
    """No URL of a manifest entry could be fetched, or what was fetched could not be written."""


class CannotWriteError(DownloadError):
    """What was fetched could not be written (a full disk, a quota): every other URL would fail the same
    way, and fetching elsewhere is not the remedy."""


@contextlib.contextmanager
def _writing(part: Path) -> Iterator[None]:
    """Raise a failure to write ``part`` as :class:`CannotWriteError`, saying what to do."""
    try:
        yield
    except OSError as exc:
        kept = "; what was fetched is kept for resuming" if part.is_file() and part.stat().st_size else ""
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise CannotWriteError(f"cannot write {str(part)!r}: {exc.strerror or exc}{kept}. "
                               f"{'Free space there, or point' if full else 'Point'} the weights_dir setting "
                               f"or ${WEIGHTS_ENV} at another directory") from None


def download(entry: WeightFile, directory: Path, progress: Progress | None = None,
             timeout: float = 30.0) -> Path:
    """Fetch ``entry`` into ``directory`` unless a verified copy is there; returns its path."""
    target = directory / entry.filename
    if target.is_file():
        verify(target, entry)
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with _one_download_at_a_time(directory):
        if target.is_file():  # another process fetched it while this one waited
            verify(target, entry)
            return target
        return _download(entry, directory, progress, timeout)


@contextlib.contextmanager
def _one_download_at_a_time(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (the lock goes with the process: nothing to clean up),
    so two processes sharing it (two servers starting on one weights volume, two shells) never
    append to the same ``.part`` file; the second waits, then finds the file there."""
    if fcntl is None:
        yield
        return
    handle = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def _download(entry: WeightFile, directory: Path, progress: Progress | None, timeout: float) -> Path:
    target, part = directory / entry.filename, directory / f"{entry.filename}.part"
    failures = []
    for url in entry.urls:
        try:
            _fetch(url, part, progress, timeout)
            break
        except CannotWriteError:
            raise
        except (OSError, ValueError) as exc:
            failures.append(f"{url}: {exc}")
    else:
        kept = f"; the partial file {str(part)!r} is kept for resuming" if part.exists() else ""
        raise DownloadError(f"could not download {entry.filename!r}: {'; '.join(failures)}{kept}. Offline, "
                            f"fetch it on another machine and copy it to {str(target)!r}")
    try:
        verify(part, entry)
    except CheckpointError:
        part.unlink()
        raise
    os.replace(part, target)
    if stamp_path(part).is_file():  # a rename keeps size and mtime, so the stamp stays valid
        stamp_path(part).replace(stamp_path(target))
    return target


def _fetch(url: str, part: Path, progress: Progress | None, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (starting over if the server ignores the Range)."""
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "pixray"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and done:  # nothing left to fetch: the partial file is complete
            return
        raise
    with response:
        if response.status != 206:
            done = 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length else None
        with _writing(part):
            f = part.open("ab" if done else "wb")
        try:
            while chunk := response.read(_CHUNK):  # a network error here is the URL's failure
                with _writing(part):
                    f.write(chunk)
                    f.flush()
                done += len(chunk)
                if progress:
                    progress(done, total)
        finally:
            with _writing(part):  # closing flushes again what a full disk refused
                f.close()
