"""How well generations guided by the shapes-world guides read to an independent judge.

For each drawer and prompt: generate with pixray/demo/shapes.yaml (plus overrides) from the prompt
with the other shapes as negative prompts (as the tests do; --contrast 0: the caption alone), then
ask the shapes-judge model (trained from another seed, never a guide) for its top caption, and
measure plain pixel statistics. Prints figures and timings; passes or fails nothing.

    python bench/demo_accuracy.py
    python bench/demo_accuracy.py --drawers fast_pixel --set iterations=100 --set num_cuts=32
    python bench/demo_accuracy.py --drawers fast_pixel --seeds 0,1,2,3,4,5   # 48 images, less luck
    python bench/demo_accuracy.py --drawers fast_pixel --contrast 0   # no negative prompts
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

import pixray
from pixray.demo.evaluate import TEST_PROMPTS, demo_prompt, demo_settings, grade
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
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    seeds = [int(s) for s in args.seeds.split(",")]
    cache = ModelCache(torch.device("cpu"), Path("weights"))
    judge = cache.perceptors([args.judge])[0]
    for drawer in args.drawers.split(","):
        settings = {**demo_settings(drawer), **overrides}
        print(f"{drawer} settings:", {k: v for k, v in settings.items() if k != "device"})
        print(f"{drawer} prompts, e.g.:", demo_prompt(drawer, TEST_PROMPTS[0], args.contrast))
        measure(drawer, settings, seeds, cache, judge, args.save, args.contrast)


def measure(drawer: str, settings: dict, seeds: list[int], cache: ModelCache, judge: Perceptor,
            save: Path | None, contrast: float | None = None) -> None:
    """Generate every test prompt from each seed, grade each image, print per-image and total figures."""
    tally: dict[str, list[int]] = {"captions": [], "colour pairs": [], "statistics": []}
    seconds = []
    for seed in seeds:
        counts = [0, 0, 0]
        for i, prompt in enumerate(TEST_PROMPTS):
            start = time.perf_counter()
            image = pixray.generate({**settings, "seed": seed}, models=cache, drawer=drawer,
                                    prompts=demo_prompt(drawer, prompt, contrast)).final_image()
            seconds.append(time.perf_counter() - start)
            g = grade(image, prompt, judge)
            for k, right in enumerate((g.caption_right, g.colours_right, g.statistics_right)):
                counts[k] += right
            stats = g.statistics
            print(f"  {drawer:10s} seed {seed} {prompt:40s} judge: {'OK ' if g.caption_right else 'NO '} "
                  f"{g.read.caption:40s} border bg {stats.border_background:.2f} "
                  f"fg region {stats.foreground_region:.2f}")
            if save:
                save.mkdir(parents=True, exist_ok=True)
                name = f"{drawer}-{i}.png" if len(seeds) == 1 else f"{drawer}-{i}-seed{seed}.png"
                image.save(save / name)
        for name, count in zip(tally, counts, strict=True):
            tally[name].append(count)
    n = len(TEST_PROMPTS) * len(seeds)
    figures = "; ".join(f"{name} {sum(c)}/{n}" + (f" (per seed {c})" if len(seeds) > 1 else "")
                        for name, c in tally.items())
    print(f"{drawer}: judge reads {figures}; {np.mean(seconds):.2f} s per image (CPU, 1 thread)")


if __name__ == "__main__":
    main()
