"""How well generations guided by the shapes-world guides read to an independent judge.

For each drawer and prompt: generate with pixray/demo/shapes.yaml (plus overrides) from the prompt
with the other shapes as negative prompts (as the tests do; --contrast 0: the caption alone), then
ask the shapes-judge model (trained from another seed, never a guide) for its top caption, and
measure plain pixel statistics. First it times `make demo`'s run (pixel, one process on torch's
threads). Prints figures and timings; passes or fails nothing.

    python bench/demo_accuracy.py
    python bench/demo_accuracy.py --drawers fast_pixel --set iterations=100 --set num_cuts=32
    python bench/demo_accuracy.py --drawers fast_pixel --seeds 0,1,2,3,4,5   # 48 images, less luck
    python bench/demo_accuracy.py --drawers fast_pixel --contrast 0   # no negative prompts
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import Executor
from pathlib import Path

import torch
import yaml

from pixray.demo.evaluate import TEST_PROMPTS, demo_image, demo_prompt, demo_settings, demo_workers, grade
from pixray.model_cache import ModelCache
from pixray.perceptors import Perceptor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drawers", default="pixel,fast_pixel")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--save", type=Path, default=None, help="directory for the images")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; each runs every prompt")
    parser.add_argument("--judge", default="shapes-judge", help="perceptor name or checkpoint path")
    parser.add_argument("--contrast", type=float, default=None, metavar="W",
                        help="weight of each other shape as a negative prompt (0: the caption alone); "
                             "default: the drawer's, as the tests use")
    parser.add_argument("--workers", type=int, default=2,
                        help="one-thread generating processes (2 suit 2 cores; images are the same)")
    args = parser.parse_args()
    time_demo_run()
    torch.set_num_threads(1)
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    seeds = [int(s) for s in args.seeds.split(",")]
    judge = ModelCache(torch.device("cpu"), Path("weights")).perceptors([args.judge])[0]
    print(f"generating in {args.workers} one-thread processes (CPU)")
    with demo_workers(args.workers) as pool:
        for drawer in args.drawers.split(","):
            settings = {**demo_settings(drawer), **overrides}
            print(f"{drawer} settings:", {k: v for k, v in settings.items() if k != "device"})
            print(f"{drawer} prompts, e.g.:", demo_prompt(drawer, TEST_PROMPTS[0], args.contrast))
            measure(pool, drawer, overrides, seeds, judge, args.save, args.contrast)


def time_demo_run() -> None:
    """Print how long `make demo`'s generation takes as it runs there: in one process on torch's
    threads, loading the guides included (`time make demo` adds Python's and torch's start-up)."""
    start = time.perf_counter()
    demo_image("pixel", TEST_PROMPTS[0], seed=0)
    print(f"make demo's run (pixel, {TEST_PROMPTS[0]!r} and its negative prompts, "
          f"{torch.get_num_threads()} threads): {time.perf_counter() - start:.1f} s")


def measure(pool: Executor, drawer: str, overrides: dict, seeds: list[int], judge: Perceptor,
            save: Path | None, contrast: float | None = None) -> None:
    """Generate every test prompt from each seed, grade each image, print per-image and total figures."""
    jobs = [(seed, i, prompt) for seed in seeds for i, prompt in enumerate(TEST_PROMPTS)]
    start = time.perf_counter()
    job_seeds, _, prompts = zip(*jobs, strict=True)
    n = len(jobs)
    images = pool.map(demo_image, [drawer] * n, prompts, job_seeds, [overrides] * n, [contrast] * n)
    tally = {name: dict.fromkeys(seeds, 0) for name in ("captions", "colour pairs", "statistics")}
    for (seed, i, prompt), image in zip(jobs, images, strict=True):
        g = grade(image, prompt, judge)
        for counts, right in zip(tally.values(), (g.caption_right, g.colours_right, g.statistics_right),
                                 strict=True):
            counts[seed] += right
        stats = g.statistics
        print(f"  {drawer:10s} seed {seed} {prompt:40s} judge: {'OK ' if g.caption_right else 'NO '} "
              f"{g.read.caption:40s} border bg {stats.border_background:.2f} "
              f"fg region {stats.foreground_region:.2f}")
        if save:
            save.mkdir(parents=True, exist_ok=True)
            image.save(save / (f"{drawer}-{i}.png" if len(seeds) == 1 else f"{drawer}-{i}-seed{seed}.png"))
    seconds = (time.perf_counter() - start) / n
    figures = "; ".join(f"{name} {sum(c.values())}/{n}"
                        + (f" (per seed {list(c.values())})" if len(seeds) > 1 else "")
                        for name, c in tally.items())
    print(f"{drawer}: judge reads {figures}; {seconds:.2f} s per image (wall clock over all workers)")


if __name__ == "__main__":
    main()
