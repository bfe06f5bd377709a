"""A stand-in for ``torch.cuda.make_graphed_callables`` on the CPU, for the tests of setting cuda_graphs and
bench/launch_count.py.

It keeps a captured graph's memory rules: the input is copied into a fixed tensor, the output and the
input's gradient are handed out as views of fixed tensors that the next replay overwrites, and the
graphs of one pool hold the activations of one pass at a time, so a backward whose forward is no longer
the pool's latest fails (on a GPU it would compute from overwritten memory).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch


class StandInCapture:
    """``make_graphed_callables`` and ``graph_pool_handle`` with a graph's rules, counting captures and
    replays; ``inside`` is true while a replay computes (what a GPU would do in one launch)."""

    def __init__(self) -> None:
        self.captures = self.replays = self.pools = 0
        self.inside = False
        # pool -> the serial number and activations of its last forward
        self._latest: dict[int, tuple[int, dict]] = {}
        self._serial = 0

    def graph_pool_handle(self) -> tuple[int, int]:
        self.pools += 1
        return (self.pools, 0)

    def make_graphed_callables(self, fn: Callable[[torch.Tensor], torch.Tensor],
                               sample_args: tuple[torch.Tensor], pool: tuple[int, int] | None = None
                               ) -> Callable[[torch.Tensor], torch.Tensor]:
        assert not torch.is_autocast_enabled("cpu"), "captured inside an autocast whose cache is on"
        (sample,) = sample_args
        assert sample.requires_grad
        self.captures += 1
        static_input = sample.detach().clone()
        static_output = torch.empty_like(fn(sample).detach())
        static_grad = torch.empty_like(static_input)
        stand_in, latest = self, self._latest

        class Graphed(torch.autograd.Function):
            @staticmethod
            def forward(ctx, images):
                if images.data_ptr() != static_input.data_ptr():
                    static_input.copy_(images)
                with torch.enable_grad(), stand_in._replaying():
                    leaf = static_input.detach().requires_grad_(True)
                    output = fn(leaf)
                stand_in._serial += 1
                ctx.serial = stand_in._serial
                latest[pool[0]] = (ctx.serial, {"leaf": leaf, "output": output})
                static_output.copy_(output.detach())
                stand_in.replays += 1
                return static_output.detach()

            @staticmethod
            def backward(ctx, grad):
                serial, kept = latest[pool[0]]
                assert serial == ctx.serial, "a graph's backward after another pass overwrote its activations"
                with stand_in._replaying():
                    (grad_in,) = torch.autograd.grad(kept["output"], kept["leaf"], grad)
                static_grad.copy_(grad_in)
                return static_grad.detach()

        return Graphed.apply

    @contextlib.contextmanager
    def _replaying(self) -> Iterator[None]:
        self.inside = True
        try:
            yield
        finally:
            self.inside = False
