"""The Cog HTTP contract, against the real coglet server on 127.0.0.1 with the shapes-world CLIP."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator

import pytest
from cog_server import ROOT, Server
from PIL import Image


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("cog")
    server = Server(tmp)
    try:
        server.wait_for("READY")
        server.tmp = tmp
        yield server
    finally:
        server.stop()


def _png(data_uri: str) -> Image.Image:
    assert data_uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1])))


def test_health_and_schema(server):
    assert server.wait_for("READY")  # a failure frees the slot: the server is not stuck BUSY
    committed = json.loads((ROOT / ".cog" / "openapi_schema.json").read_text())
    assert server.get("/openapi.json") == committed


def test_sync_prediction_returns_every_frame_final_last(server):
    status, body = server.predict({"prompts": "a red circle", "drawer": "pixel", "display_every": 2,
                                   "seed": 3})
    assert status == 200 and body["status"] == "succeeded", body
    frames = [_png(uri) for uri in body["output"]]
    assert len(frames) == 4  # steps 0, 2, 4 and the final image
    assert all(f.size == (48, 32) and f.format == "PNG" for f in frames)
    assert frames[-1].text["pixray_iteration"] == "6"
    assert body["metrics"]["iterations"] == 6 and body["metrics"]["seconds_per_iteration"] > 0
    assert "final_loss" in body["metrics"]


def test_frames_stream_one_at_a_time(server):
    events = list(server.events({"prompts": "a blue square", "drawer": "pixel", "display_every": 2,
                                 "settings": "iterations: 12"}, "sse-1"))
    names = [name for _, name, _ in events]
    outputs = [t for t, name, _ in events if name == "output"]
    start = next(t for t, name, _ in events if name == "start")
    assert names[0] == "start" and names[-1] == "completed" and len(outputs) == 7
    assert events[-1][2]["status"] == "succeeded"
    # Produced ~0.2 s apart: buffered output would arrive within milliseconds of the end.
    assert outputs[-1] - outputs[0] > 0.4 * (events[-1][0] - start), [round(t - start, 3) for t in outputs]


@pytest.mark.parametrize("input_, fragment", [
    ({"prompts": "x", "drawer": "crayon"}, "crayon"),
    ({"prompts": "x", "iterations": "many"}, "iterations"),
    ({"prompts": "x", "iterations": 0}, "iterations"),
    ({"prompts": "x", "quality": "superb"}, "superb"),
])
def test_invalid_inputs_get_422(server, input_, fragment):
    status, body = server.predict(input_)
    assert status == 422 and fragment in json.dumps(body), body
    assert server.wait_for("READY")  # a failure frees the slot: the server is not stuck BUSY


@pytest.mark.parametrize("input_, fragment", [
    ({"prompts": "x", "drawer": "pixel", "settings": "pixel_size: [3"}, "input 'settings'"),
    ({"prompts": "x", "drawer": "pixel", "settings": "pixel_sise: 3"}, "pixel_size"),
    ({"prompts": "x", "drawer": "pixel", "settings": "outdir: /etc"}, "'outdir' is set by the server"),
    ({"prompts": "x", "drawer": "pixel", "settings": "clip_models: [/etc/passwd]"}, "not model names"),
    ({"prompts": "", "drawer": "pixel"}, "'prompts' is empty"),
    ({"prompts": "x", "drawer": "pixel", "init_image": "data:image/png;base64,bm90IGFuIGltYWdl"},
     "init_image"),
])
def test_invalid_settings_fail_the_prediction_with_a_clear_message(server, input_, fragment):
    _, body = server.predict(input_)
    assert body["status"] == "failed" and fragment in body["error"], body
    assert server.wait_for("READY")  # a failure frees the slot: the server is not stuck BUSY


def test_cancel_mid_run_then_next_prediction_succeeds(server):
    def cancel_after_first_frame(seen: threading.Event) -> None:
        seen.wait(60)
        server.post("/predictions/cancel-1/cancel")

    seen = threading.Event()
    threading.Thread(target=cancel_after_first_frame, args=(seen,), daemon=True).start()
    outputs, final = 0, None
    for _, name, data in server.events({"prompts": "a red circle", "drawer": "pixel", "display_every": 1,
                                        "settings": "iterations: 400"}, "cancel-1"):
        if name == "output":
            outputs += 1
            seen.set()
        if name == "completed":
            final = data
    assert final["status"] == "canceled" and outputs < 100, (final["status"], outputs)
    canceled = time.monotonic()
    server.wait_for("READY")  # the worker stops between steps and frees its slot
    print(f"slot free {time.monotonic() - canceled:.2f} s after the canceled event")
    _, body = server.predict({"prompts": "a red circle", "drawer": "pixel"})
    assert body["status"] == "succeeded", body


def test_models_load_once_and_old_files_are_removed(server):
    runs = [server.predict({"prompts": "a green cross", "drawer": "fast_pixel", "display_every": 3})[1]
            for _ in range(2)]
    assert all(r["status"] == "succeeded" for r in runs)
    assert [r["metrics"]["model_loads"] for r in runs] == [1, 1]
    directories = [p for root in (server.tmp / "predictions").iterdir() for p in root.iterdir()
                   if p.name != "uploads"]
    assert len(directories) == 1 and len(list(directories[0].iterdir())) == len(runs[1]["output"])


def test_setup_without_weights_reports_setup_failed(tmp_path):
    server = Server(tmp_path, PIXRAY_PRELOAD="ViT-B/32")
    try:
        health = server.wait_for("SETUP_FAILED")
        assert "ViT-B-32.pt" in health["setup"]["logs"] and "python -m pixray.weights download" in \
            health["setup"]["logs"]
    finally:
        server.stop()
