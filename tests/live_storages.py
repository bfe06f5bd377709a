"""Which tensor storages the operations inside a block made are still alive, and at most how many bytes
of them were alive at once: the memory a computation asks of its device's allocator, seen on the CPU
without that allocator's own reserve or fragmentation (a process's RSS holds both)."""

from __future__ import annotations

import gc

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveStorages(TorchDispatchMode):
    """Counts the storages the ops inside make. :meth:`alive` is the bytes of those still held;
    with ``peak_every`` N, :attr:`peak` is the most bytes alive at once, sampled after every N-th op
    (each sample walks every storage made: N trades exactness for speed)."""

    def __init__(self, peak_every: int = 0) -> None:
        super().__init__()
        self.made: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak_every, self.peak, self._ops = peak_every, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                known = self.made.get(storage.data_ptr())
                if known is None or known[0].expired():  # an address freed and given out again
                    self.made[storage.data_ptr()] = (StorageWeakRef(storage), storage.nbytes())
        self._ops += 1
        if self.peak_every and self._ops % self.peak_every == 0:
            self.peak = max(self.peak, self._live())
        return out

    def _live(self) -> int:
        for key in [key for key, (ref, _) in self.made.items() if ref.expired()]:
            del self.made[key]
        return sum(size for _, size in self.made.values())

    def alive(self) -> int:
        gc.collect()
        return self._live()
