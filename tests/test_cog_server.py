"""The Cog HTTP contract, against the real coglet server on 127.0.0.1 with the shapes-world CLIP."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cog_server import BASE_SETTINGS, ROOT, Server, cog_environment
from PIL import Image
from test_hostile_inputs import ROWS, SERVER_ROWS, assert_one_short_line, bad_images, row_text


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("cog")
    server = Server(tmp)
    try:
        server.wait_for("READY")
        yield server
    finally:
        server.stop()


def _png(data_uri: str) -> Image.Image:
    assert data_uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1])))


def _frames(outputs: list[str]) -> list[Image.Image]:
    """The PNG frames of a prediction's outputs (vector drawers also send an SVG before the last)."""
    return [_png(uri) for uri in outputs if not uri.startswith("data:image/svg")]


def test_health_and_schema(server):
    assert server.wait_for("READY")  # a failure frees the slot: the server is not stuck BUSY
    committed = json.loads((ROOT / ".cog" / "openapi_schema.json").read_text())
    assert server.get("/openapi.json") == committed


def test_the_server_runs_with_cog_yamls_environment(server):
    # One malloc arena for the prediction threads (see cog.yaml); the test server starts as the image would.
    assert cog_environment() == {"MALLOC_ARENA_MAX": "1"}
    environ = Path(f"/proc/{server.process.pid}/environ").read_bytes().split(b"\0")
    assert b"MALLOC_ARENA_MAX=1" in environ


def test_sync_prediction_returns_every_frame_final_last(server):
    status, body = server.predict({"prompts": "a red circle", "drawer": "pixel", "display_every": 2,
                                   "seed": 3})
    assert status == 200 and body["status"] == "succeeded", body
    *_, svg, last = body["output"]
    assert svg.startswith("data:image/svg+xml") and last.startswith("data:image/png")
    assert base64.b64decode(svg.split(",", 1)[1]).startswith(b'<svg xmlns="http://www.w3.org/2000/svg" '
                                                             b'width="48" height="32"')
    frames = _frames(body["output"])
    assert len(frames) == 4  # steps 0, 2, 4 and the final image
    assert all(f.size == (48, 32) and f.format == "PNG" for f in frames)
    assert frames[-1].text["pixray_iteration"] == "6"
    assert body["metrics"]["iterations"] == 6 and body["metrics"]["seconds_per_iteration"] > 0
    assert "final_loss" in body["metrics"] and body["metrics"]["seed"] == 3
    # The logs (which Replicate shows as the prediction runs) say how it goes, a line per frame.
    logs = body["logs"]
    assert "pixray: drawer pixel, 48x32, 6 iterations, clip_models shapes-demo, seed 3\n" in logs
    assert re.findall(r"^pixray: step (\d) of 6: loss \d+\.\d{4} \(shapes-demo \d+\.\d{4}\)$", logs,
                      re.MULTILINE) == ["0", "2", "4"]
    assert re.search(r"^pixray: done: 6 steps in [\d.]+ s \([\d.]+ s per step\), loss \d+\.\d{4}$", logs,
                     re.MULTILINE)


@pytest.mark.parametrize("drawer", ["line_sketch", "clipdraw"])
def test_stroke_drawers_send_their_svg_then_the_final_frame(server, drawer):
    _, body = server.predict({"prompts": "a red circle", "drawer": drawer, "display_every": 0,
                              "settings": "strokes: 16\niterations: 2"})
    assert body["status"] == "succeeded", body
    svg, last = body["output"]
    assert b"<path d=\"M " in base64.b64decode(svg.split(",", 1)[1])
    assert _png(last).size == (48, 32)


def test_frames_stream_one_at_a_time(server):
    # 24 steps: the frames' spread must stand out against the server's fixed costs before the first
    # frame and after the last, which a loaded machine stretches.
    events = list(server.events({"prompts": "a blue square", "drawer": "pixel", "display_every": 2,
                                 "settings": "iterations: 24"}, "sse-1"))
    names = [name for _, name, _ in events]
    outputs = [t for t, name, _ in events if name == "output"]
    start = next(t for t, name, _ in events if name == "start")
    assert names[0] == "start" and names[-1] == "completed" and len(outputs) == 14  # 13 PNGs, 1 SVG
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


def _data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _error(body: dict) -> str:
    """The prediction's error as pixray said it (coglet prefixes where it came from)."""
    assert body.get("status") == "failed", body
    return body["error"].split("PredictionError: ", 1)[-1]


