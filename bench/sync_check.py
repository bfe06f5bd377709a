"""Lists host-device synchronisations inside the engine's step loop (CUDA only).

    python bench/sync_check.py      # per drawer, each synchronising call site, or "no synchronisation"
    python bench/sync_check.py --cuda_graphs    # the same with the perceptor passes replayed as CUDA graphs

Uses torch.cuda.set_sync_debug_mode("warn") after each run is prepared and its first step done; the
pixel drawers and vqgan (imagenet_f16_16384's architecture with random weights, so no downloads).
Without a CUDA device it runs the same steps on the CPU and lists what would synchronise on a GPU, as
the tests find it there (tests/host_syncs.py: tensors from host data or without a device, values read
back, outputs sized by values).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import open_clip
import torch
from benchmark import random_weight_settings
from PIL import Image
from scratch import scratch_directory

from pixray.engine import Run
from pixray.perceptors import Perceptor
from pixray.settings import build_settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from host_syncs import HostSyncs  # the tests' finder, found through the checkout's tests/


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drawers", default="fast_pixel,pixel,vqgan,features",
                        help="comma-separated; 'features': fast_pixel with a filter, custom losses that "
                             "build masks and colours, and spot, image and target prompts")
    parser.add_argument("--cuda_graphs", action="store_true",
                        help="setting cuda_graphs (captured in the first step, before the check)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # open_clip warns that random weights are random
    cuda = torch.cuda.is_available()
    if not cuda:
        print("no CUDA device: the steps run on the CPU, looked at for what would synchronise on a GPU")
    perceptor = Perceptor("ViT-B/32", open_clip.create_model("ViT-B-32-quickgelu"))  # one, as a cache keeps
    for drawer in args.drawers.split(","):
        values = {"drawer": drawer, "prompts": "a red circle", "iterations": 6, "seed": 0,
                  "device": "cuda" if cuda else "cpu", "custom_loss": ["smoothness"],
                  "cuda_graphs": args.cuda_graphs,
                  **(features() if drawer == "features" else random_weight_settings(drawer))}
        run = Run(build_settings(values), [perceptor])
        run.finite_check_every = 10  # a GPU's (the CPU's is every step)
        steps = iter(run)
        next(steps)
        if not cuda:
            next(steps)
            with HostSyncs() as found:
                for _ in range(3):
                    next(steps)
            report = found.report().replace("\n", "\n  ")
            print(f"{drawer}: " + (report or "none found in 3 steps on the CPU"))
            continue
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                next(steps)
        torch.cuda.set_sync_debug_mode(0)
        sites = {str(w.message).splitlines()[0] + " @ " + f"{w.filename}:{w.lineno}" for w in caught}
        print(f"{drawer}: " + ("\n  ".join(sorted(sites)) or "no synchronisation in 3 steps"))


def features() -> dict:
    """fast_pixel with what else a step may run: the tiler's roll, the edge loss's band and mean colour,
    the gaussian loss's vignette, the palette loss, a spot prompt, an image prompt and a target image."""
    picture = scratch_directory("pixray-sync-") / "picture.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(picture)
    return {"drawer": "fast_pixel", "prompts": "a red circle @spot | a blue sky", "filters": ["tiler"],
            "custom_loss": ["edge", "gaussian", "palette"], "edge_color": "", "palette": "[red, blue]",
            "image_prompts": str(picture), "target_images": str(picture)}


if __name__ == "__main__":
    main()
