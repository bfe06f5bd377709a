"""Pixray's ways of writing setting values, read as Pixray reads them.

Each ``parse_*`` function takes a value as a user wrote it (text from a command line or YAML, or
a number) and returns it in the plain form the settings tree keeps, raising ValueError for
anything Pixray would not accept either.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import PurePosixPath
from typing import Any

_UNIT = re.compile(r"^(\d*\.?\d+)\s*(i|iter|iterations|p|%|percent)?$")
_ITERATION_UNITS = ("i", "iter", "iterations")


def parse_seed(value: Any) -> Any:
    """A seed: an integer, or any other text turned into one as Pixray does (the first 32 bits of
    ``sha512(text) mod 2^32``), so a seed written as words reproduces."""
    if isinstance(value, str) and not value.strip().isdigit() and value.strip().lower() not in ("", "none"):
        digest = hashlib.sha512(value.encode()).digest()
        return int.from_bytes(digest, "big") % 0x100000000
    return value


def parse_unit(value: Any, default_unit: str) -> str:
    """``10``, ``"10 iterations"``, ``"10i"``, ``"5%"``, ``"5p"``... as ``"10i"`` or ``"5%"``."""
    if isinstance(value, bool):
        raise ValueError(value)
    text = str(value).strip().lower()
    match = _UNIT.match(text)
    if not match or not math.isfinite(float(match.group(1))):
        raise ValueError(value)
    unit = match.group(2) or default_unit
    return f"{match.group(1)}{'i' if unit in _ITERATION_UNITS else '%'}"


def parse_iterations_unit(value: Any) -> str:
    """A count of iterations, plain numbers meaning iterations (``save_every``, ``display_every``)."""
    return parse_unit(value, "i")


def parse_percent_unit(value: Any) -> str:
    """A point in the run, plain numbers meaning percent, at most 100 (``learning_rate_drops``)."""
    unit = parse_unit(value, "%")
    if unit.endswith("%") and float(unit[:-1]) > 100:
        raise ValueError(value)
    return unit


def iterations_of(unit: str, total: int) -> int:
    """A :func:`parse_unit` value as a whole number of iterations of a run of ``total``
    (Pixray's arithmetic: ``int(float(n) * 0.01 * total)`` for percent)."""
    number = float(unit[:-1])
    return int(number) if unit.endswith("i") else int(number * 0.01 * total)


def parse_loss_entry(value: Any) -> str:
    """A custom loss as ``name`` or Pixray's ``name:weight`` (a finite weight)."""
    if not isinstance(value, str):
        raise ValueError(value)
    name, _, weight = value.strip().partition(":")
    if not name.strip():
        raise ValueError(value)
    if weight and not math.isfinite(float(weight)):
        raise ValueError(value)
    return f"{name.strip()}:{float(weight):g}" if weight else name.strip()


def split_loss_entry(entry: str) -> tuple[str, float]:
    """``"smoothness:0.5"`` -> ("smoothness", 0.5); no weight is 1."""
    name, _, weight = entry.partition(":")
    return name, float(weight) if weight else 1.0


def parse_png_name(value: Any) -> str:
    """An output file name inside the outdir (a relative path such as Pixray's example files use,
    ``outputs/hello.png``, but never absolute nor climbing out with ``..``); any other suffix
    becomes ``.png`` and none gets it, as in Pixray."""
    if not isinstance(value, str) or not value.strip() or "\\" in value:
        raise ValueError(value)
    path = PurePosixPath(value.strip())
    if path.is_absolute() or ".." in path.parts or path.name in ("", "."):
        raise ValueError(value)
    return str(path if path.suffix.lower() == ".png" else path.with_suffix(".png"))