def test_hostile_settings_fail_cleanly_and_leave_the_server_ready(server, tmp_path):
    images = bad_images(tmp_path)
    rows = {row.id: row for row in ROWS}
    server.predict({"prompts": "warm up", "drawer": "pixel"})
    rss_before = server.rss_mb()
    for name in SERVER_ROWS:
        row = rows[name]
        request = {"drawer": "pixel", "settings": row_text(row, images)}
        if not row.text.startswith("prompts:"):  # an input given overrides the settings text
            request["prompts"] = "a red circle"
        status, body = server.predict(request)
        assert status == 200 and body["status"] == "failed", (name, body.get("status"))
        message = _error(body)
        assert_one_short_line(message, row.server or row.pattern)
        assert str(tmp_path) not in message and "/" not in message.replace("AC/DC", ""), (name, message)
        assert server.wait_for("READY")
    status, body = server.predict({"prompts": "a red circle", "drawer": "pixel"})
    assert body["status"] == "succeeded"
    growth = server.rss_mb() / rss_before - 1
    print(f"RSS {rss_before:.0f} MB before {len(SERVER_ROWS)} hostile requests, growth {growth:+.1%}")
    assert growth < 0.25


def test_a_request_reads_only_files_it_sent(server, tmp_path):
    secret = tmp_path / "secret.png"
    Image.new("RGB", (48, 32), (0, 255, 0)).save(secret)
    messages = []
    for path in (str(secret), str(tmp_path / "missing.png"), "/etc/passwd"):
        _, body = server.predict({"prompts": "x", "drawer": "pixel", "init_image": path})
        messages.append(_error(body))
    # Refused alike, whether the file exists or not, and without quoting the path.
    assert len(set(messages)) == 1 and "not paths on the server" in messages[0]
    assert str(tmp_path) not in messages[0]
    _, body = server.predict({"prompts": "x", "drawer": "pixel", "settings": f"init_image: {secret}"})
    assert "'init_image' is set by the server" in _error(body)
    # What the request sends itself is used: frame 0 starts from the sent image.
    sent = Image.new("RGB", (48, 32), (250, 10, 10))
    _, body = server.predict({"prompts": "x", "drawer": "pixel", "init_image": _data_uri(sent),
                              "display_every": 1, "settings": "iterations: 1"})
    assert body["status"] == "succeeded", body
    first = _png(body["output"][0]).convert("RGB")
    assert first.getpixel((24, 16))[0] > 200
    uploads = [p for root in (server.tmp / "predictions").iterdir() for p in (root / "uploads").iterdir()]
    assert uploads == []  # Cog deletes what it saved once the prediction ends


def test_steering_images_come_through_file_inputs(server):
    """image_prompts, target_images, image_labels, overlay_image and spot_file are file inputs;
    the settings text sets their weights and schedules, never their paths."""
    red, blue = Image.new("RGB", (48, 32), (250, 10, 10)), Image.new("RGB", (48, 32), (10, 10, 250))
    mask = Image.new("L", (48, 32), 0)
    mask.paste(255, (24, 0, 48, 32))
    _, body = server.predict({
        "prompts": "", "drawer": "pixel", "display_every": 1,
        "image_prompts": [_data_uri(red), _data_uri(blue)], "target_images": [_data_uri(blue)],
        "image_labels": [_data_uri(red)], "overlay_image": _data_uri(red), "spot_file": _data_uri(mask),
        "settings": "spot_prompts: a red circle\nspot_prompts_off: a blue square\noverlay_every: 3\n"
                    "image_prompt_weight: 0.5"})
    assert body["status"] == "succeeded", body
    first = _png(body["output"][0]).convert("RGB")
    assert first.getpixel((24, 16))[0] > 200  # step 0 took the opaque red overlay
    uploads = [p for root in (server.tmp / "predictions").iterdir() for p in (root / "uploads").iterdir()]
    assert uploads == []
    _, body = server.predict({"prompts": "x", "drawer": "pixel", "settings": "spot_file: /etc/hostname"})
    assert "'spot_file' is set by the server" in _error(body) and "spot_file" in _error(body)


def test_unset_inputs_leave_settings_to_the_settings_text(server):
    _, body = server.predict({"prompts": "a red circle",
                              "settings": "drawer: fast_pixel\nquality: draft\naspect: square\n"
                                          "display_every: 3\nsize: none\nscale: 0.25"})
    assert body["status"] == "succeeded", body
    frames = _frames(body["output"])
    assert len(frames) == 3 and frames[-1].size == (36, 36)  # steps 0, 3, final; square at scale 0.25
    recorded = frames[-1].text["pixray_settings"]
    assert "drawer: fast_pixel" in recorded and "quality: draft" in recorded
    assert str(body["metrics"]["seed"]) == frames[-1].text["pixray_seed"]  # the one chosen for it
    _, body = server.predict({"prompts": "a red circle", "drawer": "pixel", "display_every": 2,
                              "settings": "drawer: fast_pixel\ndisplay_every: 3"})
    frames = _frames(body["output"])
    assert len(frames) == 4 and "drawer: pixel" in frames[-1].text["pixray_settings"]  # inputs win


