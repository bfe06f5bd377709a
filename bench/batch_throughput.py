"""Images per minute: ``pixray batch`` with one worker against a shell loop of ``pixray`` calls.

Prints figures; passes or fails nothing. Both render the same short jobs (prompts x seeds) on a
real-size CLIP with random weights, read from a checkpoint file as a real one would be (ViT-B/32 by
default), so what the batch saves shows: the interpreter's start, the imports and the model's
load, paid once instead of once per image.

    python bench/batch_throughput.py                       # 8 jobs, 5 iterations each, ViT-B/32
    python bench/batch_throughput.py --jobs 8 --iterations 20 --model ViT-B-16-quickgelu
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import open_clip
import torch
import yaml
from scratch import scratch_directory

from pixray.perceptors import openai_state_dict

PROMPTS = ["a lighthouse at dusk", "a red fox in the snow", "a city of glass", "a bowl of lemons"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--model", default="ViT-B-32-quickgelu",
                        help="open_clip architecture (random weights)")
    args = parser.parse_args()
    work = scratch_directory("pixray-batch-bench-")
    torch.manual_seed(0)
    checkpoint = work / "clip.pt"
    torch.save(openai_state_dict(open_clip.create_model(args.model), half=True), checkpoint)
    shared = {"drawer": "fast_pixel", "clip_models": [str(checkpoint)], "size": [96, 96],
              "iterations": args.iterations, "num_cuts": 8, "save_intermediates": False, "device": "cpu",
              "vector_prompts": "none"}
    jobs = [{"prompts": PROMPTS[i % len(PROMPTS)], "seed": i // len(PROMPTS)} for i in range(args.jobs)]
    (work / "shared.yaml").write_text(yaml.safe_dump(shared))
    (work / "jobs.yaml").write_text(yaml.safe_dump({"settings": shared, "jobs": jobs}))
    pixray = [sys.executable, "-m", "pixray.cli"]

    start = time.perf_counter()
    subprocess.run([*pixray, "batch", str(work / "jobs.yaml"), "--outdir", str(work / "batch"), "--quiet"],
                   check=True, capture_output=True)
    batch_s = time.perf_counter() - start
    start = time.perf_counter()
    for i, job in enumerate(jobs):
        subprocess.run([*pixray, "--config", str(work / "shared.yaml"), "--prompts", job["prompts"],
                        "--seed", str(job["seed"]), "--outdir", str(work / f"loop/{i}"), "--quiet"],
                       check=True, capture_output=True)
    loop_s = time.perf_counter() - start

    print(f"{args.jobs} jobs of {args.iterations} iterations, fast_pixel 96x96, {args.model} (random "
          f"weights, {checkpoint.stat().st_size / 2**20:.0f} MB file), 8 cuts, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"pixray batch --workers 1: {batch_s:.1f} s, {60 * args.jobs / batch_s:.2f} images/minute")
    print(f"shell loop of pixray calls: {loop_s:.1f} s, {60 * args.jobs / loop_s:.2f} images/minute")
    print(f"speed-up: {loop_s / batch_s:.2f}x")


if __name__ == "__main__":
    main()
