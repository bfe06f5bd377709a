"""A perceptor's pass over a step's cutouts, replayed as a CUDA graph (setting ``cuda_graphs``).

On a fast GPU a step can be bound by launching kernels rather than by running them: a ViT-B/16 pass
launches over a hundred forward and as many backward, each costing the host microseconds, more than
many of them take to run. Captured once as a CUDA graph (``torch.cuda.make_graphed_callables``), the
pass's forward is one launch and its backward another, the same kernels on the same values.

A captured graph keeps its activations in fixed memory, which its next forward overwrites, so a
graphed pass's backward must run before the next pass of the same graph. The engine uses it only for
passes whose backward follows at once, and calls the perceptor itself for the others. Each graph has
memory of its own (what its pass keeps for the backward, and its input, output and gradient), held for
the run: a run's graphs hold the sum of its perceptors' passes, where passes computed as before free
theirs after each backward.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from ..runtime import autocast
from .perceptor import Perceptor

log = logging.getLogger(__name__)

#: (N,3,R,R) cutouts in [0,1] -> (N,D) float32 unit embeddings, differentiable with respect to them.
Encode = Callable[[torch.Tensor], torch.Tensor]


def graphs_possible(device: torch.device) -> bool:
    """Whether passes on ``device`` can be captured: CUDA devices only."""
    return device.type == "cuda"


class _OwnGradient(torch.autograd.Function):
    """The identity, whose backward hands on a copy of its gradient: a graph's gradient lives in
    memory its next replay overwrites, and must not become a tensor's ``.grad``."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, images: torch.Tensor) -> torch.Tensor:
        return images.view_as(images)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        return grad.clone()


class GraphedPasses:
    """The image passes of one run's perceptors, each captured as a CUDA graph on its first call with
    a batch shape and replayed after (one per perceptor and shape; a run's passes keep one shape).
    Runs stepped in turn with the same perceptors may share one (an animation's pictures): their graphs'
    memory is then held once.

    ``dtype`` is the precision the run computes in: the pass autocasts to it inside the graph
    (autocast's weight cache, which capture does not allow, off).
    """

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        # None: the pass could not be captured, and is computed as before.
        self._graphs: dict[tuple[Perceptor, tuple[int, ...]], Encode | None] = {}

    @property
    def captures(self) -> int:
        """Graphs captured so far (each cost a few eager passes)."""
        return sum(graph is not None for graph in self._graphs.values())

    def encode(self, perceptor: Perceptor, images: torch.Tensor) -> torch.Tensor | None:
        """``perceptor``'s (N,D) float32 unit embeddings of ``images`` (N,3,R,R) in [0,1], by replaying
        its graph for this shape (captured now if new); None where this pass cannot be captured (said
        once, in a warning): the caller computes it as before. The caller runs the backward of what it
        computes from them before the next call with this perceptor and shape, or never."""
        key = (perceptor, tuple(images.shape))
        if key not in self._graphs:
            self._graphs[key] = self._capture(perceptor, images)
        graph = self._graphs[key]
        if graph is None:
            return None
        return graph(_OwnGradient.apply(images)).clone()  # the graph's output, too, is overwritten

    def _capture(self, perceptor: Perceptor, images: torch.Tensor) -> Encode | None:
        dtype = self.dtype

        def encode(cutouts: torch.Tensor) -> torch.Tensor:
            with autocast(cutouts.device, dtype, cache=False):
                return perceptor.encode_image(cutouts)

        sample = images.detach().clone().requires_grad_(True)
        try:
            graphed = torch.cuda.make_graphed_callables(encode, (sample,))
        except RuntimeError as exc:  # out of memory too: capturing needs more than the pass alone
            # An optional speed-up: the run goes on as it would without it.
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            log.warning("setting 'cuda_graphs': %s's pass over %d cutouts could not be captured as a CUDA "
                        "graph (%s); it is computed as without cuda_graphs", perceptor.name, images.shape[0],
                        reason)
            return None
        return graphed
