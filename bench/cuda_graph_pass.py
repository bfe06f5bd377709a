"""Would CUDA graphs, or weights stored in bfloat16, speed up a step's CLIP passes on a GPU? One
perceptor's forward + backward to its input over a batch of cutouts (random weights, the real
architecture), timed three ways on the same inputs: eager as the engine runs it today (float32 weights
cast by autocast on every call), eager with the matmul weights stored in the pass's precision (as the
CPU path keeps them), and the first captured in a CUDA graph (``torch.cuda.make_graphed_callables``,
forward and backward replayed with one launch each); with ``--compile``, also the first through
``torch.compile`` (inductor's fused kernels; its compile time printed apart). Prints milliseconds per
pass and how far the other ways' input gradients are from eager's. CUDA only; a measurement for issue
19's GPU goal, not a path the engine takes (docs/performance.md says what compiling the CPU's pass gave).

    python bench/cuda_graph_pass.py --model ViT-B/16 --cuts 30 [--compile]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

import torch
from benchmark import random_perceptors
from torch import nn

from pixray.perceptors import Perceptor
from pixray.runtime import autocast, choose_precision


class Encode(nn.Module):
    """``perceptor.encode_image`` under autocast to ``dtype`` (without autocast's weight cache, which
    graph capture does not allow): (N,3,R,R) in [0,1] -> (N,D)."""

    def __init__(self, perceptor: Perceptor, dtype: torch.dtype) -> None:
        super().__init__()
        self.perceptor = perceptor
        self.dtype = dtype

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with autocast(images.device, self.dtype, cache=False):
            return self.perceptor.encode_image(images)


def input_gradient(encode: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """The gradient of the embeddings' sum with respect to ``images``: what a step backpropagates."""
    leaf = images.clone().requires_grad_(True)
    encode(leaf).float().sum().backward()
    return leaf.grad


def ms_per_pass(encode: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, passes: int) -> float:
    for _ in range(3):
        input_gradient(encode, images)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(passes):
        input_gradient(encode, images)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / passes * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B/16")
    parser.add_argument("--cuts", type=int, default=30)
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--passes", type=int, default=50)
    parser.add_argument("--compile", action="store_true", help="also time the pass through torch.compile")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # open_clip warns that random weights are random
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return
    device = torch.device("cuda")
    dtype = choose_precision(args.precision, device)
    eager = Encode(random_perceptors((args.model,), device)[0], dtype)
    stored = Encode(random_perceptors((args.model,), device, weights=dtype)[0], dtype)
    size = eager.perceptor.input_resolution
    generator = torch.Generator(device).manual_seed(0)
    images = torch.rand(args.cuts, 3, size, size, device=device, generator=generator)
    # make_graphed_callables swaps the forward of the module it is given: a wrapper of its own.
    graphed = torch.cuda.make_graphed_callables(Encode(eager.perceptor, dtype),
                                                (images.clone().requires_grad_(True),))
    reference = input_gradient(eager, images)
    print(f"{args.model} x {args.cuts} cuts, {str(dtype).removeprefix('torch.')}, "
          f"{torch.cuda.get_device_name(device)}:")
    ways = [("eager, float32 weights (today)", eager), (f"eager, weights stored in {dtype}", stored),
            ("CUDA graph, float32 weights", graphed)]
    if args.compile:
        compiled = torch.compile(Encode(eager.perceptor, dtype))
        start = time.perf_counter()
        input_gradient(compiled, images)  # compiles the forward and the backward
        torch.cuda.synchronize()
        print(f"  torch.compile: {time.perf_counter() - start:.1f} s to compile and run the first pass")
        ways.append(("torch.compile, float32 weights", compiled))
    for label, encode in ways:
        gradient = input_gradient(encode, images)
        difference = (gradient - reference).abs().max().item() / reference.abs().max().item()
        print(f"  {label}: {ms_per_pass(encode, images, args.passes):.2f} ms/pass; input gradient's largest "
              f"difference from eager's {difference:.1e} of its largest value")


if __name__ == "__main__":
    main()
