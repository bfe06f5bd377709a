"""A class that pickles under a library's name, as 2020-21 Lightning checkpoints hold callback objects,
and that cannot be imported again afterwards, as Lightning is not installed here."""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator


@contextlib.contextmanager
def class_of_an_uninstalled_library() -> Iterator[type]:
    """``pytorch_lightning_fake.ModelCheckpoint``, importable (so picklable) only inside the block."""
    module = types.ModuleType("pytorch_lightning_fake")

    class ModelCheckpoint:
        best_model_path = "x"

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = module.__name__, "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint
    sys.modules[module.__name__] = module
    try:
        yield ModelCheckpoint
    finally:
        del sys.modules[module.__name__]
