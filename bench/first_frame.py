"""How soon a warm Cog server streams a prediction's first frame: seconds from the request to each event.

Starts the real server (``python -m cog.server.http`` for predict.py), its CLIP models loaded at setup
(``PIXRAY_PRELOAD``): real-size architectures with random weights, saved as checkpoints in OpenAI's
layout and named by path in the server's base settings, so nothing is downloaded. Then sends
streamed predictions one after another and prints, for each, the seconds from sending the request to
the ``start`` event, to the first frame (step 0's image, streamed before its CLIP pass) and to the
end. The first prediction also warms up the step's kernels; issue 19's goal is the later ones' first
frame within 1 s on a GPU.

    python bench/first_frame.py                                     (quality normal: ViT-B/32 + ViT-B/16)
    python bench/first_frame.py --device cuda --predictions 4
    python bench/first_frame.py --drawer vqgan      (imagenet_f16_16384's architecture, random weights)
    python bench/first_frame.py --clip_models shapes-demo --quality draft   (the server's own costs)
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import open_clip
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

from benchmark import random_vqgan_files  # noqa: E402
from cog_server import Server  # noqa: E402
from scratch import scratch_directory  # noqa: E402

from pixray.perceptors import CLIP_MODELS  # noqa: E402
from pixray.perceptors.checkpoint import openai_state_dict  # noqa: E402
from pixray.settings import QUALITY_PRESETS  # noqa: E402


def random_checkpoints(names: list[str], directory: Path) -> list[str]:
    """For each catalog name with an architecture (not the packaged shapes-world CLIPs), a checkpoint
    of that architecture with random weights in OpenAI's layout; its path stands for the name."""
    models = []
    for name in names:
        entry = CLIP_MODELS.lookup(name)
        if entry.packaged or entry.architecture is None:
            models.append(name)
            continue
        torch.manual_seed(0)
        path = directory / f"{name.replace('/', '-')}.pt"
        torch.save(openai_state_dict(open_clip.create_model(entry.architecture)), path)
        models.append(str(path))
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", default="normal")
    parser.add_argument("--drawer", default="fast_pixel")
    parser.add_argument("--clip_models", default=None, help="comma-separated; default the quality's")
    parser.add_argument("--predictions", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3,
                        help="per prediction (the first frame is step 0's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--log", action="store_true", help="print the end of the server's log")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # open_clip warns that random weights are random

    names = (args.clip_models.split(",") if args.clip_models
             else list(QUALITY_PRESETS[args.quality].clip_models))
    tmp = scratch_directory("pixray-first-frame-")
    models = random_checkpoints(names, tmp)
    # vqgan: imagenet_f16_16384's architecture with random weights, named in the base settings.
    drawer_files = random_vqgan_files(tmp) if args.drawer == "vqgan" else {}
    base = yaml.safe_dump({"clip_models": models, "device": args.device, **drawer_files})
    threads = str(torch.get_num_threads())
    server = Server(tmp, base, PIXRAY_PRELOAD=" ".join(models), OMP_NUM_THREADS=threads)
    try:
        started = time.monotonic()
        server.wait_for("READY")
        print(f"models={','.join(names)} drawer={args.drawer} quality={args.quality} "
              f"device={args.device} threads={threads}; server ready (models loaded) "
              f"{time.monotonic() - started:.1f} s after start")
        firsts = []
        for i in range(args.predictions):
            request = {"prompts": "a red circle on a blue background", "drawer": args.drawer,
                       "quality": args.quality, "iterations": args.iterations, "seed": i}
            server.wait_for("READY")
            sent = time.monotonic()
            times: dict[str, float] = {}
            status = "?"
            for arrived, name, data in server.events(request, f"first-frame-{os.getpid()}-{i}"):
                times.setdefault(name, arrived - sent)
                status = data.get("status", status) if isinstance(data, dict) else status
            first = times.get("output")
            print(f"prediction {i + 1}: {status}; start {times.get('start', float('nan')):.3f} s, "
                  f"first frame {first if first is not None else float('nan'):.3f} s, "
                  f"completed {times.get('completed', float('nan')):.3f} s after the request")
            if i and first is not None:
                firsts.append(first)
        if firsts:
            print(f"first frame on the warm server (predictions 2-{args.predictions}): median "
                  f"{statistics.median(firsts):.3f} s")
        print(f"server resident memory after them: {server.rss_mb():.0f} MiB")
    finally:
        server.stop()
        if args.log:
            print((tmp / "server.log").read_text()[-3000:])


if __name__ == "__main__":
    main()
