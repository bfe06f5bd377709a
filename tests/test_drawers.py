import pytest
import torch

from pixray.drawers import DRAWERS
from pixray.drawers.cell_grid import grid_shape
from pixray.settings import SettingsError, build_settings

# Drawers that need no weight files (vqgan has its own tests with tiny checkpoints).
WEIGHTLESS = [name for name in DRAWERS if name != "vqgan"]


def _drawer(name: str, width: int, height: int, **options):
    settings = build_settings(options)
    return DRAWERS.lookup(name)(settings.section(name), width, height)


@pytest.mark.parametrize("name", WEIGHTLESS)
def test_synth_shape_range_and_gradient(name):
    drawer = _drawer(name, 40, 24, pixel_size=[10, 6])
    image = drawer.synth()
    assert image.shape == (1, 3, 24, 40) and image.min() >= 0 and image.max() <= 1
    image.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in drawer.parameters())


@pytest.mark.parametrize("name", WEIGHTLESS)
def test_init_from_image_reproduces_a_cell_aligned_image(name):
    drawer = _drawer(name, 40, 24, pixel_size=[10, 6])
    cells = torch.rand(1, 3, 6, 10)
    image = cells.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    drawer.init_from_image(image)
    assert torch.allclose(drawer.synth(), image, atol=1e-6)


def test_pixel_and_fast_pixel_agree_on_uneven_grids():
    pixel = _drawer("pixel", 37, 23, pixel_size=[7, 5])
    fast = _drawer("fast_pixel", 37, 23, pixel_size=[7, 5])
    colors = torch.rand(1, 3, 5, 7)
    for d in (pixel, fast):
        with torch.no_grad():
            d.colors.copy_(colors)
    assert torch.equal(pixel.synth(), fast.synth())


@pytest.mark.parametrize("name", ["pixel", "fast_pixel"])
def test_cells_are_bounded_to_0_1_for_the_optimiser_and_the_clamp(name):
    drawer = _drawer(name, 16, 16, pixel_size=[4, 4])
    (group,) = drawer.param_groups()
    assert group["bounds"] == (0.0, 1.0) and group["params"] == [drawer.colors]


def test_clamp_keeps_colours_in_range():
    drawer = _drawer("pixel", 16, 16)
    with torch.no_grad():
        drawer.colors.mul_(10).sub_(4)
    drawer.clamp_()
    assert drawer.colors.min() >= 0 and drawer.colors.max() <= 1


@pytest.mark.parametrize("size, pixel_size, scale, expected", [
    ((384, 216), None, 1.0, (45, 80)),
    ((144, 144), None, 1.0, (40, 40)),
    ((128, 160), None, 1.0, (50, 40)),
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
