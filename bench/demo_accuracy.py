"""How well generations with the shapes-demo perceptor read to an independent judge.

For each drawer and prompt: generate with pixray/demo/shapes.yaml (plus overrides), then ask the
shapes-judge model (another architecture, trained from another seed) for its top caption, and
measure plain pixel statistics. Prints figures and timings; passes or fails nothing.

    python bench/demo_accuracy.py
    python bench/demo_accuracy.py --drawers fast_pixel --set iterations=100 --set num_cuts=32
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

import pixray
from pixray.demo.evaluate import classify, scene_statistics
from pixray.demo.world import all_scenes
from pixray.perceptors import PerceptorCache

SHAPES_YAML = Path(pixray.__file__).parent / "demo" / "shapes.yaml"
PROMPTS = [
    "a red circle on a blue background",
    "a green square on a yellow background",
    "a blue triangle on a white background",
    "a yellow cross on a purple background",
    "a purple circle on a orange background",
    "a orange square on a black background",
    "a white triangle on a green background",
    "a black cross on a red background",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drawers", default="pixel,fast_pixel")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--save", type=Path, default=None, help="directory for the images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge", default="shapes-judge", help="perceptor name or checkpoint path")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    base = {**pixray.read_settings_file(SHAPES_YAML), **overrides, "seed": args.seed}
    cache = PerceptorCache(torch.device("cpu"), Path("weights"))
    judge = cache.get([args.judge])[0]
    captions = [s.caption for s in all_scenes()]
    print("settings:", {k: v for k, v in base.items() if k != "device"})
    for drawer in args.drawers.split(","):
        hits, seconds = 0, []
        for i, prompt in enumerate(PROMPTS):
            start = time.perf_counter()
            image = pixray.generate(base, perceptors=cache, drawer=drawer, prompts=prompt).final_image()
            seconds.append(time.perf_counter() - start)
            pixels = np.array(image)
            read = captions[int(classify(judge, torch.from_numpy(pixels).permute(2, 0, 1)[None] / 255))]
            scene = all_scenes()[captions.index(prompt)]
            stats = scene_statistics(pixels, scene.colour, scene.background)
            hits += read == prompt
            print(f"  {drawer:10s} {prompt:40s} judge: {'OK ' if read == prompt else 'NO '} {read:40s} "
                  f"border bg {stats.border_background:.2f} fg region {stats.foreground_region:.2f}")
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                image.save(args.save / f"{drawer}-{i}.png")
        print(f"{drawer}: judge reads {hits}/{len(PROMPTS)}; {np.mean(seconds):.2f} s per image "
              f"(CPU, 1 thread)")


if __name__ == "__main__":
    main()
