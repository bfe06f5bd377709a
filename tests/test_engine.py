import os
import re
import subprocess
import sys

import pytest
import torch

import pixray
from pixray import engine as engine_module
from pixray.engine import Run, RunError
from pixray.init_images import to_pil
from pixray.losses import Loss
from pixray.settings import SettingsError, build_settings


def _run(small_settings, perceptors, **changes) -> Run:
    return pixray.generate({**small_settings, **changes}, perceptors=perceptors)


def test_step_cadence(small_settings, tiny_perceptor):
    steps = list(_run(small_settings, [tiny_perceptor], iterations=5))
    assert [s.index for s in steps] == [0, 1, 2, 3, 4, 5]
    assert [s.is_final for s in steps] == [False] * 5 + [True]
    for s in steps:
        assert s.image.shape == (1, 3, 24, 32) and s.image.min() >= 0 and s.image.max() <= 1
        assert set(s.losses) == {"tiny", "total"} and s.losses["total"].dim() == 0


def test_same_seed_same_image_bit_for_bit(small_settings, tiny_perceptor):
    a = _run(small_settings, [tiny_perceptor], seed=7)
    b = _run(small_settings, [tiny_perceptor], seed=7)
    c = _run(small_settings, [tiny_perceptor], seed=8)
    images = [list(r)[-1].image for r in (a, b, c)]
    assert torch.equal(images[0], images[1]) and not torch.equal(images[0], images[2])


def test_a_wanted_steps_picture_comes_before_its_pass_and_the_steps_are_unchanged(small_settings,
                                                                                 tiny_perceptor):
    from pixray.engine import Drawn, Step

    items = list(_run(small_settings, [tiny_perceptor], iterations=4, seed=3).drawn_and_steps(
        lambda index: index % 2 == 0))
    assert [(type(i).__name__, i.index) for i in items] == [
        ("Drawn", 0), ("Step", 0), ("Step", 1), ("Drawn", 2), ("Step", 2), ("Step", 3), ("Step", 4)]
    assert items[0].image is items[1].image and items[3].image is items[4].image
    steps = [i for i in items if isinstance(i, Step)]
    plain = list(_run(small_settings, [tiny_perceptor], iterations=4, seed=3))
    assert all(torch.equal(a.image, b.image) and torch.equal(a.losses["total"], b.losses["total"])
               for a, b in zip(steps, plain, strict=True))
    assert not any(isinstance(i, Drawn) for i in _run(small_settings, [tiny_perceptor], iterations=2))
    assert pixray.Drawn is Drawn  # the Python API's name for it


def test_loss_decreases_on_a_fixed_target(small_settings, tiny_perceptor):
    # A fixed target: a noise-free view of the canvas (no crops), so the loss is a smooth function.
    run = _run(small_settings, [tiny_perceptor], iterations=30, num_cuts=8, drawer="fast_pixel",
               learning_rate=0.05, pixel_size=[8, 6])
    losses = [s.loss for s in run]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.01


def _rates_seen(monkeypatch) -> list[float]:
    """The first group's learning rate at each Adam step, from now on."""
    seen = []
    original = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    return seen


def test_learning_rate_drops(small_settings, tiny_perceptor, monkeypatch):
    seen = _rates_seen(monkeypatch)
    list(_run(small_settings, [tiny_perceptor], iterations=8, learning_rate=0.1,
              learning_rate_drops=[50, 75]))
    assert seen == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)


def test_batches_and_mixed_resolutions(small_settings, tiny_perceptor):
    from conftest import tiny_clip

    other = pixray.Perceptor("other", tiny_clip(image_size=48, seed=1))
    steps = list(_run(small_settings, [tiny_perceptor, other], iterations=2, batches=3))
    assert set(steps[-1].losses) == {"tiny", "other", "total"}
    total = steps[0].losses["tiny"] + steps[0].losses["other"]
    assert torch.isclose(steps[0].losses["total"], total)


def test_init_image_is_the_starting_canvas(small_settings, tiny_perceptor, tmp_path):
    from pixray.init_images import to_pil

    start = torch.zeros(1, 3, 24, 32)
    start[:, 0] = 1.0  # pure red
    to_pil(start).save(tmp_path / "red.png")
    first = next(iter(_run(small_settings, [tiny_perceptor], init_image=str(tmp_path / "red.png"),
                           drawer="fast_pixel", pixel_size=[8, 6])))
    assert torch.allclose(first.image, start, atol=1e-6)


