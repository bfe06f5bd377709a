"""How many operations a step launches, with and without setting cuda_graphs: what a GPU step's host
time scales with. Counts the aten operations of one quality-normal step (real-size CLIPs with random
weights, every perceptor's cutouts in one pass as on a GPU) that launch work, leaving out views and
other operations that only describe a tensor. Runs on the CPU: the graphs are the tests' stand-in
(tests/graph_capture.py), so the operations a replay would run in one launch are counted apart. Also
prints where the operations left outside the graphs come from (the file that called torch).

    python bench/launch_count.py [--quality normal] [--drawer fast_pixel]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

import torch
from benchmark import random_perceptors
from torch.utils._python_dispatch import TorchDispatchMode

import pixray.engine
from pixray.engine import Run
from pixray.settings import build_settings, resolve

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from call_sites import calling_frame  # noqa: E402 - the tests' harness, found through ROOT/tests
from graph_capture import StandInCapture  # noqa: E402

#: Operations that make a new description of memory (or none) and launch nothing on a GPU.
NO_LAUNCH = frozenset({
    "view", "_unsafe_view", "t", "transpose", "permute", "expand", "unsqueeze", "squeeze", "slice", "select",
    "as_strided", "alias", "detach", "split", "split_with_sizes", "unbind", "_reshape_alias", "reshape",
    "view_as", "empty", "empty_like", "empty_strided", "lift_fresh"})


class LaunchCount(TorchDispatchMode):
    """Counts launching operations, as 'eager' or (while ``stand_in`` replays) 'graph', and the eager
    ones by the file that called torch (``sources``)."""

    def __init__(self, stand_in: StandInCapture) -> None:
        super().__init__()
        self.stand_in = stand_in
        self.counts: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ not in NO_LAUNCH:
            self.counts["graph" if self.stand_in.inside else "eager"] += 1
            if not self.stand_in.inside:
                self.sources[caller()] += 1
        return func(*args, **(kwargs or {}))


def caller() -> str:
    """The innermost file on the stack outside torch and this script: from the installed packages'
    folder, or from the checkout's root."""
    found = calling_frame(Path(__file__))
    return found[0] if found is not None else "?"


def count(settings_values: dict, graphs: bool) -> LaunchCount:
    stand_in = StandInCapture()
    if graphs:
        torch.cuda.make_graphed_callables = stand_in.make_graphed_callables
        pixray.engine.graphs_possible = lambda device: True
    settings = build_settings({**settings_values, "cuda_graphs": graphs})
    run = Run(settings, random_perceptors(resolve(settings).clip_models, torch.device("cpu")))
    run.pass_positions = 2**31  # one pass per perceptor, as on a GPU
    steps = iter(run)
    next(steps)  # the first step captures
    counter = LaunchCount(stand_in)
    with counter:
        next(steps)
    return counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drawer", default="fast_pixel")
    parser.add_argument("--quality", default="normal")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # open_clip warns that random weights are random
    values = {"drawer": args.drawer, "quality": args.quality, "device": "cpu", "precision": "float32",
              "seed": 0, "prompts": "a red circle on a blue background", "iterations": 3}
    plain = count(values, graphs=False).counts
    graphed = count(values, graphs=True)
    perceptors = len(resolve(build_settings(values)).clip_models)
    print(f"{args.drawer}, quality {args.quality}: a step launches {plain['eager']} operations; with "
          f"cuda_graphs {graphed.counts['eager']} plus {2 * perceptors} graph launches (a forward and a "
          f"backward per perceptor), which replay {graphed.counts['graph']}")
    print("  those left outside the graphs, by the file calling torch: " + ", ".join(
        f"{source} {number}" for source, number in graphed.sources.most_common()))


if __name__ == "__main__":
    main()
