"""Where a ResNet perceptor's pass goes, convolution by convolution: each of its convolutions timed alone.

Prints figures; passes or fails nothing. Builds the architecture with random weights, records the input
shape each convolution sees over a batch of cutouts, and times each distinct (convolution, input)
alone as the CPU's fast path computes it in a run, in bfloat16 and channels-last: oneDNN's convolution
with its ReLU fused (``torch.ops.mkldnn._convolution_pointwise``) forward, and the gradient of its input
alone backward (:func:`pixray.frozen_convolution.input_gradient`, what the fused convolutions' backward
calls). Each line: the convolution, how many of it a pass runs, ms and GFLOP/s forward and backward;
then the sum over the pass, to set beside a whole pass's time (``bench/perceptor_pass.py``).

    python bench/conv_rates.py --model RN50x4 --cuts 12
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable

import open_clip
import torch
from torch import nn

from pixray.frozen_convolution import input_gradient
from pixray.perceptors.catalog import CLIP_MODELS
from pixray.runtime import keep_freed_memory

Key = tuple[int, int, int, int, int, int]  # in, out, kernel, stride, padding, input side


def seen_convolutions(model: nn.Module, cuts: int, size: int) -> Counter[Key]:
    """How many times a pass over ``cuts`` images of ``size``² runs each (convolution, input side)."""
    seen: Counter[Key] = Counter()

    def record(conv: nn.Conv2d, args: tuple[torch.Tensor, ...]) -> None:
        seen[(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.padding[0],
              args[0].shape[-1])] += 1

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.rand(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return seen


def seconds(call: Callable[[], object], repeats: int = 5) -> float:
    """The mean of ``repeats`` calls after two warm-up calls."""
    call()
    call()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def timed(cin: int, cout: int, k: int, stride: int, pad: int, side: int,
          cuts: int) -> tuple[float, float, int]:
    """Seconds forward and backward of one such convolution over ``cuts`` inputs, and its FLOPs each way."""
    x = torch.randn(cuts, cin, side, side, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = (torch.randn(cout, cin, k, k) * 0.05).to(torch.bfloat16)
    b = torch.zeros(cout, dtype=torch.bfloat16)
    out_side = (side + 2 * pad - k) // stride + 1
    grad = torch.randn(cuts, cout, out_side, out_side, dtype=torch.bfloat16).contiguous(
        memory_format=torch.channels_last)
    forward = seconds(lambda: torch.ops.mkldnn._convolution_pointwise(
        x, w, b, [pad, pad], [stride, stride], [1, 1], 1, "relu", [], ""))
    backward = seconds(lambda: input_gradient(grad, x.shape, torch.channels_last, w, [stride, stride],
                                              [pad, pad], [1, 1], 1))
    return forward, backward, 2 * cuts * out_side**2 * cin * cout * k * k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="RN50x4", help="a catalog ResNet (RN50, RN101, RN50x4, ...)")
    parser.add_argument("--cuts", type=int, default=12)
    args = parser.parse_args()
    keep_freed_memory()  # as a run: buffers reused, not faulted in anew each call
    model = open_clip.create_model(CLIP_MODELS.lookup(args.model).architecture).visual.eval()
    size = model.image_size if isinstance(model.image_size, int) else model.image_size[0]
    total_forward = total_backward = total_flops = 0.0
    print(f"{args.model}, {args.cuts} cutouts of {size}², bfloat16, channels-last, "
          f"{torch.get_num_threads()} threads")
    for (cin, cout, k, stride, pad, side), count in seen_convolutions(model, args.cuts, size).items():
        forward, backward, flops = timed(cin, cout, k, stride, pad, side, args.cuts)
        total_forward += count * forward
        total_backward += count * backward
        total_flops += 2 * count * flops
        print(f"{cin:5d} -> {cout:4d}, {k}x{k} stride {stride} on {side:3d}² x {count:2d}: "
              f"forward {forward * 1e3:6.1f} ms ({flops / forward / 1e9:4.0f} GFLOP/s), "
              f"backward {backward * 1e3:6.1f} ms ({flops / backward / 1e9:4.0f} GFLOP/s)")
    rate = total_flops / (total_forward + total_backward) / 1e9
    print(f"the pass's convolutions: forward {total_forward:.2f} s, backward {total_backward:.2f} s, "
          f"{total_flops / 1e9:.0f} GFLOP, {rate:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