def test_final_image_and_errors(small_settings, tiny_perceptor):
    image = _run(small_settings, [tiny_perceptor], iterations=2).final_image()
    assert image.size == (32, 24) and image.mode == "RGB"
    with pytest.raises(SettingsError, match="'prompts' is empty"):
        _run(small_settings, [tiny_perceptor], prompts=" | ")
    with pytest.raises(SettingsError, match="cannot read image"):
        _run(small_settings, [tiny_perceptor], init_image="/nonexistent.png")
    with pytest.raises(SettingsError, match="unknown setting"):
        pixray.generate(build_settings(small_settings), [tiny_perceptor], colour="red")


def test_final_image_after_iterating_to_the_end_is_that_iterations_not_a_new_run(small_settings,
                                                                                 tiny_perceptor, monkeypatch):
    run = _run(small_settings, [tiny_perceptor], iterations=2)
    first = next(iter(run))  # stopped early: the final image needs a whole run
    starts = []
    monkeypatch.setattr(run, "_start", lambda *args: starts.append(args) or Run._start(run, *args))
    image = run.final_image()
    steps = list(run)
    assert len(starts) == 2 and steps[0].index == first.index == 0
    assert run.final_image().tobytes() == steps[-1].pil().tobytes() and len(starts) == 2
    assert image.tobytes() == steps[-1].pil().tobytes()  # each iteration starts again from the seed


def test_a_misspelt_clip_model_is_reported_before_any_model_loads(tmp_path, monkeypatch):
    # The default drawer's VQGAN is missing from this weights directory: the name comes first.
    loads = []
    monkeypatch.setattr(engine_module.ModelCache, "get", lambda *args, **kwargs: loads.append(args))
    settings = build_settings({"prompts": "a lighthouse", "clip_models": ["ViT-B/31"], "device": "cpu",
                               "weights_dir": str(tmp_path)})
    with pytest.raises(SettingsError, match=r"unknown CLIP model 'ViT-B/31' \(did you mean 'ViT-B/32'\?\)"):
        Run(settings)
    assert loads == []


def test_a_loss_that_stops_being_finite_stops_the_run(small_settings, tiny_perceptor):
    run = _run(small_settings, [tiny_perceptor], iterations=5)
    class Exploding(Loss):
        def forward(self, context):
            return (context.canvas * float("nan")).sum()

    run.custom_losses["exploding"] = (Exploding(None), 1.0)
    steps = []
    with pytest.raises(RunError, match=r"not a finite number at step 0 \(from exploding\).*learning_rate"):
        steps.extend(run)
    assert steps == []  # no black "image" is ever handed out


@pytest.mark.parametrize(("error", "size"), [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of "
                            "15.77 GiB of which 2.1 GiB is free."), "20.00 GiB"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: you "
                  "tried to allocate 21474836480 bytes. Error code 12 (Cannot allocate memory)"),
     "21474836480 bytes"),
    (RuntimeError("MPS backend out of memory (MPS allocated: 17.2 GB, other allocations: 1.1 GB, max "
                  "allowed: 18.1 GB). Tried to allocate 1.5 GB on private pool."), "1.5 GB"),
])
def test_running_out_of_memory_says_so_and_hands_back_what_the_step_held(small_settings, tiny_perceptor,
                                                                          monkeypatch, error, size):
    import weakref

    run = _run(small_settings, [tiny_perceptor], iterations=5)
    held = []
    real = run._backward

    def backward(image, views, generator, index):
        if index < 2:
            return real(image, views, generator, index)
        big = torch.ones(1 << 20)
        held.append(weakref.ref(big))
        raise error

    monkeypatch.setattr(run, "_backward", backward)
    steps = []
    with pytest.raises(RunError) as caught:
        steps.extend(run)
    assert [s.index for s in steps] == [0, 1]
    assert str(caught.value) == (
        f"out of CPU memory at step 2 (an allocation of {size}): a 32x24 canvas, num_cuts 4 x batches 1, "
        "clip_models tiny; ask for a smaller size, fewer clip_models, or fewer num_cuts a batch "
        "(more batches keep the total)")
    # The error (kept here, as a server's log line or a batch's record keeps it) no longer holds the step's
    # tensors: the frames it went through are cleared.
    assert held[0]() is None
    # Any other RuntimeError is not taken for one.
    run = _run(small_settings, [tiny_perceptor], iterations=2)
    monkeypatch.setattr(run, "_backward", lambda *args: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match=r"^shape mismatch$"):
        list(run)


