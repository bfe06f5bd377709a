"""Name -> object tables (drawers, perceptors, optimisers) whose errors list the valid names."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Generic, TypeVar

from .options import SettingsError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A read-only table of named entries of one kind (e.g. ``"drawer"``)."""

    def __init__(self, kind: str, entries: Mapping[str, T]) -> None:
        self.kind = kind
        self._entries = MappingProxyType(dict(entries))

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, name: str) -> T:
        """The entry called ``name``; an unknown name raises :class:`SettingsError` listing valid ones."""
        if name in self._entries:
            return self._entries[name]
        raise SettingsError(unknown_name_message(self.kind, name, list(self._entries)))


def unknown_name_message(kind: str, name: str, valid: list[str], also: Sequence[str] = ()) -> str:
    """``unknown drawer 'pixle' (did you mean 'pixel'?); valid: ...``; the closest name may also come
    from ``also``, names valid too but too many to list."""
    close = difflib.get_close_matches(name, [*valid, *also], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"
