"""The step loop never makes a GPU's host wait for the device, checked on the CPU (tests/host_syncs.py):
every registered drawer, filter and custom loss (those that load no downloaded model), both cut
recipes, and each prompt kind a step can use."""

from collections.abc import Iterator

import pytest
import torch
from graph_capture import StandInCapture
from host_syncs import HostSyncs
from PIL import Image
from test_super_resolution import write_upscaler
from test_vdiff import install_toys
from test_vqgan import write_checkpoint

import pixray.engine
from pixray.drawers import DRAWERS
from pixray.drawers.stroke_paths import StrokePathsDrawer
from pixray.engine import Run
from pixray.filters import FILTERS
from pixray.losses import LOSSES
from pixray.model_cache import ModelCache
from pixray.runtime import device_vector
from pixray.settings import build_settings


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Iterator[ModelCache]:
    """Tiny checkpoints under the default vqgan, super_resolution and vdiff names."""
    directory = tmp_path_factory.mktemp("weights")
    write_checkpoint(directory, f"vqgan_{build_settings({}).section('vqgan').vqgan_model}")
    write_upscaler(directory)
    with pytest.MonkeyPatch.context() as patch:
        install_toys(patch, directory)
        yield ModelCache(torch.device("cpu"), directory)


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("pictures") / "picture.png"
    image = Image.new("RGB", (40, 30), (200, 30, 30))
    image.paste((20, 20, 220), (10, 5, 30, 25))
    image.save(path)
    return str(path)


def _found(settings: dict, perceptor, models: ModelCache, picture: str, tmp_path) -> HostSyncs:
    """What steps 2 and 3 of a run with ``settings`` ('PICTURE' for the picture's path) would make wait."""
    values = {"prompts": "a red circle", "drawer": "pixel", "size": [32, 24], "iterations": 5, "num_cuts": 4,
              "seed": 1, "device": "cpu", "outdir": str(tmp_path), "save_intermediates": False,
              **{name: picture if value == "PICTURE" else value for name, value in settings.items()}}
    run = Run(build_settings(values), [perceptor], models=models)
    run.finite_check_every = 1000  # a GPU's every 10th step: not one of those checked
    steps = iter(run)
    next(steps), next(steps)  # the first step captures, fills caches and makes the optimiser's state
    with HostSyncs() as found:
        next(steps), next(steps)
    return found


#: What a custom loss refuses to run without.
NEEDS = {"palette": {"palette": "[red, blue]"}}


def _registered() -> list[dict]:
    """Every registered drawer but the stroke drawers (below), filter, and custom loss that loads no
    model (style's VGG16 and aesthetic's head are downloads): a new one is checked without a line here."""
    defaults = build_settings({})
    drawers = [{"drawer": name} for name in DRAWERS
               if not issubclass(DRAWERS.lookup(name), StrokePathsDrawer)]
    filters = [{"filters": [name]} for name in FILTERS]
    losses = [{"custom_loss": [name], **NEEDS.get(name, {})} for name in LOSSES
              if not LOSSES.lookup(name).models_needed(defaults.section(name))]
    return drawers + filters + losses


@pytest.mark.parametrize("settings", [
    *_registered(),
    {"cut_method": "rotated"}, {"batches": 2}, {"size": [40, 24], "cut_method": "rotated"},
    {"filters": ["wallpaper"], "wallpaper_type": "shift"},
    {"filters": ["wallpaper"], "wallpaper_type": "vertical", "wallpaper_edge_match": 2},
    {"custom_loss": ["edge"], "edge_color": "none"}, {"custom_loss": ["edge"], "edge_color": "red"},
    {"custom_loss": ["edge"], "edge_mask_image": "PICTURE"},
    {"custom_loss": ["edge"], "edge_input_image": "PICTURE"},
    {"palette": "black->white\\4"}, {"transparent": True}, {"init_noise": "pixels"},
    {"prompts": "a red circle @spot"}, {"image_prompts": "PICTURE"},
    {"image_prompts": "PICTURE", "image_prompt_shuffle": True}, {"target_images": "PICTURE"},
    {"noise_prompt_seeds": [3], "noise_prompt_weights": [0.5]},
    {"init_image": "PICTURE", "init_image_alpha": 100},
    {"init_image": "PICTURE", "init_weight_pix": 0.5, "init_weight_dist": 0.5, "init_weight_cos": 0.5},
    {"optimiser": "AdamW"}, {"optimiser": "DiffGrad"}, {"optimiser": "NGD"}, {"optimiser": "RMSprop"},
], ids=lambda settings: ",".join(f"{k}={v}" for k, v in settings.items()))
def test_a_step_never_waits_for_the_device(settings, tiny_perceptor, models, picture, tmp_path):
    found = _found(settings, tiny_perceptor, models, picture, tmp_path)
    assert not found.found, "\n" + found.report()


