"""Forward+backward time and peak memory of the vector drawers' rendering (the pure-torch rasteriser).

Prints figures; passes or fails nothing. Each scene runs in a fresh process, so its memory figure
is its own: peak resident memory during the timed renders less the resident memory before them
(drawer built and started).

    python bench/raster.py                 (every scene, one CPU thread)
    python bench/raster.py --threads 2 --device cuda
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from benchmark import cpu_description

from pixray.drawers import DRAWERS
from pixray.settings import build_settings

# (label, drawer, width, height, settings)
SCENES = [
    ("CLIPDraw's scene: 256 strokes", "clipdraw", 224, 224, {"strokes": 256}),
    ("clipdraw default: 1024 strokes", "clipdraw", 480, 270, {}),
    ("line_sketch default (normal quality canvas)", "line_sketch", 384, 216, {}),
    ("pixel hex 80x45 (81x63 after Pixray's checks)", "pixel", 384, 216, {"pixel_type": "hex"}),
]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _scene(index: int, repeats: int, threads: int, device: str, queue: multiprocessing.Queue) -> None:
    torch.set_num_threads(threads)
    label, name, width, height, options = SCENES[index]
    drawer = DRAWERS.lookup(name)(build_settings(options).section(name), width, height).to(device)
    generator = torch.Generator(device).manual_seed(0)
    drawer.init_from_image(torch.rand(1, 3, height, width, generator=generator, device=device), generator)
    weights = torch.rand(1, 3, drawer.height, drawer.width, generator=generator, device=device)
    before = _rss_mb()
    times = []
    for _ in range(repeats + 1):  # the first warms up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        (drawer.synth() * weights).sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        drawer.zero_grad(set_to_none=True)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    queue.put((label, statistics.median(times[1:]), min(times[1:]), _rss_mb() - before, gpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"cpu: {cpu_description()}; torch {torch.__version__}; threads {args.threads}; "
          f"device {args.device}")
    context = multiprocessing.get_context("spawn")
    for index in range(len(SCENES)):
        queue = context.Queue()
        process = context.Process(target=_scene, args=(index, args.repeats, args.threads, args.device, queue))
        process.start()
        label, median, best, rss, gpu = queue.get()
        process.join()
        memory = f"peak RSS +{rss:.0f} MB" + (f", GPU peak {gpu:.0f} MB" if gpu is not None else "")
        print(f"{label}: forward+backward median {median:.3f} s (best {best:.3f} s), {memory}")


if __name__ == "__main__":
    main()
