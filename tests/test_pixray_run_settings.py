"""What Pixray's run-level settings do here: cut_pow, cudnn_determinism, cuda_device (also for
``pixray batch``'s GPU workers), and the notebook display of ``pixray.run`` (display_every,
display_clear)."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import yaml

import pixray
from pixray import engine as engine_module
from pixray import model_cache as model_cache_module
from pixray import runtime
from pixray.batch import BatchWorker, read_jobs
from pixray.cutouts import CUT_METHODS, _Draw
from pixray.settings import SettingsError


@pytest.mark.parametrize("method", sorted(CUT_METHODS))
def test_cut_pow_favours_close_ups_above_one_and_wide_crops_below(method):
    def areas(power: float) -> torch.Tensor:
        params = CUT_METHODS[method](32, crop_power=power).sample(
            400, torch.Generator().manual_seed(0), torch.device("cpu"), (32, 48))
        quads = params.quads[~params.framed]
        x, y = quads[..., 0], quads[..., 1]  # the shoelace formula over the four corners
        return 0.5 * (x * y.roll(-1, 1) - y * x.roll(-1, 1)).sum(1).abs()

    assert areas(3.0).mean() < 0.9 * areas(1.0).mean() < 0.9 * areas(1 / 3).mean()


def test_draws_at_power_one_are_uniform_draws_bit_for_bit():
    # cut_pow's default keeps every run's cutouts (and the demo's images) exactly as they were.
    drawn = _Draw(50, torch.Generator().manual_seed(3), torch.device("cpu")).uniform(0.25, 0.95, power=1.0)
    plain = torch.rand(50, generator=torch.Generator().manual_seed(3)) * (0.95 - 0.25) + 0.25
    assert torch.equal(drawn, plain)


def test_a_run_gives_its_cutouts_cut_pow(small_settings, tiny_perceptor):
    run = pixray.generate({**small_settings, "cut_pow": 2.5}, perceptors=[tiny_perceptor])
    assert [cutouts.crop_power for cutouts, _ in run.cut_groups] == [2.5]


def test_cudnn_determinism_holds_during_each_step_and_is_restored(small_settings, tiny_perceptor,
                                                                  monkeypatch):
    seen = []
    synth = engine_module.Run._synth

    def spying(self):
        seen.append(torch.backends.cudnn.deterministic)
        return synth(self)

    monkeypatch.setattr(engine_module.Run, "_synth", spying)
    before = torch.backends.cudnn.deterministic
    list(pixray.generate({**small_settings, "iterations": 2, "cudnn_determinism": True},
                         perceptors=[tiny_perceptor]))
    assert seen == [True, True, True] and torch.backends.cudnn.deterministic == before
    seen.clear()
    list(pixray.generate({**small_settings, "iterations": 1}, perceptors=[tiny_perceptor]))
    assert seen == [before, before]


def _two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_a_run_on_cuda_uses_cuda_device(monkeypatch):
    _two_gpus(monkeypatch)
    assert runtime.choose_device("auto", "cuda:1") == torch.device("cuda:1")
    assert runtime.choose_device("cuda", "cuda:0") == torch.device("cuda:0")
    assert runtime.choose_device("cuda", "cuda") == torch.device("cuda")
    assert runtime.choose_device("cpu", "cuda:1") == torch.device("cpu")
    with pytest.raises(SettingsError, match=r"'cuda_device': 'cuda:2' is not on this machine; it has 2 CUDA "
                                            r"devices \(cuda:0 to cuda:1\)"):
        runtime.choose_device("auto", "cuda:2")


def test_a_cuda_device_on_a_machine_without_cuda_changes_nothing():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")  # the point is a machine without it, as Pixray's fallback
    assert runtime.choose_device("auto", "cuda:3") == torch.device(
        "mps" if torch.backends.mps.is_available() else "cpu")


def test_a_batch_worker_runs_its_jobs_on_its_own_gpu(tmp_path, tiny_checkpoint, monkeypatch):
    # A local worker on a GPU machine is given "cuda:N"; it gave that as the job's device, which only
    # takes auto, cpu, cuda or mps, so every job failed there. Now it is the job's cuda_device.
    asked = []

    def choose(setting="auto", cuda_device="cuda"):
        asked.append((setting, cuda_device))
        return torch.device("cpu")  # this machine's stand-in for the GPU

    for module in (runtime, engine_module, model_cache_module):
        monkeypatch.setattr(module, "choose_device", choose)
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump([{"prompts": "a red circle", "drawer": "fast_pixel", "size": [16, 16],
                                     "iterations": 1, "num_cuts": 2, "clip_models": [str(tiny_checkpoint)],
                                     "save_intermediates": False}]))
    record = BatchWorker("gpu-1", device="cuda:1").run(read_jobs(path)[0], str(tmp_path / "out"))
    assert record["status"] == "done", record.get("error")
    assert asked and set(asked) == {("auto", "cuda:1")}


class _Notebook:
    """A stand-in for a Jupyter kernel's IPython: what it was asked to show and clear."""

    def __init__(self, kernel: bool) -> None:
        self.shown: list[bytes] = []
        self.cleared = 0
        shell = types.SimpleNamespace(kernel=object()) if kernel else types.SimpleNamespace()
        self.ipython = types.ModuleType("IPython")
        self.ipython.get_ipython = lambda: shell
        self.display = self.ipython.display = types.ModuleType("IPython.display")
        self.display.Image = lambda data: data
        self.display.display = self.shown.append
        self.display.clear_output = lambda wait=False: setattr(self, "cleared", self.cleared + 1)

    def install(self, monkeypatch) -> None:
        monkeypatch.setitem(sys.modules, "IPython", self.ipython)
        monkeypatch.setitem(sys.modules, "IPython.display", self.display)


