"""Declaring and checking one setting: the building block of the settings tree.

A setting is a dataclass field made with :func:`option`, carrying its help text and its allowed
values. :func:`coerce` turns text (from the command line, YAML or Cog's ``settings`` input) or a
Python value into the declared type, and raises :class:`SettingsError` naming the key, the bad
value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Union

from .errors import SettingsError

__all__ = ["SettingsError", "Spec", "coerce", "option", "shown", "specs_of"]


@dataclasses.dataclass(frozen=True)
class Spec:
    """Everything known about one setting besides its value."""

    name: str
    type: Any
    default: Any
    help: str
    section: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    length: int | None = None  # exact item count of a list setting
    names_file: bool = False  # the value is a path on the machine that runs pixray
    flags: tuple[str, ...] = ()  # command-line spellings besides --name (Pixray's short forms)
    parse: Callable[[Any], Any] | None = None  # a value (each item of a list) in Pixray's forms -> plain
    describe: str | None = None  # the allowed values in words, where the type does not say them
    pipes: bool = False  # a text of '|'-separated entries (prompts): a list of texts is joined into one

    @property
    def is_list(self) -> bool:
        """Whether the setting holds a list."""
        return _unwrap(self.type)[2]

    @property
    def value_type(self) -> type:
        """The type of the value (of each item, for a list setting), without ``| None``."""
        return _unwrap(self.type)[0]

    @property
    def allowed(self) -> str:
        """Human-readable description of the allowed values, for errors and ``--help``."""
        if self.describe is not None:
            return self.describe
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        base, optional, is_list = _unwrap(self.type)
        text = _TYPE_WORDS.get(base, getattr(base, "__name__", str(base)))
        if self.pipes:
            text = "text ('|'-separated entries) or a list of texts"
        if is_list:
            count = _COUNT_WORDS.get(self.length, "a list of")
            forms = ("YAML list, comma-separated or WIDTHxHEIGHT" if _is_pair(self)
                     else "YAML list or comma-separated")
            text = f"{count} {_PLURAL_WORDS.get(base, text)} ({forms})"
        if self.minimum is not None and self.maximum is not None:
            text += f" from {self.minimum} to {self.maximum}"
        elif self.minimum is not None:
            text += f" >= {self.minimum}"
        elif self.maximum is not None:
            text += f" <= {self.maximum}"
        if optional:
            text += ", or none"
        return text


_TYPE_WORDS = {int: "an integer", float: "a number", str: "text", bool: "true or false"}
_PLURAL_WORDS = {int: "integers", float: "numbers", str: "texts", bool: "true/false values"}
_COUNT_WORDS = {2: "two", 3: "three", 4: "four"}
_NONE_WORDS = {"", "none", "null", "~"}
# Pixray's str2bool took t/y/f/n as well.
_TRUE_WORDS = {"true", "yes", "on", "1", "t", "y"}
_FALSE_WORDS = {"false", "no", "off", "0", "f", "n"}


def option(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    length: int | None = None,
    names_file: bool = False,
    flags: Sequence[str] = (),
    parse: Callable[[Any], Any] | None = None,
    describe: str | None = None,
    pipes: bool = False,
) -> Any:
    """A dataclass field that is a user-facing setting (help text and bounds in its metadata).

    ``names_file``: the value is a path to read on the machine that runs pixray, so a server never
    takes it from a request. ``flags``: more command-line spellings. ``parse``: turns a value (each
    item of a list) given in another accepted form into the plain one, raising ValueError if it is
    none of them; ``describe`` then says in words what is accepted. ``pipes``: a text setting of
    '|'-separated entries (prompts, image files), which also takes a list of texts (YAML, the Python
    API) as its entries.
    """
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None,
            "minimum": minimum, "maximum": maximum, "length": length, "names_file": names_file,
            "flags": tuple(flags), "parse": parse, "describe": describe, "pipes": pipes}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def specs_of(cls: type, section: str) -> list[Spec]:
    """The :class:`Spec` of every field of the settings dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        out.append(Spec(f.name, hints[f.name], default, section=section, **f.metadata))
    return out


