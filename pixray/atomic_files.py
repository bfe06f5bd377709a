"""Files written whole or not at all: readers never see a half-written file."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def create_beside(path: Path) -> tuple[int, Path]:
    """A new empty file beside ``path`` (``.tmp-XXXXXXXXXXXX`` and its suffix), open for writing: its
    descriptor and path. It gets the permissions ``open()`` gives a new file (read and write for all,
    less the umask), not ``tempfile.mkstemp``'s owner-only ones, so the file renamed into place from it
    can be read by whoever may read the user's other files (a web server, a shared volume's readers)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".tmp-{secrets.token_hex(6)}{path.suffix}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # 48 random bits taken already: draw again
            continue


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write`` into a temporary file beside it, then rename it into place
    (a failure leaves nothing behind, and an existing file is replaced only by a complete one)."""
    fd, tmp = create_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
