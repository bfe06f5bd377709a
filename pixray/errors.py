"""The errors pixray reports to its user as one line (the CLI prints them; a server returns them)."""

from __future__ import annotations


class SettingsError(ValueError):
    """A setting is unknown, of the wrong type, or out of range. The message says which and why."""


class RunError(RuntimeError):
    """A run cannot go on (e.g. its loss stopped being a finite number); the message says why."""
