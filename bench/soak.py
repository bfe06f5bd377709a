"""Soak the real Cog server: many predictions, cancels and bad requests mixed in; prints what leaked.

Prints figures; passes or fails nothing. Starts coglet on 127.0.0.1 with the shapes-world CLIP (no
downloads) and sends ``--predictions`` requests one after another, in a fixed rotation of kinds:
sync predictions of each pixel drawer and fft, streamed predictions cancelled after their first
frame, and requests that must fail (bad settings, a file path, a budget overrun). Then it prints the
server's RSS growth after warm-up, unexpected outcomes, and the files left behind by pixray (its
prediction and upload directories) and by coglet (its per-prediction directories).

    python bench/soak.py --predictions 200
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from cog_server import BASE_SETTINGS, Server  # noqa: E402 - the tests' server launcher
from scratch import scratch_directory  # noqa: E402

COGLET_PREDICTIONS = Path("/tmp/coglet/predictions")

# (kind, input, expected status); a "cancel" kind is streamed and cancelled after its first frame.
KINDS = [
    ("pixel", {"prompts": "a red circle", "drawer": "pixel", "display_every": 5}, "succeeded"),
    ("fast_pixel", {"prompts": "a blue square", "drawer": "fast_pixel", "display_every": 5}, "succeeded"),
    ("fft", {"prompts": "a green cross", "drawer": "fft", "display_every": 5}, "succeeded"),
    ("cancel", {"prompts": "a white triangle", "drawer": "pixel", "display_every": 1,
                "settings": "iterations: 400"}, "canceled"),
    ("bad-settings", {"prompts": "x", "drawer": "pixel", "settings": "learning_rate: .nan"}, "failed"),
    ("file-path", {"prompts": "x", "drawer": "pixel", "init_image": "/etc/hostname"}, "failed"),
    ("over-budget", {"prompts": "x", "drawer": "pixel", "settings": "num_cuts: 1000"}, "failed"),
]


def cancelled_run(server: Server, input_: dict, prediction_id: str) -> str:
    seen = threading.Event()

    def cancel() -> None:
        if seen.wait(60):
            server.post(f"/predictions/{prediction_id}/cancel")

    threading.Thread(target=cancel, daemon=True).start()
    status = "none"
    for _, name, data in server.events(input_, prediction_id):
        if name == "output":
            seen.set()
        if name == "completed":
            status = data["status"]
    return status


def count_files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=len(KINDS), help="predictions before the RSS baseline")
    args = parser.parse_args()

    tmp = scratch_directory("pixray-soak-")
    coglet_before = set(COGLET_PREDICTIONS.iterdir()) if COGLET_PREDICTIONS.exists() else set()
    base = BASE_SETTINGS.replace("iterations: 6", "iterations: 20")
    server = Server(tmp, base=base, OMP_NUM_THREADS="2")
    outcomes: Counter[str] = Counter()
    unexpected: list[str] = []
    started = time.perf_counter()
    try:
        server.wait_for("READY")
        baseline = peak = 0.0
        for i in range(args.predictions):
            kind, input_, expected = KINDS[i % len(KINDS)]
            if kind == "cancel":
                status = cancelled_run(server, input_, f"soak-{i}")
            else:
                status = server.predict(input_)[1].get("status", "none")
            outcomes[f"{kind}: {status}"] += 1
            if status != expected:
                unexpected.append(f"#{i} {kind}: {status} (expected {expected})")
            rss = server.rss_mb()
            if i + 1 == args.warmup:
                baseline = rss
            peak = max(peak, rss)
        server.wait_for("READY")
        seconds = time.perf_counter() - started
        final = server.rss_mb()
        predictions_dir = tmp / "predictions"
        ours = sorted(f"{p.name} ({count_files(p)} files)" for root in predictions_dir.iterdir()
                      for p in root.iterdir())
    finally:
        server.stop()
    coglet_after = set(COGLET_PREDICTIONS.iterdir()) if COGLET_PREDICTIONS.exists() else set()
    left_after_stop = sorted(p.name for p in predictions_dir.iterdir())

    print(f"{args.predictions} predictions in {seconds:.0f} s; server READY at the end")
    for key, count in sorted(outcomes.items()):
        print(f"  {key}: {count}")
    print(f"unexpected outcomes: {len(unexpected)}" + "".join(f"\n  {u}" for u in unexpected[:20]))
    print(f"RSS (server + worker): {baseline:.0f} MB after {args.warmup} warm-up predictions, "
          f"{final:.0f} MB at the end ({(final / baseline - 1) * 100:+.1f} %), peak {peak:.0f} MB")
    print(f"pixray's work directory before stop: {', '.join(ours)}")
    print(f"left after stop: {left_after_stop or 'nothing'} (a killed worker's directory is removed by the "
          "next server start)")
    print(f"coglet per-prediction directories left in {COGLET_PREDICTIONS}: "
          f"{len(coglet_after - coglet_before)}")


if __name__ == "__main__":
    main()
