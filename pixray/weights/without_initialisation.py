"""Building a network whose every weight a checkpoint will overwrite, without drawing random weights first.

Layers draw their initial weights from random distributions as they are built, most of a CLIP's or a
VQGAN's build time, and all of it thrown away when the checkpoint is loaded (figures in docs/performance.md).
Inside :func:`built_without_initialisation` the in-place random fills (``uniform_``, ``normal_`` and
the like, whichever ``torch.nn.init`` function or layer calls them) leave their tensors as allocated
and the random factories (``torch.randn``, ``torch.rand``) give theirs unfilled, so no random number
is drawn; everything else a constructor computes (``fill_``, ``triu_``, ``arange``: masks and other
buffers no checkpoint holds) runs as usual, unlike with :mod:`~pixray.weights.without_storage`'s meta
tensors. Only for networks loaded with a strict ``load_state_dict`` afterwards, which overwrites every
parameter and saved buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode

M = TypeVar("M")

_FACTORY_OPTIONS = ("dtype", "layout", "device", "pin_memory")


class _RandomNumbersSkipped(TorchDispatchMode):
    """An in-place random fill returns its tensor unfilled, a random factory an unfilled tensor
    (``torch.empty`` of its size and options); every other op runs as usual."""

    def __init__(self) -> None:
        super().__init__()
        aten = torch.ops.aten
        self.fills = {aten.uniform_, aten.normal_, aten.random_, aten.exponential_, aten.cauchy_,
                      aten.log_normal_, aten.geometric_, aten.bernoulli_}
        self.factories = {aten.randn, aten.rand}  # each overload's first argument is the size

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func.overloadpacket in self.fills:
            return args[0]
        if func.overloadpacket in self.factories:
            if "out" in kwargs:  # torch.randn(size, out=t): t, as it is
                return kwargs["out"]
            return torch.empty(args[0], **{k: kwargs[k] for k in _FACTORY_OPTIONS if k in kwargs})
        return func(*args, **kwargs)


def built_without_initialisation(build: Callable[[], M]) -> M:
    """``build()`` with its layers' random initial weights left undrawn (their memory as allocated:
    arbitrary values); load every weight afterwards with a strict ``load_state_dict``."""
    with _RandomNumbersSkipped():
        return build()
