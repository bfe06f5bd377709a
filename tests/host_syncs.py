"""Finds, on the CPU, what would make a GPU step wait for the device: for the tests that keep the step
loop free of host synchronisations and for bench/sync_check.py without a GPU.

On a GPU the host queues a step's work and runs ahead; each of these makes it stop until the device has
done everything queued so far:

- a tensor made from host data (``torch.tensor``, ``new_tensor``, ``as_tensor``): copied to the device
  with a wait (assigning a Python number, ``t[i] = 1.0``, looks the same on the CPU, though on a GPU it
  is a fill: write ``t[i].fill_(1.0)``);
- a tensor made without a device (``torch.zeros(3)``, ``torch.arange(n)``): it lives on the host, and
  reaching the step's tensors means such a copy;
- a host tensor made before the step and moved to a device in it (``held.to(image)``): the same copy,
  every step (a module's parameters and buffers are left out: a run moves its modules to the device
  when it makes them, so there these calls change at most the dtype);
- a value read back (``.item()``, ``bool(t)``, ``float(t)``, ``int(t)``, ``.tolist()``, ``.numpy()``,
  ``.cpu()``, ``.to("cpu")``), and an operation whose output size depends on the values (``nonzero``,
  indexing with a boolean mask, ``masked_select``, ``repeat_interleave`` by counts without its
  ``output_size``, ``unique``, ``bincount``).

On the CPU none of these costs anything, so they are only seen by looking: :class:`HostSyncs` records
each with the line of the project's (or a library's) code that asked for it. torch's own optimisers are
not looked into: they keep their step counts in host memory on a GPU, and read them there.
"""

from __future__ import annotations

import gc
import weakref
from collections import Counter
from pathlib import Path
from types import TracebackType

import torch
from call_sites import calling_frame
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

#: aten operations that read values on the host or size their output by them. ``_linalg_check_errors``
#: is how ``torch.linalg.inv``, ``solve``, ``cholesky``... raise on a singular matrix: it reads the
#: factorisation's status back (their ``_ex`` forms do not); ``histc``'s CUDA kernel reads the input's
#: least and greatest values back when given no range.
_READS = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "_unique2", "unique_dim",
                    "unique_consecutive", "equal", "is_nonzero", "bincount", "_linalg_check_errors",
                    "histc"})

#: Functions that make a new tensor, on the default device (the host) unless given one.
_FACTORIES = frozenset({
    torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.linspace, torch.logspace,
    torch.eye, torch.rand, torch.randn, torch.randint, torch.randperm, torch.normal})

#: Tensor methods that copy a tensor into host memory (on the CPU they return it without an operation).
_HOST_COPIES = frozenset({torch.Tensor.cpu, torch.Tensor.tolist, torch.Tensor.numpy})


def _site() -> str | None:
    """``file:line code`` of the innermost frame outside torch and this file (a file of the checkout, or
    of a package); None inside torch's optimisers (see the module docstring)."""
    found = calling_frame(Path(__file__), give_up_in="optim")
    if found is None:
        return None
    name, frame = found
    return f"{name}:{frame.lineno} {(frame.line or '').strip()}"


def _has_device(args: tuple, kwargs: dict) -> bool:
    """Whether a ``Tensor.to`` call names a device: a device (or its name), or a tensor to match."""
    return kwargs.get("device") is not None or any(isinstance(a, torch.device | torch.Tensor | str)
                                                   for a in args[1:])


def _names_the_host(args: tuple, kwargs: dict) -> bool:
    """Whether a ``Tensor.to`` call asks for host memory by name ("cpu": a device object may be a run's,
    which on the CPU is the host too)."""
    return any(isinstance(a, str) and torch.device(a).type == "cpu"
               for a in (*args[1:], kwargs.get("device")))


class _Dispatched(TorchDispatchMode):
    def __init__(self, found: Counter[str]) -> None:
        super().__init__()
        self.found = found

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        kind = None
        if name == "lift_fresh":
            kind = "tensor from host data"
        elif name in _READS:
            kind = f"value read ({name})"
        elif (name == "repeat_interleave" and isinstance(args[0], torch.Tensor) and len(args) == 1
              and (kwargs or {}).get("output_size") is None):
            kind = "value read (repeat_interleave by counts, no output_size)"
        elif name.startswith("index") and len(args) > 1 and isinstance(args[1], list | tuple) and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]):
            kind = "value read (boolean mask index)"
        if kind is not None and (site := _site()) is not None:
            self.found[f"{kind} @ {site}"] += 1
        return func(*args, **(kwargs or {}))


def _module_tensors() -> dict[int, weakref.ref[torch.Tensor]]:
    """Every live module's parameters and buffers, by identity."""
    held = {}
    for thing in gc.get_objects():
        if issubclass(type(thing), nn.Module):  # isinstance would ask deprecated proxies their class
            for tensor in (*thing.parameters(recurse=False), *thing.buffers(recurse=False)):
                held[id(tensor)] = weakref.ref(tensor)
    return held


class _Called(TorchFunctionMode):
    def __init__(self, found: Counter[str]) -> None:
        super().__init__()
        self.found = found
        # Tensors made inside, and the modules' (see the module docstring), by identity.
        self.made: dict[int, weakref.ref[torch.Tensor]] = _module_tensors()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = None
        if func in _FACTORIES and kwargs.get("device") is None:
            kind = f"tensor made without a device (torch.{func.__name__})"
        elif func in _HOST_COPIES or (func is torch.Tensor.to and _names_the_host(args, kwargs)):
            kind = f"value read ({func.__name__})"
        elif func is torch.Tensor.to and not self._made(args[0]) and _has_device(args, kwargs):
            kind = "tensor made before the step moved to a device"
        if kind is not None and (site := _site()) is not None:
            self.found[f"{kind} @ {site}"] += 1
        out = func(*args, **kwargs)
        for tensor in out if isinstance(out, tuple | list) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.made[id(tensor)] = weakref.ref(tensor)
        return out

    def _made(self, tensor: torch.Tensor) -> bool:
        held = self.made.get(id(tensor))
        return held is not None and held() is tensor


class HostSyncs:
    """While entered, records each place that would synchronise a GPU's host with it (the module
    docstring), as ``found``: 'kind @ file:line code' -> how many times."""

    def __init__(self) -> None:
        self.found: Counter[str] = Counter()
        self._modes = (_Called(self.found), _Dispatched(self.found))

    def __enter__(self) -> HostSyncs:
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(kind, error, trace)

    def report(self) -> str:
        """One line per place, most frequent first; empty if none."""
        return "\n".join(f"{count} x {place}" for place, count in self.found.most_common())
