"""Milliseconds of one step's cutouts: the views of a canvas, forward and backward to the canvas.

Prints figures; passes or fails nothing.

    python bench/cutouts.py --size "192 108" --cuts 24     (quality draft's canvas and cutouts)
    python bench/cutouts.py --size "384 216" --cuts 30     (quality normal's)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pixray.cutouts import CUT_METHODS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="384 216", help="canvas 'width height'")
    parser.add_argument("--cuts", type=int, default=30)
    parser.add_argument("--cut_size", type=int, default=224)
    parser.add_argument("--cut_method", default="pixray", choices=list(CUT_METHODS))
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split())
    canvas = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    cutouts = CUT_METHODS[args.cut_method](args.cut_size)
    generator = torch.Generator().manual_seed(1)
    weights = torch.rand(args.cuts, 3, args.cut_size, args.cut_size, generator=generator)
    times = []
    for _ in range(args.repeats + 3):
        start = time.perf_counter()
        (cutouts(canvas, args.cuts, generator) * weights).sum().backward()
        times.append(time.perf_counter() - start)
    steady = times[3:]
    print(f"{args.cuts} {args.cut_method} cutouts of {width}x{height} at {args.cut_size}, forward + backward "
          f"({torch.get_num_threads()} threads): median {statistics.median(steady) * 1e3:.1f} ms, "
          f"min {min(steady) * 1e3:.1f} ms over {len(steady)}")


if __name__ == "__main__":
    main()
