"""What a requester is told when a prediction fails, and which files a request may read (no server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from pixray.errors import RunError, SettingsError
from pixray.init_images import ImageReader
from pixray.serving import (
    MAX_ERROR_CHARS,
    PREDICTIONS_PREFIX,
    PredictionError,
    public_error,
    remove_stale_workdirs,
    scrub_paths,
    server_owned,
)
from pixray.weights import CheckpointError, MissingWeightsError


@pytest.mark.parametrize("exc, expected", [
    (SettingsError("setting 'seed': -1 is not allowed"), "setting 'seed': -1 is not allowed"),
    (RunError("the loss is not a finite number at step 3"), "the loss is not a finite number at step 3"),
    (CheckpointError("weight file '/srv/w/ViT-B-32.pt' fails its checksum"),
     "weight file 'ViT-B-32.pt' fails its checksum"),
    (MissingWeightsError("weight file 'x.pt' not found in '/srv/w': set weights_dir", ["x.pt"]),
     "model weights x.pt are not installed on this server"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB"), "out of memory: ask for"),
    (KeyError("/home/owner/secret/thing"), "internal error (KeyError): 'thing'"),
    (SettingsError("line one\nline two " + "x" * 5000), "line one line two xxx"),
])
def test_public_error_is_one_bounded_line_without_server_paths(exc, expected):
    error = public_error(exc)
    message = str(error)
    assert isinstance(error, PredictionError) and message.startswith(expected), message
    assert "\n" not in message and len(message) <= MAX_ERROR_CHARS
    assert "/srv" not in message and "/home" not in message and "weights_dir" not in message


def test_scrub_paths_keeps_file_names_and_ordinary_slashes():
    text = "cannot read '/tmp/uploads/tmpab12cd.png' (AC/DC, 1/2, http://x.org/a.png, ~/x, ./rel/a)"
    assert scrub_paths(text) == "cannot read 'tmpab12cd.png' (AC/DC, 1/2, http://x.org/a.png, ~/x, ./rel/a)"


def test_file_settings_are_server_owned():
    owned = server_owned()
    assert {"init_image", "vqgan_config", "vqgan_checkpoint", "outdir", "weights_dir"} <= set(owned)
    assert "prompts" not in owned and "pixel_size" not in owned


def test_image_reader_with_uploads_reads_only_files_inside(tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(uploads / "tmp1.png")
    Image.new("RGB", (8, 8), (0, 255, 0)).save(tmp_path / "secret.png")
    (uploads / "link.png").symlink_to(tmp_path / "secret.png")
    reader = ImageReader(uploads=uploads)
    assert reader.read(str(uploads / "tmp1.png"), 4, 4, "init_image")[0, 0].mean() == 1.0
    refusals = set()
    for path in (tmp_path / "secret.png", uploads / "link.png", uploads / ".." / "secret.png",
                 tmp_path / "missing.png", Path("secret.png")):
        with pytest.raises(SettingsError) as info:
            reader.read(str(path), 4, 4, "init_image")
        refusals.add(str(info.value))
    assert len(refusals) == 1 and str(tmp_path) not in refusals.pop()


def test_stale_workdirs_of_dead_servers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    for name in (f"{PREDICTIONS_PREFIX}{dead}-abc", f"{PREDICTIONS_PREFIX}{os.getpid()}-def",
                 "pixray-predictions-notapid", "unrelated"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "frame.png").write_bytes(b"x")
    remove_stale_workdirs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{PREDICTIONS_PREFIX}{os.getpid()}-def", "pixray-predictions-notapid", "unrelated"])


def _service(tmp_path, monkeypatch, checkpoint, base: str):
    """A service set up from the environment, as Cog's setup does, with ``base`` as its settings
    file under the tiny CLIP ``checkpoint`` (preloaded; never downloading)."""
    from pixray.serving import Service

    (tmp_path / "base.yaml").write_text(f"clip_models: [{checkpoint}]\n{base}")
    environment = {"PIXRAY_SETTINGS": str(tmp_path / "base.yaml"), "PIXRAY_PRELOAD": str(checkpoint),
                   "PIXRAY_OUTPUT_DIR": str(tmp_path / "out"), "PIXRAY_DOWNLOAD": "0"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Service.from_environment()


def test_a_server_owner_may_preload_and_use_a_clip_checkpoint_by_path(tmp_path, monkeypatch, tiny_checkpoint):
    from pixray.serving import Request

    service = _service(tmp_path, monkeypatch, tiny_checkpoint, "drawer: pixel\nsize: [16, 16]\n"
                       "iterations: 2\nnum_cuts: 2\ndevice: cpu\nprompts: a red circle\n")
    assert service.models.loads == 1
    frames = list(service.frames(Request(display_every=0), lambda name, value: None))
    # The pixel drawer's vector picture comes just before the final image, which stays last.
    assert [f.suffix for f in frames] == [".svg", ".png"] and service.models.loads == 1
    with pytest.raises(PredictionError, match="not model names"):  # requests still may not name paths
        list(service.frames(Request(settings_text=f"clip_models: [{tiny_checkpoint}]"), lambda n, v: None))


def test_a_request_for_a_video_gets_the_mp4_of_every_step_last(tmp_path, monkeypatch, tiny_checkpoint):
    import imageio_ffmpeg

    from pixray.media import video_fps
    from pixray.serving import Request

    service = _service(tmp_path, monkeypatch, tiny_checkpoint, "drawer: fast_pixel\nsize: [16, 16]\n"
                       "iterations: 3\nnum_cuts: 2\ndevice: cpu\n")
    outputs = list(service.frames(Request(prompts="a red circle", display_every=2, make_video=True),
                                  lambda name, value: None))
    assert [f.suffix for f in outputs] == [".png", ".png", ".png", ".mp4"]  # steps 0, 2, the final, video
    assert imageio_ffmpeg.count_frames_and_secs(str(outputs[-1]))[0] == 4 + video_fps(4)
    outputs = list(service.frames(Request(prompts="a red circle", display_every=0, make_video=True,
                                          settings_text="gif: true"), lambda name, value: None))
    assert [f.suffix for f in outputs] == [".png", ".gif", ".mp4"]
    assert [f.suffix for f in service.frames(Request(prompts="a red circle", display_every=0),
                                             lambda name, value: None)] == [".png"]


def test_a_shown_steps_frame_streams_before_its_perceptor_pass(tmp_path, monkeypatch, tiny_checkpoint):
    from pixray.engine import Run
    from pixray.serving import Request

    service = _service(tmp_path, monkeypatch, tiny_checkpoint, "drawer: pixel\nsize: [16, 16]\n"
                       "iterations: 3\nnum_cuts: 2\ndevice: cpu\nprompts: a red circle\n")
    request = Request(display_every=2, seed=5)
    passes = []
    scored = Run._backward

    def counted(run, image, views, generator, index):
        passes.append(index)
        return scored(run, image, views, generator, index)

    monkeypatch.setattr(Run, "_backward", counted)
    frames = service.frames(request, lambda name, value: None)
    first = next(frames)
    assert passes == []  # step 0's frame came before the perceptors saw anything
    second = next(frames)
    assert passes == [0, 1] and second.name.endswith("-00002.png")  # step 2's, before its pass
    assert [f.suffix for f in frames] == [".svg", ".png"] and passes == [0, 1, 2]
    # The frames are the pictures the steps scored, as before.
    steps = list(Run(service.settings_for(request), models=service.models))
    for path, step in ((first, steps[0]), (second, steps[2])):
        with Image.open(path) as frame:
            assert frame.convert("RGB").tobytes() == step.pil().convert("RGB").tobytes()


def test_init_image_is_stretched_found_by_glob_or_fetched_as_pixray_does(tmp_path):
    import functools

    from local_http import QuietFiles, serving

    wide = Image.new("RGB", (80, 40), (0, 0, 255))
    wide.paste((255, 0, 0), (0, 0, 20, 40))  # the left quarter red
    wide.save(tmp_path / "wide-1.png")
    reader = ImageReader()
    image = reader.read(str(tmp_path / "wide-1.png"), 32, 32, "init_image")
    assert image[0, 0, 16, 3] > 0.9 and image[0, 2, 16, 28] > 0.9  # stretched, not cropped to the middle
    assert torch.equal(reader.read(str(tmp_path / "wide-*.png"), 32, 32, "init_image"), image)
    wide.save(tmp_path / "wide-2.png")
    with pytest.raises(SettingsError, match=r"matches 2 files .*name one image"):
        reader.read(str(tmp_path / "wide-*.png"), 32, 32, "init_image")
    with pytest.raises(SettingsError, match="matches no file"):
        reader.read(str(tmp_path / "none-*.png"), 32, 32, "init_image")

    with serving(functools.partial(QuietFiles, directory=str(tmp_path))) as url:
        assert torch.equal(reader.read(f"{url}/wide-1.png", 32, 32, "init_image"), image)
        with pytest.raises(SettingsError, match=r"(?i)cannot fetch .*missing\.png.*not found"):
            reader.read(f"{url}/missing.png", 32, 32, "init_image")
    with pytest.raises(SettingsError, match="a request may only use files it sends"):
        ImageReader(uploads=tmp_path / "uploads").read(f"{url}/wide-1.png", 32, 32, "init_image")


def test_uploads_named_like_settings_syntax_are_renamed_and_removed(tmp_path):
    """Cog names a sent file after its URL, which may hold '|', ':' or glob characters: the setting
    gets a plain name for it, and the renamed file goes with the prediction."""
    from pixray.model_cache import ModelCache
    from pixray.serving import Request, Service

    service = Service(ModelCache(torch.device("cpu"), tmp_path / "weights"),
                      {"drawer": "pixel", "device": "cpu", "clip_models": ["ViT-B/32"]}, tmp_path)
    odd = service.uploads / "tmp1a|b:2[x].png"
    plain = service.uploads / "tmp2plain.png"
    for path in (odd, plain):
        Image.new("RGB", (8, 8), (255, 0, 0)).save(path, format="PNG")
    request = Request(prompts="x", files={"image_prompts": [odd, plain]})
    settings = service.settings_for(request)
    first, second = settings.image_prompts.split("|")
    assert Path(first).parent == service.uploads and Path(first).name.startswith("upload-")
    assert Path(first).suffix == ".png" and Path(first).exists() and not odd.exists()
    assert second == str(plain)
    Image.new("RGB", (8, 8), (255, 0, 0)).save(odd, format="PNG")
    with pytest.raises(PredictionError, match="ViT-B-32"):  # fails once the files are read: no weights
        list(service.frames(request, lambda name, value: None))
    assert not any(p.name.startswith("upload-") for p in service.uploads.iterdir())


def test_a_request_may_set_pixrays_run_settings_but_not_the_gpu(tmp_path, monkeypatch, tiny_checkpoint):
    from pixray.serving import Request

    service = _service(tmp_path, monkeypatch, tiny_checkpoint, "drawer: pixel\nsize: [16, 16]\n"
                       "iterations: 2\nnum_cuts: 2\ndevice: cpu\nprompts: a red circle\n")
    text = "cut_pow: 2\ncudnn_determinism: true\ndisplay_clear: true\nalpha_use_g: true\nperceptors: clip\n"
    frames = list(service.frames(Request(display_every=0, settings_text=text), lambda name, value: None))
    assert frames[-1].suffix == ".png"
    with pytest.raises(PredictionError, match=r"'cuda_device' is set by the server, not per request"):
        list(service.frames(Request(settings_text="cuda_device: cuda:1"), lambda n, v: None))
    with pytest.raises(PredictionError, match=r"'device', 'precision' are set by the server, not per"):
        list(service.frames(Request(settings_text="device: cpu\nprecision: float16"), lambda n, v: None))


def test_a_servers_setup_logs_each_tenth_of_a_download(caplog, monkeypatch, tmp_path):
    """Cog shows a setup's log, not a progress bar: a gigabyte fetched at setup said nothing for minutes."""
    import pixray.serving
    from pixray.serving import logged_download

    with logged_download("ViT-B-16.pt") as progress:
        for done in (0, 10, 34_999_999, 35_000_000, 70_000_000, 349_999_999, 350_000_000):
            progress(done, 350_000_000)
        progress(5, None)  # a host that gives no length: nothing to say
    assert caplog.messages == ["ViT-B-16.pt: 10 % of 350 MB", "ViT-B-16.pt: 20 % of 350 MB",
                               "ViT-B-16.pt: 90 % of 350 MB", "ViT-B-16.pt: 100 % of 350 MB"]
    # Setup fetches through it.
    seen = []
    monkeypatch.setattr(pixray.serving, "fetch_missing", lambda names, directory, progress_for=None:
                        seen.append(progress_for))
    monkeypatch.setenv("PIXRAY_DOWNLOAD", "1")
    monkeypatch.setenv("PIXRAY_PRELOAD", "shapes-demo")
    monkeypatch.setenv("PIXRAY_OUTPUT_DIR", str(tmp_path / "out"))
    pixray.serving.Service.from_environment()
    assert seen == [logged_download]
