"""Two predictions through the real Cog server on this machine's GPU (device auto), printing metrics.

The vqgan drawer uses imagenet_f16_16384's architecture with random weights (through the real
loader, as bench/benchmark.py does) and the shipped shapes-demo CLIP, so nothing is downloaded.

    python bench/cog_gpu_smoke.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

import test_cog_server  # noqa: E402
from benchmark import random_vqgan_files  # noqa: E402
from scratch import scratch_directory  # noqa: E402


def main() -> None:
    tmp = scratch_directory("pixray-cog-smoke-")
    base = {"clip_models": ["shapes-demo"], "iterations": 50, **random_vqgan_files(tmp)}
    test_cog_server.BASE_SETTINGS = yaml.safe_dump(base)
    server = test_cog_server.Server(tmp)
    try:
        server.wait_for("READY")
        for drawer in ("vqgan", "vqgan", "fft", "pixel"):
            start = time.perf_counter()
            _, body = server.predict({"prompts": "a red circle on a blue background", "drawer": drawer,
                                      "display_every": 10})
            frames = len(body.get("output") or [])
            print(f"{drawer}: {body['status']} {frames} frames in {time.perf_counter() - start:.1f} s; "
                  f"metrics {body.get('metrics')} {body.get('error') or ''}")
    finally:
        server.stop()
        print((tmp / "server.log").read_text()[-1500:] if "--log" in sys.argv else "")


if __name__ == "__main__":
    main()