def _unwrap(tp: Any) -> tuple[Any, bool, bool]:
    """(base type, is optional, is list) of an annotation like ``list[int] | None``."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0]
        origin = typing.get_origin(tp)
    if origin is list:
        return typing.get_args(tp)[0], optional, True
    return tp, optional, False


def coerce(spec: Spec, value: Any) -> Any:
    """``value`` converted to ``spec``'s type and checked against its bounds and choices."""
    base, optional, is_list = _unwrap(spec.type)
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS and optional):
        if optional:
            return None
        _fail(spec, value)
    if spec.pipes and isinstance(value, (list, tuple)):
        value = _joined_entries(spec, value)
    if is_list:
        # Text lists split on commas, numbers also on spaces ("384 216"), a pair also on x ("384x216").
        separators = r"," if base is str else r"[,\s]+"
        if _is_pair(spec):
            separators = r"[,\sxX]+"
        items = [p for p in re.split(separators, value) if p.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            _fail(spec, value)
        _check_count(spec, items)
        result: Any = [_scalar(spec, base, _parsed(spec, item, value), value) for item in items]
        if spec.length is not None and len(result) != spec.length:
            _fail(spec, value)
    else:
        result = _scalar(spec, base, _parsed(spec, value, value), value)
    for item in result if is_list else [result]:
        _check_range(spec, item, value)
    return result


def _is_pair(spec: Spec) -> bool:
    """Whether ``spec`` is two integers, a size ("384x216" reads as 384, 216)."""
    return spec.length == 2 and _unwrap(spec.type)[0] is int


def _joined_entries(spec: Spec, entries: list[Any] | tuple[Any, ...]) -> str:
    """A list of entries of a '|'-separated text setting as that text; each entry a text (or number)."""
    _check_count(spec, entries)
    entries = [_path_text(entry) for entry in entries]
    if any(not isinstance(entry, (str, int, float)) or isinstance(entry, bool) for entry in entries):
        _fail(spec, entries)
    return " | ".join(str(entry).strip() for entry in entries)


def _path_text(value: Any) -> Any:
    """A path object (``pathlib.Path``, what a Python caller passes for a file) as its text; any
    other value as it is."""
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        return path if isinstance(path, str) else value
    return value


def _check_count(spec: Spec, items: Sequence[Any]) -> None:
    if len(items) > MAX_LIST_ITEMS:
        raise SettingsError(f"setting {spec.name!r}: {len(items)} items is too many; expected at most "
                            f"{MAX_LIST_ITEMS}")


def _parsed(spec: Spec, value: Any, original: Any) -> Any:
    if spec.parse is None:
        return value
    try:
        return spec.parse(value)
    except SettingsError:
        raise
    except (TypeError, ValueError, OverflowError):
        _fail(spec, original)


def _scalar(spec: Spec, base: Any, value: Any, original: Any) -> Any:
    """``value`` as ``base``; errors quote ``original`` (the whole list for a list item)."""
    try:
        if base is bool:
            return _to_bool(value)
        if base is int:
            return _to_int(value)
        if base is float:
            if isinstance(value, bool) or (isinstance(value, str) and len(value) > MAX_NUMBER_CHARS):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):  # NaN passes every range check: refuse it here
                raise ValueError
            return number
        if base is str:
            value = _path_text(value)
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            text = str(value).strip()
            if len(text) <= MAX_TEXT_CHARS:
                return text
    except (TypeError, ValueError, OverflowError):
        _fail(spec, original)
    if base is str:
        raise SettingsError(f"setting {spec.name!r}: a text of {len(str(value))} characters is too long; "
                            f"expected at most {MAX_TEXT_CHARS}")
    raise TypeError(f"setting {spec.name!r} has unsupported type {base!r}")


def is_bool_word(text: str) -> bool:
    """Whether ``text`` is one of the words a true/false setting takes (true, yes, on, 1, t, y and
    their opposites, in any case)."""
    return text.strip().lower() in _TRUE_WORDS | _FALSE_WORDS


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and is_bool_word(value):
        return value.strip().lower() in _TRUE_WORDS
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, str) and len(value) > MAX_NUMBER_CHARS):
        raise ValueError(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return int(str(value).strip())


def _check_range(spec: Spec, item: Any, original: Any) -> None:
    if spec.choices is not None and item not in spec.choices:
        _fail(spec, original)
    if spec.minimum is not None and item < spec.minimum:
        _fail(spec, original)
    if spec.maximum is not None and item > spec.maximum:
        _fail(spec, original)


def _fail(spec: Spec, value: Any) -> typing.NoReturn:
    raise SettingsError(f"setting {spec.name!r}: {shown(value)} is not allowed; expected {spec.allowed}")


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for error messages.

    Errors quote what the user gave; a huge value (a megabyte string, a YAML alias bomb that
    expands to millions of items) must not become a huge message. The repr is built piecewise
    and abandoned once long enough, so even a value whose full repr would not fit in memory is cheap.
    """
    parts: list[str] = []
    size = 0
    for piece in _repr_pieces(value, depth=0):
        parts.append(piece)
        size += len(piece)
        if size > limit:
            text = "".join(parts)[:limit]
            return f"{text}… ({_size_words(value)})"
    return "".join(parts)


def _repr_pieces(value: Any, depth: int) -> typing.Iterator[str]:
    if isinstance(value, (list, tuple)) and depth < 20:
        yield "[" if isinstance(value, list) else "("
        for i, item in enumerate(value):
            if i:
                yield ", "
            yield from _repr_pieces(item, depth + 1)
        yield "]" if isinstance(value, list) else ")"
    elif isinstance(value, dict) and depth < 20:
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield f"{', ' if i else ''}{repr(key)[:100]}: "
            yield from _repr_pieces(item, depth + 1)
        yield "}"
    elif isinstance(value, str):
        yield repr(value[:200])
    elif isinstance(value, (int, float, bool, type(None))) and not (isinstance(value, int) and
                                                                   value.bit_length() > 256):
        yield repr(value)
    else:
        yield f"<{type(value).__name__}>"


def _size_words(value: Any) -> str:
    if isinstance(value, (str, list, tuple, dict)):
        return f"{len(value)} {'characters' if isinstance(value, str) else 'items'}"
    return type(value).__name__


#: Longest text a text setting takes (a prompt list of a few hundred words is ~3000 characters);
#: anything longer is a mistake or an attack, and would be copied into every image's metadata.
MAX_TEXT_CHARS = 20_000
#: Most items a list setting takes.
MAX_LIST_ITEMS = 256
#: Longest text read as a number (int() of a million digits takes seconds).
MAX_NUMBER_CHARS = 100
