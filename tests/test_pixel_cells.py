"""The pixel drawer's cell shapes: Pixray's geometry and grids, tiling the canvas exactly, SVG."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pixray.drawers import DRAWERS
from pixray.drawers.cell_shapes import CELL_KINDS, SHIFTED_KINDS, CellGrid
from pixray.drawers.pixel import pixel_grid
from pixray.settings import SettingsError, build_settings


def _pixel(width: int, height: int, **options):
    return DRAWERS.lookup("pixel")(build_settings(options).section("pixel"), width, height)


def render_svg(svg: str) -> torch.Tensor:
    """(3,H,W) in [0,1]: the SVG drawn by resvg, a maintained renderer (tests only)."""
    import resvg_py

    png = bytes(resvg_py.svg_to_bytes(svg_string=svg))
    array = np.array(Image.open(io.BytesIO(png)).convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("size, pixel_size", [((64, 36), None), ((50, 50), [7, 5]), ((40, 60), [6, 9]),
                                              ((31, 17), [31, 17])])
@pytest.mark.parametrize("checks", [True, False])
def test_every_cell_kind_tiles_the_canvas(kind, size, pixel_size, checks):
    drawer = _pixel(*size, pixel_type=kind, pixel_size=pixel_size, pixel_edge_check=checks,
                    pixel_iso_check=checks)
    coverage = drawer.cover_weight.sum(-1)
    assert torch.allclose(coverage, torch.ones_like(coverage), atol=1e-5), (coverage.min(), coverage.max())
    used = torch.zeros(drawer.colors.shape[1], dtype=torch.bool)
    used[drawer.cover_index[drawer.cover_weight > 0]] = True
    assert used.all()  # every cell shows somewhere


@pytest.mark.parametrize("kind, rows, cols", [
    ("rect", 45, 80), ("rectshift", 45, 81), ("hex", 63, 81), ("tri", 46, 113), ("diamond", 91, 81),
    ("knit", 45, 80),
])
def test_default_grids_follow_pixrays_iso_and_edge_checks(kind, rows, cols):
    options = build_settings({"pixel_type": kind}).section("pixel")
    assert pixel_grid(options, 384, 216) == (rows, cols)


def test_checks_off_and_explicit_sizes_keep_the_grid():
    hex_plain = build_settings({"pixel_type": "hex", "pixel_iso_check": False,
                                "pixel_edge_check": False}).section("pixel")
    assert pixel_grid(hex_plain, 384, 216) == (45, 80)
    explicit = build_settings({"pixel_type": "hex", "pixel_size": [20, 10]}).section("pixel")
    assert pixel_grid(explicit, 384, 216) == (11, 21)  # iso leaves an explicit size; edge makes it odd


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_shifted_rows_hold_one_cell_fewer(kind):
    grid = CellGrid(kind, 5, 7, 70, 50)
    expected = 5 * 7 - (3 if kind in SHIFTED_KINDS else 0)  # rows 0, 2, 4
    assert grid.count == expected


def test_triangles_alternate_with_row_plus_column():
    grid = CellGrid("tri", 2, 3, 30, 20)
    apex_on_top = {}
    for polygon in grid.polygons:
        row = round(polygon[:, 1].min() / 10)
        col = round(polygon[:, 0].mean() / 10 - 0.5)  # the apex is at the box's centre
        apex_y = polygon[0, 1]  # the apex comes first
        apex_on_top[row, col] = apex_y == polygon[:, 1].min()
    assert [apex_on_top[r, c] for r in range(2) for c in range(3)] == [True, False, True, False, True, False]


def test_hex_cells_overhang_a_sixth():
    grid = CellGrid("hex", 3, 3, 30, 30)
    ys = [p[:, 1] for p in grid.polygons]
    heights = {round(float(y.max() - y.min()), 6) for y in ys}
    assert heights == {round(10 * 4 / 3, 6)}


def test_init_averages_each_cell():
    drawer = _pixel(30, 20, pixel_type="hex", pixel_size=[5, 4])
    image = torch.rand(1, 3, 20, 30)
    drawer.init_from_image(image, torch.Generator())
    weights = drawer.cover_weight
    cell = 7
    mask = (weights * (drawer.cover_index == cell)).sum(-1)  # (H*W,) this cell's coverage
    expected = (image.reshape(3, -1) * mask).sum(1) / mask.sum()
    assert torch.allclose(drawer.colors[:, cell], expected, atol=1e-6)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_svg_renders_back_to_the_png(kind):
    drawer = _pixel(96, 60, pixel_type=kind, pixel_size=[16, 10])
    drawer.init_from_image(torch.rand(1, 3, 60, 96), torch.Generator())
    image = drawer.synth().detach()[0]
    rendered = render_svg(drawer.vector_image().svg())
    # Random colours per cell: only antialiased cell borders differ (resvg's filter against
    # exact box coverage), and the 8-bit colours.
    assert (rendered - image).abs().mean() < 0.01


def test_unknown_cell_kind_is_refused_with_the_choices():
    with pytest.raises(SettingsError, match=r"pixel_type.*rect, rectshift, hex, tri, diamond, knit"):
        build_settings({"pixel_type": "star"})


def test_transparent_cells_draw_rgba_and_opacity_is_bounded():
    drawer = _pixel(30, 20, pixel_type="hex", pixel_size=[5, 4], transparent=True)
    drawer.init_from_image(torch.rand(1, 3, 20, 30), torch.Generator())
    image = drawer.synth()
    assert image.shape == (1, 4, 20, 30) and torch.allclose(image[:, 3], torch.ones(1, 20, 30))
    with torch.no_grad():
        drawer.colors.add_(torch.randn(drawer.colors.shape) * 5)
    drawer.clamp_()
    assert drawer.colors.min() >= 0 and drawer.colors.max() <= 1
    assert 'fill-opacity="' in drawer.vector_image().svg()
    assert _pixel(30, 20).synth().shape == (1, 3, 20, 30)  # opaque by default: RGB, as before


def test_transparent_weight_makes_cells_transparent_and_the_png_keeps_opacity(small_settings, tiny_perceptor,
                                                                             tmp_path):
    import pixray

    settings = {**small_settings, "transparent": True, "transparent_weight": 5.0, "iterations": 6,
                "learning_rate": 0.1, "outdir": str(tmp_path / "out")}
    steps = list(pixray.generate(settings, perceptors=[tiny_perceptor]))
    opacity = [s.image[:, 3].mean().item() for s in steps]
    assert opacity[0] == 1.0 and opacity[-1] < 0.7, opacity
    assert "transparent" in steps[0].losses
    image = steps[-1].pil()
    assert image.mode == "RGBA"
