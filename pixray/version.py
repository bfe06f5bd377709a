"""The installed pixray's version, for ``pixray --version`` and the PNGs' ``Software`` chunk."""

from __future__ import annotations

import functools
import importlib.metadata


@functools.cache  # read once: every frame's metadata carries it
def installed_version() -> str:
    """The version pip installed (``"0.1.0"``), or ``"unknown version"`` for a checkout run in place."""
    try:
        return importlib.metadata.version("pixray")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"