def test_running_out_of_memory_loading_the_models_says_so(small_settings, monkeypatch, capsys):
    from pixray.cli import main
    from pixray.model_cache import ModelCache

    def perceptors(self, names, dtype=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB.")

    monkeypatch.setattr(ModelCache, "perceptors", perceptors)
    code = main(["--prompts", "a red circle", "--drawer", "pixel", "--clip_models", "shapes-demo", "--size",
                 "16", "16", "--outdir", small_settings["outdir"], "--quiet"])
    assert code == 2
    assert capsys.readouterr().err == (
        "pixray: error: out of CPU memory loading the models (an allocation of 1.50 GiB): a 16x16 canvas, "
        "num_cuts 30 x batches 1, clip_models shapes-demo; ask for a smaller size, fewer clip_models, or "
        "fewer num_cuts a batch (more batches keep the total)\n")


def test_pixray_run_writes_what_the_cli_writes_and_returns_the_final_image(tmp_path, capsys):
    image = pixray.run("a red circle", "pixel", clip_models="shapes-demo", size=[24, 16], iterations=3,
                       num_cuts=2, device="cpu", seed=4, outdir=str(tmp_path / "out"), save_every=1)
    assert image.size == (24, 16)
    # Its progress bar, as the command's (standard error is no terminal here: a line as it starts and ends).
    bar = capsys.readouterr().err.splitlines()
    assert re.match(r"seed 4: +0%\|.*\| 0/3 ", bar[0]), bar
    assert re.match(r"seed 4: 100%\|.*\| 3/3 .*loss=", bar[-1]), bar
    # tqdm reads $TQDM_DISABLE as it is imported: in a process of its own.
    script = ("import pixray; pixray.run('a red circle', 'pixel', clip_models='shapes-demo', size=[24, 16], "
              f"iterations=1, num_cuts=2, device='cpu', outdir={str(tmp_path / 'quiet')!r})")
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "TQDM_DISABLE": "1"})
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["output.png", "output.svg", "settings.yaml", "steps"]
    steps = sorted(p.name for p in (tmp_path / "out" / "steps").iterdir())
    assert steps == ["frame_0000.png", "frame_0001.png", "frame_0002.png", "frame_0003.png", "output.mp4"]
    import numpy as np
    from PIL import Image

    with Image.open(tmp_path / "out" / "output.png") as saved:
        assert saved.text["pixray_iteration"] == "3"
        assert np.array_equal(np.asarray(saved.convert("RGB")), np.asarray(image))


@pytest.mark.parametrize("name", ["reset_settings", "add_settings", "apply_settings", "do_init", "do_run"])
def test_pixrays_notebook_helpers_point_to_pixray_run(name):
    with pytest.raises(AttributeError, match=rf"Pixray's pixray.{name} .* is not part of this pixray: .*"
                                             r"pixray.run\(prompts, drawer, \*\*settings\)"):
        getattr(pixray, name)
    assert not hasattr(pixray, name)
    with pytest.raises(AttributeError, match="module 'pixray' has no attribute 'nothing_at_all'"):
        pixray.nothing_at_all  # noqa: B018


@pytest.mark.parametrize("drawer, changes, expected", [
    ("pixel", {}, 0.03),  # Pixray's pixel drawer: Adam at 0.03
    ("fast_pixel", {}, 0.2),  # Pixray's run-wide default
    ("pixel", {"learning_rate": 0.1}, 0.1),  # a rate the user sets wins
])
def test_learning_rate_defaults_as_pixray(small_settings, tiny_perceptor, drawer, changes, expected):
    assert _run(small_settings, [tiny_perceptor], drawer=drawer, **changes).learning_rate == expected


def test_a_perceptor_named_twice_reports_two_losses(small_settings, tiny_perceptor):
    steps = list(_run(small_settings, [tiny_perceptor, tiny_perceptor], iterations=1))
    assert set(steps[0].losses) == {"tiny #1", "tiny #2", "total"}


def test_aspect_retain_runs_on_the_init_images_shape(small_settings, tiny_perceptor, tmp_path):
    to_pil(torch.rand(1, 3, 30, 60)).save(tmp_path / "wide.png")
    settings = {k: v for k, v in small_settings.items() if k != "size"}
    run = _run(settings, [tiny_perceptor], aspect="retain", scale=0.5, init_image=str(tmp_path / "wide.png"),
               drawer="fast_pixel", iterations=1)
    assert (run.plan.width, run.plan.height) == (72, 36)
    assert next(iter(run)).image.shape == (1, 3, 36, 72)