@pytest.mark.parametrize("clear", [False, True])
def test_pixray_run_in_a_notebook_shows_the_image_every_display_every_steps(tmp_path, monkeypatch, clear):
    notebook = _Notebook(kernel=True)
    notebook.install(monkeypatch)
    image = pixray.run("a red circle", "fast_pixel", clip_models="shapes-demo", size=[24, 16], iterations=5,
                       num_cuts=2, device="cpu", seed=4, outdir=str(tmp_path / "out"), display_every=2,
                       display_clear=clear)
    assert len(notebook.shown) == 4  # steps 0, 2 and 4, and the final image
    assert all(png.startswith(b"\x89PNG") for png in notebook.shown)
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(notebook.shown[-1])).tobytes() == image.tobytes()
    assert notebook.cleared == (4 if clear else 0)


def test_pixray_run_outside_a_notebook_shows_nothing(tmp_path, monkeypatch):
    notebook = _Notebook(kernel=False)  # a terminal IPython: no kernel to show images in
    notebook.install(monkeypatch)
    pixray.run("a red circle", "fast_pixel", clip_models="shapes-demo", size=[24, 16], iterations=2,
               num_cuts=2, device="cpu", outdir=str(tmp_path / "out"), display_every=1)
    assert notebook.shown == []


def test_pixray_run_of_an_animation_in_a_notebook_shows_its_gif(tmp_path, monkeypatch):
    from PIL import Image

    for i, colour in enumerate(["red", "blue"]):
        Image.new("RGB", (24, 16), colour).save(tmp_path / f"frame{i}.png")
    notebook = _Notebook(kernel=True)
    notebook.install(monkeypatch)
    pixray.run("a red circle", "fast_pixel", clip_models="shapes-demo", size=[24, 16], iterations=2,
               num_cuts=2, device="cpu", init_image=str(tmp_path / "frame*.png"), save_every=1,
               animation_dir=str(tmp_path / "anim"))
    assert notebook.shown == [(tmp_path / "anim" / "anim.gif").read_bytes()]
