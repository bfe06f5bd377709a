"""Reading ``torch.save`` files that may carry training state from libraries that are not installed.

Lightning checkpoints of 2020-21 (the VQGANs) pickle callback objects next to the weights, e.g.
``pytorch_lightning.callbacks.ModelCheckpoint``. ``torch.load(weights_only=True)`` refuses them and
full unpickling would need that library (and would run whatever the file names). The fallback
here keeps torch's tensor rebuilding and plain containers, and turns every other class into an
inert placeholder, so the weights load and nothing else runs.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from . import CheckpointError

_SAFE_BUILTINS = {"set", "frozenset", "slice", "range", "complex", "bytearray", "bytes", "int", "float",
                  "str", "list", "dict", "tuple", "bool"}


class _Placeholder:
    """Stands in for a class the checkpoint names but that is not needed to use the weights."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _allowed(module: str, name: str) -> bool:
    if module == "builtins":
        return name in _SAFE_BUILTINS
    if module == "collections":
        return name == "OrderedDict"
    if module == "torch" or module.startswith("torch."):
        return name.startswith("_rebuild") or name.endswith("Storage") or name in ("Size", "device", "dtype")
    return False


class _TolerantUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if _allowed(module, name):
            return super().find_class(module, name)
        return _Placeholder


_TOLERANT = SimpleNamespace(Unpickler=_TolerantUnpickler,
                            load=lambda f, **kw: _TolerantUnpickler(f, **kw).load(),
                            __name__="pixray_tolerant_pickle")


def read_torch_file(path: Path, mapped: bool = False) -> Any:
    """The object a ``torch.save`` file holds, on the CPU; raises :class:`CheckpointError` if unreadable.

    ``mapped``: the tensors of a file in torch's zip format (every ``torch.save`` since torch 1.6) are
    mapped from the file rather than read, so only those touched are ever read (a Lightning
    checkpoint's optimiser state, two thirds of a VQGAN file, never is). A mapped tensor is the file's
    pages: copy what is kept, since a file rewritten in place would change it, or fault it if cut short.
    """
    options: dict[str, Any] = {"map_location": "cpu", "mmap": mapped and zipfile.is_zipfile(path)}
    try:
        return torch.load(path, weights_only=True, **options)
    except pickle.UnpicklingError:
        pass  # names classes beyond tensors: retry tolerantly
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(f"{str(path)!r} is not a readable torch checkpoint: {exc}") from exc
    try:
        return torch.load(path, weights_only=False, pickle_module=_TOLERANT, **options)
    except Exception as exc:
        raise CheckpointError(f"{str(path)!r} is not a readable torch checkpoint: {exc}") from exc
