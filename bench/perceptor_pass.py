"""One perceptor's forward + backward to its input over a batch of cutouts: the cost of a step's CLIP pass.

Prints seconds per pass and peak RSS for the fast path (FastSelfAttention, LeanQuickGELU) or open_clip's
stock modules, one path per process so their peak memory is apart. Random weights of the real
architecture; passes or fails nothing. Also prints what a large float32 matmul reaches here, the
ceiling of a matmul-bound pass.

    python bench/perceptor_pass.py --model ViT-B/16 --cuts 30 --path fast
    python bench/perceptor_pass.py --model ViT-B/16 --cuts 30 --path stock
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import time

import open_clip
import torch

from pixray.perceptors import CLIP_MODELS, Perceptor
from pixray.perceptors.fused_bias_linear import linear
from pixray.runtime import autocast, choose_precision, keep_freed_memory, weights_precision


def matmul_gflops() -> float:
    """GFLOP/s of ViT-B/16's first MLP layer over 30 cutouts in float32, (5910x768) by (3072x768)ᵀ plus
    a bias, computed as the fast path computes its float32 linear layers (oneDNN's matmul or torch's)."""
    x, weight, bias = torch.randn(5910, 768), torch.randn(3072, 768), torch.zeros(3072)
    linear(x, weight, bias)
    start = time.perf_counter()
    for _ in range(5):
        linear(x, weight, bias)
    return 2 * 5910 * 768 * 3072 * 5 / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B/16")
    parser.add_argument("--cuts", type=int, default=30)
    parser.add_argument("--path", choices=["fast", "stock"], default="fast")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    keep_freed_memory()
    logging.basicConfig(level=logging.ERROR)
    device = torch.device("cpu")
    dtype = choose_precision(args.precision, device)
    torch.manual_seed(0)
    model = open_clip.create_model(CLIP_MODELS.lookup(args.model).architecture)
    perceptor = Perceptor(args.model, model, fast=args.path == "fast")
    if args.path == "fast":
        perceptor.store_weights_in(weights_precision(device, dtype))  # as the model cache does for a run
    size = perceptor.input_resolution
    images = torch.rand(args.cuts, 3, size, size)
    times = []
    for _ in range(args.passes):
        cuts = images.clone().requires_grad_(True)
        start = time.perf_counter()
        with autocast(device, dtype):
            embeds = perceptor.encode_image(cuts)
        embeds.sum().backward()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.model} x {args.cuts} cuts, {args.path} path, {str(dtype).removeprefix('torch.')}, "
          f"{torch.get_num_threads()} threads: s/pass {', '.join(f'{t:.2f}' for t in times)} "
          f"(median {statistics.median(times):.2f}); peak RSS {peak:.0f} MiB; "
          f"float32 matmul {matmul_gflops():.1f} GFLOP/s")


if __name__ == "__main__":
    main()
