"""The errors pixray reports to its user as one line (the CLI prints them; a server returns them)."""

from __future__ import annotations

from collections.abc import Sequence


class SettingsError(ValueError):
    """A setting is unknown, of the wrong type, or out of range. The message says which and why."""


class RunError(RuntimeError):
    """A run cannot go on (e.g. its loss stopped being a finite number); the message says why."""


class MissingWeightsError(FileNotFoundError):
    """Weight files are not in the weights directory; ``files`` names them (file names only)."""

    def __init__(self, message: str, files: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.files = tuple(files)


class CheckpointError(ValueError):
    """A weight file is not in a layout its loader understands."""


#: What a user's mistake or a run's end raises: reported as its one-line message, never a traceback.
USER_ERRORS = (SettingsError, MissingWeightsError, CheckpointError, RunError)
