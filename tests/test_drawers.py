"""The drawer contract, checked on every registered drawer (vqgan, super_resolution and vdiff on tiny
checkpoints)."""

from collections.abc import Iterator

import pytest
import torch
from test_super_resolution import write_upscaler
from test_vdiff import install_toys
from test_vqgan import write_checkpoint

from pixray.drawers import DRAWERS
from pixray.drawers.cell_grid import grid_shape
from pixray.model_cache import ModelCache
from pixray.settings import SettingsError, build_settings


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Iterator[ModelCache]:
    """A model cache whose weights directory holds tiny checkpoints under the default vqgan,
    super_resolution and vdiff names."""
    directory = tmp_path_factory.mktemp("weights")
    default = build_settings({}).section("vqgan").vqgan_model
    write_checkpoint(directory, f"vqgan_{default}")
    write_upscaler(directory)
    with pytest.MonkeyPatch.context() as patch:
        install_toys(patch, directory)
        yield ModelCache(torch.device("cpu"), directory)


def _drawer(name: str, width: int, height: int, models: ModelCache | None = None, **options):
    settings = build_settings(options)
    return DRAWERS.lookup(name).create(settings.section(name), width, height, models)


@pytest.mark.parametrize("name", list(DRAWERS))
def test_synth_shape_range_and_gradient_to_every_group(name, models):
    drawer = _drawer(name, 40, 24, models, pixel_size=[10, 6], strokes=12)
    drawer.init_from_image(torch.rand(1, 3, drawer.height, drawer.width), torch.Generator().manual_seed(0))
    image = drawer.synth()
    assert image.shape == (1, 3, drawer.height, drawer.width) and image.min() >= 0 and image.max() <= 1
    (image * torch.rand(image.shape)).sum().backward()
    for group in drawer.param_groups():
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in group["params"]), group


@pytest.mark.parametrize("name", list(DRAWERS))
def test_same_generator_same_start_and_bounds_hold(name, models):
    image = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(1))
    starts = []
    for _ in range(2):
        drawer = _drawer(name, 40, 24, models, strokes=12)
        drawer.init_from_image(image[..., :drawer.height, :drawer.width], torch.Generator().manual_seed(3))
        starts.append(drawer.synth().detach())
    assert torch.equal(*starts)
    with torch.no_grad():
        for p in drawer.parameters():
            p.add_(torch.randn(p.shape) * 100)
    drawer.clamp_()
    for group in drawer.param_groups():
        if "bounds" in group:
            low, high = group["bounds"]
            assert all(((p >= low) & (p <= high)).all() for p in group["params"])


@pytest.mark.parametrize("name", list(DRAWERS))
def test_vector_image_is_a_snapshot_of_the_rendered_state(name, models):
    drawer = _drawer(name, 40, 24, models, strokes=12)
    drawer.init_from_image(torch.rand(1, 3, drawer.height, drawer.width), torch.Generator().manual_seed(0))
    vector = drawer.vector_image()
    if vector is None:
        return
    before = vector.svg()
    with torch.no_grad():
        for p in drawer.parameters():
            p.add_(0.25)
    assert vector.svg() == before != drawer.vector_image().svg()
    assert before.startswith("<svg") and f'width="{drawer.width}" height="{drawer.height}"' in before


@pytest.mark.parametrize("name", ["pixel", "fast_pixel", "fft"])
def test_init_from_image_reproduces_a_cell_aligned_image(name):
    drawer = _drawer(name, 40, 24, pixel_size=[10, 6])
    cells = torch.rand(1, 3, 6, 10)
    image = cells.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    drawer.init_from_image(image, torch.Generator())
    assert torch.allclose(drawer.synth(), image, atol=1e-6)


def test_pixel_rect_and_fast_pixel_agree_when_cells_are_whole_pixels():
    pixel = _drawer("pixel", 35, 20, pixel_size=[7, 5])
    fast = _drawer("fast_pixel", 35, 20, pixel_size=[7, 5])
    image = torch.rand(1, 3, 20, 35)
    for d in (pixel, fast):
        d.init_from_image(image, torch.Generator())
    assert torch.allclose(pixel.synth(), fast.synth(), atol=1e-6)


def test_pixel_cells_on_uneven_grids_blend_the_pixels_they_share():
    """Pixray's diffvg antialiases cell borders; exact coverage does the same: a pixel split by a
    border shows both cells in proportion."""
    drawer = _drawer("pixel", 3, 1, pixel_size=[2, 1])
    with torch.no_grad():
        drawer.colors.copy_(torch.tensor([[0.0, 1.0]] * 3))
    assert torch.allclose(drawer.synth()[0, 0, 0], torch.tensor([0.0, 0.5, 1.0]))


@pytest.mark.parametrize("name", ["pixel", "fast_pixel"])
def test_cells_are_bounded_to_0_1_for_the_optimiser_and_the_clamp(name):
    drawer = _drawer(name, 16, 16, pixel_size=[4, 4])
    (group,) = drawer.param_groups()
    assert group["bounds"] == (0.0, 1.0) and group["params"] == [drawer.colors]


@pytest.mark.parametrize("size, pixel_size, scale, expected", [
    ((384, 216), None, 1.0, (45, 80)),
    ((144, 144), None, 1.0, (40, 40)),
    ((128, 160), None, 1.0, (50, 40)),
    ((400, 100), None, 1.0, (45, 80)),  # Pixray's fixed counts, whatever the exact shape
    ((384, 216), None, 2.0, (22, 40)),  # Pixray: bigger pixel_scale, fewer and bigger cells
    ((384, 216), None, 0.5, (90, 160)),
    ((100, 100), [20, 10], 1.0, (10, 20)),
    ((8, 8), [40, 40], 1.0, (8, 8)),
])
def test_grid_shape(size, pixel_size, scale, expected):
    options = build_settings({"pixel_size": pixel_size, "pixel_scale": scale}).section("pixel")
    assert grid_shape(options, *size) == expected


def test_registry_errors_list_valid_names():
    expected = r"unknown drawer .vqgn. \(did you mean .vqgan.\?\); valid: vqgan, pixel, fast_pixel"
    with pytest.raises(SettingsError, match=expected):
        DRAWERS.lookup("vqgn")
