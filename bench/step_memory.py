"""The tensor memory of a step: what is held when it starts (weights, the drawer's parameters, the
optimiser's state) and the most its own tensors hold at once, counted tensor by tensor on the CPU
(random-weight networks of the real architectures, as bench/benchmark.py builds them). A process's
RSS adds its allocator's reserve and fragmentation to this, and a GPU's caching allocator its own;
the figure is what a step asks of either. A GPU computes some ops in other precisions (float16 on a
T4, whose autocast also keeps group norms in float32), so on one this is an estimate; the GPU checks
measure it there (`bash bench/gpu_checks.sh`).

    python bench/step_memory.py --drawer vqgan --quality best [--precision float32]
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path

import torch
from benchmark import random_network_files, random_perceptors, random_weight_settings

from pixray.engine import Run
from pixray.runtime import choose_precision, cpu_auto_precision, weights_precision
from pixray.settings import build_settings, resolve

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from live_storages import LiveStorages  # noqa: E402 - the tests' harness, found through ROOT/tests


def held_bytes() -> int:
    """Bytes of the distinct storages of every tensor the garbage collector can see."""
    gc.collect()
    storages = {}
    for thing in gc.get_objects():
        if issubclass(type(thing), torch.Tensor) and not thing.is_meta:  # isinstance would ask proxies
            storage = thing.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drawer", default="vqgan")
    parser.add_argument("--quality", default="normal")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--every", type=int, default=4, help="sample the live bytes after every N-th op")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # open_clip warns that random weights are random
    device = torch.device("cpu")
    dtype = cpu_auto_precision()[0] if args.precision == "auto" else choose_precision(args.precision, device)
    values = {"drawer": args.drawer, "quality": args.quality, "device": "cpu",
              "precision": str(dtype).removeprefix("torch."), "seed": 0,
              "prompts": "a red circle on a blue background", "iterations": 3,
              **random_weight_settings(args.drawer)}
    settings = build_settings(values)
    weights = weights_precision(device, dtype)
    perceptors = random_perceptors(resolve(settings).clip_models, device, weights=weights)
    run = Run(settings, perceptors, random_network_files(settings, device))
    del perceptors
    steps = run.steps()
    next(steps)  # the first step makes the optimiser's state
    held = held_bytes()
    live = LiveStorages(peak_every=args.every)
    with live:
        next(steps)
    plan = run.plan
    print(f"drawer={args.drawer} quality={args.quality} size={run.drawer.width}x{run.drawer.height} "
          f"models={','.join(plan.clip_models)} cuts={plan.num_cuts}x{plan.batches} "
          f"precision={str(dtype).removeprefix('torch.')}")
    print(f"held when the step starts: {held / 2**20:.0f} MiB; the step's own tensors at most "
          f"{live.peak / 2**20:.0f} MiB at once (sampled every {args.every} ops); together "
          f"{(held + live.peak) / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