def test_a_phone_photo_is_read_upright(small_settings, tiny_perceptor, tmp_path):
    # A portrait phone photo is stored landscape with EXIF orientation 6 ("turn a quarter clockwise
    # to show"): every viewer shows it upright, so init_image and aspect retain take it upright too.
    from PIL import Image

    stored = Image.new("RGB", (60, 30), (255, 0, 0))
    stored.paste((0, 0, 255), (0, 0, 30, 30))  # stored left half blue: shown as the top half
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "portrait.jpg", exif=exif.tobytes(), quality=95)
    settings = {k: v for k, v in small_settings.items() if k != "size"}
    run = _run(settings, [tiny_perceptor], aspect="retain", scale=0.5, drawer="fast_pixel",
               init_image=str(tmp_path / "portrait.jpg"), pixel_size=[18, 36], iterations=1)
    assert (run.plan.width, run.plan.height) == (72, 144)
    first = next(iter(run)).image
    top, bottom = first[0, :, 10].mean(-1), first[0, :, -10].mean(-1)
    assert top[2] > 0.9 > 0.1 > top[0] and bottom[0] > 0.9 > 0.1 > bottom[2]


@pytest.mark.parametrize("mode, values, expected", [("I;16", 32896, 128 / 255), ("F", 0.5, 128 / 255)])
def test_sixteen_bit_and_float_grey_images_are_scaled_not_clipped(tmp_path, mode, values, expected):
    import numpy as np
    from PIL import Image

    from pixray.init_images import load_image

    dtype = np.uint16 if mode == "I;16" else np.float32
    path = tmp_path / ("grey.png" if mode == "I;16" else "grey.tiff")
    Image.fromarray(np.full((10, 12), values, dtype=dtype)).save(path)
    image = load_image(path, 12, 10)
    assert image.shape == (1, 3, 10, 12)
    assert torch.allclose(image, torch.full_like(image, expected), atol=1e-6)


def test_crop_padding_alternates_as_pixray_unless_one_mode_is_chosen(small_settings, tiny_perceptor):
    run = _run(small_settings, [tiny_perceptor])
    assert [run._padding(i) for i in range(4)] == ["reflection", "border", "reflection", "border"]
    assert _run(small_settings, [tiny_perceptor], cut_padding="zeros")._padding(1) == "zeros"


@pytest.mark.parametrize("method", ["pixray", "rotated"])
def test_each_cut_method_runs_on_a_wide_canvas(small_settings, tiny_perceptor, method):
    steps = list(_run(small_settings, [tiny_perceptor], cut_method=method, size=[48, 16], iterations=2))
    assert steps[-1].image.shape == (1, 3, 16, 48) and steps[-1].losses["total"].isfinite()


def test_auto_stop_drops_then_stops_on_a_plateau_and_keeps_the_best_image(small_settings, tiny_perceptor,
                                                                          monkeypatch):
    from pixray import auto_stop

    monkeypatch.setattr(auto_stop, "PATIENCE", 3)
    rates = _rates_seen(monkeypatch)
    # A rate too small to improve anything: the loss only wanders with the random cutouts.
    steps = list(_run(small_settings, [tiny_perceptor], iterations=200, learning_rate=1e-6, auto_stop=True,
                      learning_rate_drops=["100i"]))
    final, scored = steps[-1], steps[:-1]
    assert final.is_final and final.index == len(scored) < 100  # stopped early, before the scheduled drop
    assert rates[0] == pytest.approx(1e-6) and rates[-1] == pytest.approx(1e-7)  # one drop, then the stop
    best = min(scored, key=lambda s: s.loss)
    assert torch.equal(final.image, best.image) and final.loss == best.loss


def test_without_auto_stop_every_iteration_runs(small_settings, tiny_perceptor):
    steps = list(_run(small_settings, [tiny_perceptor], iterations=30, learning_rate=1e-6))
    assert steps[-1].index == 30


def test_cutouts_scored_in_several_passes_give_the_gradient_of_one(small_settings, tiny_perceptor, tmp_path):
    """On the CPU a perceptor takes at most pass_positions of cutouts a pass; the passes' shares of
    the prompt and image-prompt losses (means over cutouts) add up to the one pass's."""
    from PIL import Image

    Image.new("RGB", (40, 30), (20, 200, 40)).save(tmp_path / "prompt.png")
    changes = {"num_cuts": 8, "iterations": 3, "optimiser": "NGD", "learning_rate": 0.1,
               "image_prompts": str(tmp_path / "prompt.png")}
    whole = list(_run(small_settings, [tiny_perceptor], **changes))
    assert tiny_perceptor.positions == 17  # 4 x 4 patches and the class token
    run = _run(small_settings, [tiny_perceptor], **changes)
    run.pass_positions = 3 * 17  # 3 cuts a pass
    assert run._passes(0, 8) == [slice(0, 3), slice(3, 5), slice(5, 8)]
    parts = list(run)
    for a, b in zip(whole, parts, strict=True):
        assert torch.allclose(a.losses["total"], b.losses["total"], rtol=1e-5, atol=1e-6)
        assert torch.allclose(a.image, b.image, atol=1e-5)
    assert not torch.equal(whole[1].image, whole[0].image)  # the steps moved the image


