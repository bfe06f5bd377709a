"""Where a generation step's time goes: torch.profiler over a few steps, with random-weight CLIPs of the
real sizes (as bench/benchmark.py builds them), after warm-up steps.

Prints the profiler's table of the busiest ops. On a GPU it also prints the kernels' busy time and
count per step against the step's wall time: a step much longer than its kernels is bound by the
host launching them (what CUDA graphs would remove). The profiler slows small CPU ops (elementwise
kernels about 2x on a CPU), so take speed figures from bench/benchmark.py; this says where to look.

    python bench/step_profile.py --quality normal --device cuda
    python bench/step_profile.py --quality draft --rows 30
"""

from __future__ import annotations

import argparse
import logging
import time

import torch
from benchmark import random_network_files, random_perceptors, random_weight_settings
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from pixray.engine import Run
from pixray.runtime import choose_device, choose_precision, keep_freed_memory, weights_precision
from pixray.settings import build_settings, resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drawer", default="fast_pixel")
    parser.add_argument("--quality", default="normal")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--steps", type=int, default=5, help="steps profiled")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rows", type=int, default=25, help="ops in the table")
    args = parser.parse_args()
    keep_freed_memory()
    logging.basicConfig(level=logging.ERROR)  # open_clip warns that random weights are random

    values = {"drawer": args.drawer, "quality": args.quality, "device": args.device,
              "precision": args.precision, "seed": 0, "prompts": "a red circle on a blue background",
              "iterations": args.warmup + args.steps + 1}
    settings = build_settings({**values, **random_weight_settings(args.drawer)})
    device = choose_device(settings.device)
    dtype = choose_precision(settings.precision, device)
    perceptors = random_perceptors(resolve(settings).clip_models, device,
                                   weights=weights_precision(device, dtype))
    steps = iter(Run(settings, perceptors, random_network_files(settings, device)))
    for _ in range(args.warmup):
        next(steps).loss  # noqa: B018 - waits for the device
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as profiler:
        start = time.perf_counter()
        for _ in range(args.steps):
            next(steps).loss  # noqa: B018
        if cuda:
            torch.cuda.synchronize(device)
        wall = (time.perf_counter() - start) / args.steps
    events = profiler.key_averages()
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    print(f"drawer={args.drawer} quality={args.quality} device={device} precision={dtype}; "
          f"{args.steps} steps after {args.warmup} warm-up")
    print(events.table(sort_by=sort, row_limit=args.rows))
    if cuda:
        kernels = [event for event in events if event.device_type == DeviceType.CUDA]
        busy = sum(event.self_device_time_total for event in kernels) / 1e6 / args.steps
        launched = sum(event.count for event in kernels) / args.steps
        print(f"per step: wall {wall * 1000:.1f} ms (profiled), GPU kernels busy {busy * 1000:.1f} ms "
              f"({busy / wall:.0%} of it), {launched:.0f} kernels")
    else:
        print(f"per step: wall {wall:.3f} s (profiled)")


if __name__ == "__main__":
    main()
