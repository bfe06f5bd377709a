"""Setting cuda_graphs on a GPU: the same run with its perceptor passes replayed as CUDA graphs and run as
before, side by side. Prints each way's seconds per step and the largest difference between their
step images and losses (random-weight CLIPs of the real sizes, as bench/benchmark.py builds them).
The run's first step captures the graphs: its time is printed apart. CUDA only.

    python bench/graphed_steps.py --quality normal --steps 30 [--precision float32]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch
from benchmark import random_perceptors

from pixray.engine import Run, Step
from pixray.runtime import choose_precision, weights_precision
from pixray.settings import build_settings, resolve


def timed_steps(run: Run) -> tuple[list[Step], list[float]]:
    """The run's steps (images and losses on the host) and the seconds each took."""
    steps, times = [], []
    last = time.perf_counter()
    for step in run:
        steps.append(Step(step.index, step.image.cpu(), {k: v.cpu() for k, v in step.losses.items()},
                          step.is_final))
        now = time.perf_counter()
        times.append(now - last)
        last = now
    return steps, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drawer", default="fast_pixel")
    parser.add_argument("--quality", default="normal")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # open_clip warns that random weights are random
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to compare")
        return
    device = torch.device("cuda")
    values = {"drawer": args.drawer, "quality": args.quality, "device": "cuda", "precision": args.precision,
              "seed": 0, "prompts": "a red circle on a blue background", "iterations": args.steps}
    settings = build_settings(values)
    dtype = choose_precision(settings.precision, device)
    weights = weights_precision(device, dtype)
    perceptors = random_perceptors(resolve(settings).clip_models, device, weights=weights)
    print(f"{args.drawer}, quality {args.quality}, {str(dtype).removeprefix('torch.')}, {args.steps} steps, "
          f"{torch.cuda.get_device_name(device)}:")
    results = {}
    for graphs in (False, True, False, True):  # alternating; the second round's figures are printed
        torch.cuda.reset_peak_memory_stats(device)
        run = Run(settings.replace(cuda_graphs=graphs), perceptors)
        results[graphs] = timed_steps(run)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        _, times = results[graphs]
        print(f"  {'CUDA graphs' if graphs else 'as before  '}: first step {times[0]:.3f} s, then median "
              f"{statistics.median(times[1:-1]):.4f} s/step, {peak:.0f} MiB peak allocated")
    (plain, _), (graphed, _) = results[False], results[True]
    pairs = list(zip(plain, graphed, strict=True))
    image = max(float((a.image - b.image).abs().max()) for a, b in pairs)
    loss = max(float((a.losses["total"] - b.losses["total"]).abs()) for a, b in pairs)
    # Step 0's loss and step 1's image (made by step 0's gradient) show a pass's own difference; later
    # steps add up every earlier one.
    first_loss = float((plain[0].losses["total"] - graphed[0].losses["total"]).abs())
    first_image = float((plain[1].image - graphed[1].image).abs().max())
    print(f"  largest difference, graphed against as before: step 0's total loss {first_loss:.2e}, step 1's "
          f"image {first_image:.2e} (of [0, 1]); over all steps: image {image:.2e}, total loss {loss:.2e}")


if __name__ == "__main__":
    main()
