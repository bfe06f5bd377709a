"""A stand-in for ``torch.cuda.make_graphed_callables`` on the CPU, for the tests of setting cuda_graphs and
bench/launch_count.py.

It keeps a captured graph's memory rules: the input is copied into a fixed tensor, the output and the
input's gradient are handed out as views of fixed tensors that the next replay overwrites, and a graph
holds the activations of one pass at a time, so a backward whose forward is no longer the graph's
latest fails (on a GPU it would compute from overwritten memory).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch


class StandInCapture:
    """``make_graphed_callables`` with a graph's rules, counting captures and replays; ``inside`` is true
    while a replay computes (what a GPU would do in one launch)."""

    def __init__(self) -> None:
        self.captures = self.replays = 0
        self.inside = False

    def make_graphed_callables(self, fn: Callable[[torch.Tensor], torch.Tensor],
                               sample_args: tuple[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        assert not torch.is_autocast_enabled("cpu"), "captured inside an autocast whose cache is on"
        (sample,) = sample_args
        assert sample.requires_grad
        self.captures += 1
        static_input = sample.detach().clone()
        static_output = torch.empty_like(fn(sample).detach())
        static_grad = torch.empty_like(static_input)
        stand_in = self
        latest: dict[str, torch.Tensor] = {}  # the activations of the graph's last forward

        class Graphed(torch.autograd.Function):
            @staticmethod
            def forward(ctx, images):
                if images.data_ptr() != static_input.data_ptr():
                    static_input.copy_(images)
                with torch.enable_grad(), stand_in._replaying():
                    leaf = static_input.detach().requires_grad_(True)
                    output = fn(leaf)
                ctx.activations = latest["leaf"] = leaf
                latest["output"] = output
                static_output.copy_(output.detach())
                stand_in.replays += 1
                return static_output.detach()

            @staticmethod
            def backward(ctx, grad):
                overwritten = latest["leaf"] is not ctx.activations
                assert not overwritten, "a graph's backward after its next pass overwrote its activations"
                with stand_in._replaying():
                    (grad_in,) = torch.autograd.grad(latest["output"], latest["leaf"], grad)
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