OWNER_SETTINGS = BASE_SETTINGS + "prompts: a blue square\ndrawer: pixel\nquality: draft\ndisplay_every: 2\n"


@pytest.fixture(scope="module")
def owner_server(tmp_path_factory) -> Iterator[Server]:
    """A server whose owner set base settings, a budget and a weights directory (with a damaged file)."""
    tmp = tmp_path_factory.mktemp("owner")
    (tmp / "weights").mkdir()
    server = Server(tmp, base=OWNER_SETTINGS, PIXRAY_MAX_ITERATIONS="30", PIXRAY_MAX_WORK="2000",
                    PIXRAY_MAX_IMAGE_PIXELS="10000")
    try:
        server.wait_for("READY")
        yield server
    finally:
        server.stop()


def test_base_settings_apply_when_a_request_leaves_them_unset(owner_server):
    _, body = owner_server.predict({})
    assert body["status"] == "succeeded", body
    frames = _frames(body["output"])
    assert len(frames) == 4  # 6 iterations, a frame every 2 (base), and the final one
    recorded = frames[-1].text["pixray_settings"]
    assert "prompts: a blue square" in recorded and "quality: draft" in recorded
    _, body = owner_server.predict({"settings": "display_every: 3"})
    assert len(_frames(body["output"])) == 3
    _, body = owner_server.predict({"display_every": 0, "settings": "display_every: 3"})
    assert len(_frames(body["output"])) == 1


def test_the_owners_budget_refuses_before_any_work(owner_server):
    _, body = owner_server.predict({"iterations": 31})
    assert "iterations 31 is over this server's limit of 30 ($PIXRAY_MAX_ITERATIONS)" in _error(body)
    _, body = owner_server.predict({"iterations": 30, "settings": "num_cuts: 70"})
    assert "= 2100 is over this server's limit of 2000 ($PIXRAY_MAX_WORK)" in _error(body)
    _, body = owner_server.predict({"init_image": _data_uri(Image.new("RGB", (101, 100)))})
    assert "megapixels" in _error(body) and "the uploaded file" in _error(body)
    assert "metrics" not in body or "iterations" not in body["metrics"]


def test_a_damaged_weight_file_fails_that_request_only(owner_server):
    (owner_server.tmp / "weights" / "ViT-B-32.pt").write_bytes(b"truncated")
    _, body = owner_server.predict({"settings": "clip_models: [ViT-B/32]"})
    message = _error(body)
    assert "weight file 'ViT-B-32.pt' fails its checksum" in message and str(owner_server.tmp) not in message
    assert owner_server.wait_for("READY")
    assert owner_server.predict({})[1]["status"] == "succeeded"


def test_output_directory_lost_mid_run_fails_cleanly(owner_server):
    replaced = threading.Event()

    def replace_directory_with_a_file() -> None:
        root = next((owner_server.tmp / "predictions").iterdir())
        directory = max((p for p in root.iterdir() if p.name.startswith("p")), key=lambda p: p.name)
        shutil.rmtree(directory)
        directory.write_text("not a directory")
        replaced.set()

    final = None
    for _, name, data in owner_server.events({"display_every": 1, "iterations": 30}, "lost-dir-1"):
        if name == "output" and not replaced.is_set():
            replace_directory_with_a_file()
        if name == "completed":
            final = data
    assert final["status"] == "failed" and "cannot write frame" in final["error"], final
    assert "Not a directory" in final["error"] and str(owner_server.tmp) not in final["error"]
    assert owner_server.wait_for("READY")
    assert owner_server.predict({})[1]["status"] == "succeeded"


def test_sigterm_mid_prediction_exits_cleanly_and_the_next_start_removes_its_files(tmp_path):
    first = Server(tmp_path, base=OWNER_SETTINGS)
    try:
        first.wait_for("READY")
        for _, name, _ in first.events({"display_every": 1, "iterations": 400}, "term-1"):
            if name == "output":
                break
        first.process.send_signal(signal.SIGTERM)  # the server process, as `docker stop` does
        first.process.wait(timeout=30)
    finally:
        first.stop()
    workdirs = list((tmp_path / "predictions").iterdir())
    pngs = [p for d in workdirs for p in d.rglob("*.png")]
    for png in pngs:  # whatever is left is whole: frames are written to a temporary name first
        with Image.open(png) as image:
            image.load()
    second = Server(tmp_path, base=OWNER_SETTINGS)
    try:
        second.wait_for("READY")
        left = list((tmp_path / "predictions").iterdir())
        assert len(left) == 1 and left[0] not in workdirs, (workdirs, left)
    finally:
        second.stop()
