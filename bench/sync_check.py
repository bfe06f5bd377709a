"""Lists host-device synchronisations inside the engine's step loop (CUDA only).

    python bench/sync_check.py      # prints each synchronising call site, or "no synchronisation"

Uses torch.cuda.set_sync_debug_mode("warn") after the run is prepared and its first step done.
"""

from __future__ import annotations

import warnings

import open_clip
import torch

from pixray.engine import Run
from pixray.perceptors import Perceptor
from pixray.settings import build_settings


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return
    model = open_clip.create_model("ViT-B-32-quickgelu")
    settings = build_settings({"prompts": "a red circle", "iterations": 6, "device": "cuda", "seed": 0,
                               "custom_loss": ["smoothness"]})
    steps = iter(Run(settings, [Perceptor("ViT-B/32", model)]))
    next(steps)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            next(steps)
    torch.cuda.set_sync_debug_mode(0)
    sites = {str(w.message).splitlines()[0] + " @ " + f"{w.filename}:{w.lineno}" for w in caught}
    print("\n".join(sorted(sites)) or "no synchronisation in 3 steps")


if __name__ == "__main__":
    main()