def test_cutouts_are_split_into_near_equal_passes_on_the_cpu_only():
    from types import SimpleNamespace

    def passes(device: str, positions: int, count: int, memory: int = 16 * 2**30,
               dtype: torch.dtype = torch.bfloat16) -> list[slice]:
        rows = engine_module.cpu_pass_positions(memory, dtype) if device == "cpu" else 0
        run = SimpleNamespace(device=torch.device(device), pass_positions=rows,
                              perceptors=[SimpleNamespace(positions=positions)])
        return Run._passes(run, 0, count)

    assert passes("cpu", 197, 24) == [slice(0, 24)]  # draft's ViT-B/16
    assert passes("cpu", 197, 30) == [slice(0, 15), slice(15, 30)]  # normal's ViT-B/16
    assert passes("cpu", 197, 36) == [slice(0, 18), slice(18, 36)]
    assert passes("cpu", 50, 30) == [slice(0, 30)]  # ViT-B/32: its 50 tokens a cutout, 94 a pass
    assert passes("cpu", 324, 12) == [slice(0, 12)]  # RN50x4 at 288: at most 14 a pass
    assert passes("cpu", 324, 24) == [slice(0, 12), slice(12, 24)]
    assert passes("cuda", 197, 30) == [slice(0, 30)]
    assert passes("cpu", 197, 24, dtype=torch.float16) == [slice(0, 24)]
    # Where less than 8 GiB may be used, and in float32 (whose matmuls gain nothing from bigger passes),
    # a pass holds half as many cutouts' activations.
    for memory, dtype in [(8 * 2**30 - 1, torch.bfloat16), (64 * 2**30, torch.float32)]:
        assert passes("cpu", 197, 24, memory, dtype) == [slice(0, 12), slice(12, 24)]
        assert passes("cpu", 197, 30, memory, dtype) == [slice(0, 10), slice(10, 20), slice(20, 30)]
        assert passes("cpu", 324, 12, memory, dtype) == [slice(0, 6), slice(6, 12)]


def test_a_run_sizes_its_cpu_passes_from_the_memory_it_may_use(small_settings, tiny_perceptor, monkeypatch):
    """The run reads its memory (a container's limit, where it has one) once, as it is made, and sizes
    its passes for the precision it computes in."""
    monkeypatch.setattr(engine_module, "usable_memory", lambda: 4 * 2**30)
    assert _run(small_settings, [tiny_perceptor], precision="bfloat16").pass_positions == 12 * 197
    monkeypatch.setattr(engine_module, "usable_memory", lambda: 32 * 2**30)
    assert _run(small_settings, [tiny_perceptor], precision="bfloat16").pass_positions == 24 * 197
    assert _run(small_settings, [tiny_perceptor], precision="float32").pass_positions == 12 * 197


@pytest.mark.parametrize(("name", "positions"), [("ViT-B/16", 197), ("ViT-B/32", 50), ("ViT-L/14", 257),
                                                  ("RN50", 196), ("RN50x4", 324)])
def test_a_perceptors_positions_are_its_tokens_or_its_pixels_over_256(monkeypatch, name, positions):
    """The activation rows one cutout costs, which the CPU's passes are sized by (real architectures,
    built on the meta device: no weights)."""
    import open_clip

    from pixray.perceptors import CLIP_MODELS, Perceptor

    config = open_clip.get_model_config(CLIP_MODELS.lookup(name).architecture)
    with torch.device("meta"):
        model = open_clip.CLIP(**config)
    assert Perceptor(name, model, fast=False).positions == positions


def test_the_shapes_world_guides_take_their_cutouts_in_one_pass(tmp_path):
    """The demo draws what it drew before the passes were sized: its guides' 24 cuts in one pass."""
    from pixray.model_cache import ModelCache

    cache = ModelCache(torch.device("cpu"), tmp_path)
    for perceptor in cache.perceptors(["shapes-demo", "shapes-demo-rn"]):
        assert engine_module.cpu_pass_positions(0, torch.float32) // perceptor.positions >= 24  # anywhere
