"""What writing files costs a run: seconds per iteration with every step saved, against none.

Prints figures; passes or fails nothing. Runs offline with the shapes-world guide (a small CLIP, so a
step is short and the cost of saving shows) on the canvas of a given size, in rounds that alternate:

- ``none``: save_every 0 and save_intermediates off (one image at the end);
- ``save_every 1``: output.png and steps/frame_NNNN.png every step, written by the image thread;
- ``save_every 1, --video``: the same plus video/frame_NNNN.png of every step;
- ``save_every 1, in the loop``: as ``save_every 1``, but the loop waits for each write (what
  writing in the loop, without the thread, costs).

The final videos are made after the timed steps and timed on their own.

    python bench/saving.py --size "384 216" --iterations 30 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import cpu_description

from pixray.engine import Run, Step
from pixray.output import OutputWriter
from pixray.settings import build_settings

CASES = {
    "none": {"save_every": "0", "save_intermediates": False},
    "save_every 1": {"save_every": "1i"},
    "save_every 1, --video": {"save_every": "1i", "make_video": True},
    "save_every 1, in the loop": {"save_every": "1i"},
}


def time_case(name: str, base: dict, outdir: Path) -> tuple[list[float], float]:
    """Seconds of each step of one run of ``name``, and of the end (last writes and the videos)."""
    settings = build_settings({**base, **CASES[name], "outdir": str(outdir)})
    writer = OutputWriter(settings)
    run = Run(settings)
    times: list[float] = []
    marks = {"last": 0.0}

    def progress(step: Step) -> None:
        if name.endswith("in the loop"):
            writer._flush()  # wait for the write, as a loop without the thread would
        now = time.perf_counter()
        if not step.is_final:
            times.append(now - marks["last"])
        marks["last"] = now

    marks["last"] = time.perf_counter()
    writer.save_run(run, progress)
    return times[1:], time.perf_counter() - marks["last"]  # the first step warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="384 216")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num_cuts", type=int, default=8)
    args = parser.parse_args()
    base = {"prompts": "a red circle on a blue background", "drawer": "fast_pixel",
            "clip_models": ["shapes-demo"], "size": [int(v) for v in args.size.split()],
            "iterations": args.iterations, "num_cuts": args.num_cuts, "device": "cpu", "seed": 0}
    steps: dict[str, list[float]] = {name: [] for name in CASES}
    ends: dict[str, list[float]] = {name: [] for name in CASES}
    with tempfile.TemporaryDirectory(prefix="pixray-bench-saving-") as tmp:
        for round_ in range(args.rounds):
            for i, name in enumerate(CASES):
                times, end = time_case(name, base, Path(tmp) / f"r{round_}-{i}")
                steps[name] += times
                ends[name].append(end)
    print(f"cpu: {cpu_description()}; {torch.get_num_threads()} threads")
    print(f"fast_pixel {args.size.replace(' ', 'x')}, shapes-demo, {args.num_cuts} cuts, {args.iterations} "
          f"iterations x {args.rounds} rounds (alternating)")
    reference = statistics.median(steps["none"])
    for name in CASES:
        median = statistics.median(steps[name])
        end = statistics.median(ends[name])
        print(f"{name:28s} s/iteration median {median:.4f} ({(median - reference) * 1000:+.1f} ms, "
              f"{median / reference - 1:+.1%}); end (last writes, videos) {end:.2f} s")


if __name__ == "__main__":
    main()