def test_replayed_passes_never_wait_for_the_device(tiny_perceptor, models, picture, tmp_path, monkeypatch):
    capture = StandInCapture()
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", capture.make_graphed_callables)
    monkeypatch.setattr(pixray.engine, "graphs_possible", lambda device: True)
    found = _found({"cuda_graphs": True, "batches": 2, "prompts": "a red circle @spot"}, tiny_perceptor,
                   models, picture, tmp_path)
    assert capture.replays and not found.found, "\n" + found.report()


@pytest.mark.parametrize("drawer", ["line_sketch", "clipdraw"])
def test_the_vector_drawers_wait_only_where_the_rasteriser_sizes_its_work(drawer, tiny_perceptor, models,
                                                                         picture, tmp_path):
    # How many pixels each stroke covers, and so how much work the rasteriser's tiles hold, is read
    # from the strokes' positions every step; nothing else in their steps waits.
    found = _found({"drawer": drawer}, tiny_perceptor, models, picture, tmp_path)
    files = {place.split(" @ ")[1].split(":")[0] for place in found.found}
    assert files == {"pixray/raster/strokes.py", "pixray/drawers/stroke_paths.py"}, found.report()


def test_what_the_finder_finds():
    layer = torch.nn.Linear(2, 2)
    held = torch.ones(3)  # made before: on a GPU run, in host memory
    with HostSyncs() as found:
        torch.tensor([1.0, 2.0], device="cpu")
        torch.zeros(2)
        torch.arange(3, device="cpu")  # a device named: not found
        x = torch.rand(4, device="cpu")
        x.sum().item()
        bool(x.max() > 0)
        x[x > 0.5]
        x.nonzero()
        x.tolist(), x.cpu(), x.to("cpu")
        counts = torch.ones(4, dtype=torch.long, device="cpu")
        x.repeat_interleave(counts), x.repeat_interleave(counts, output_size=4)  # sized: not found
        matrix = torch.eye(2, device="cpu")
        torch.linalg.inv(matrix), torch.linalg.inv_ex(matrix)  # _ex leaves the status to read: not found
        torch.histc(x)
        held.to(x)
        x.to(torch.float16)  # made inside, a dtype only: not found
        layer.weight.to(x)  # a module's: moved with it
        weight = torch.zeros(1, requires_grad=True, device="cpu")
        weight.grad = torch.ones(1, device="cpu")
        torch.optim.Adam([weight]).step()  # its step count, kept in host memory: not found
    kinds = sorted(place.split(" @ ")[0] for place in found.found)
    assert kinds == ["tensor from host data", "tensor made before the step moved to a device",
                     "tensor made without a device (torch.zeros)", "value read (_linalg_check_errors)",
                     "value read (_local_scalar_dense)", "value read (_local_scalar_dense)",
                     "value read (boolean mask index)", "value read (cpu)", "value read (histc)",
                     "value read (nonzero)",
                     "value read (repeat_interleave by counts, no output_size)", "value read (to)",
                     "value read (tolist)"], \
        found.report()
    assert all("tests/test_host_syncs.py:" in place for place in found.found)


def test_a_vector_of_numbers_is_filled_on_the_device_not_copied_there():
    with HostSyncs() as found:
        vector = device_vector(torch.device("cpu"), 0.5, 3, -1e-3)
    assert not found.found, found.report()
    assert vector.dtype == torch.float32 and vector.tolist() == torch.tensor([0.5, 3, -1e-3]).tolist()
