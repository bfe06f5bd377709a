"""line_sketch and clipdraw: Pixray's defaults and rates, SVG output, runs from the CLI and the API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_pixel_cells import render_svg

import pixray
from pixray.cli import main
from pixray.drawers import DRAWERS
from pixray.drawers.line_sketch import PAPER
from pixray.settings import SettingsError, build_settings

STROKE_DRAWERS = ["line_sketch", "clipdraw"]


def _drawer(name: str, width: int = 96, height: int = 64, **options):
    return DRAWERS.lookup(name)(build_settings(options).section(name), width, height)


def _started(name: str, width: int = 96, height: int = 64, seed: int = 0, **options):
    drawer = _drawer(name, width, height, **options)
    drawer.init_from_image(torch.rand(1, 3, height, width), torch.Generator().manual_seed(seed))
    return drawer


def test_line_sketch_defaults_as_pixray():
    drawer = _started("line_sketch", 200, 100)
    assert drawer.points.shape == (24, 3 * 8 + 1, 2)  # 24 strokes of 8 cubic segments
    assert drawer.width_bounds == (1.0, 2.0)  # 0.5 % and 2 % of 100 px, at least one pixel
    assert torch.equal(drawer.colors, torch.tensor([[0.0, 0.0, 0.0, 1.0]] * 24))
    assert torch.allclose(drawer.paper, torch.tensor(PAPER)) and not drawer.paper.requires_grad
    starts = drawer.points[:, 0] / torch.tensor([200, 100])
    assert ((starts - 0.5).abs() <= 0.25).all()  # near the centre
    groups = drawer.param_groups()
    assert [g.get("lr_scale", 1.0) for g in groups] == [1.0, 0.1]
    assert drawer.learning_rate() == 1.0
    learned = _drawer("line_sketch", allow_paper_color=True, stroke_length=3, strokes=5)
    assert learned.points.shape == (5, 10, 2) and learned.paper.requires_grad
    assert [g.get("lr_scale", 1.0) for g in learned.param_groups()] == [1.0, 0.1, 0.01]


def test_clipdraw_defaults_as_pixray():
    drawer = _started("clipdraw", 200, 100)
    assert drawer.points.shape == (1024, 10, 2)
    assert set(drawer.segment_counts.tolist()) == {1, 2, 3}
    assert drawer.width_bounds == (1.0, 5.0)  # 1 % and 5 % of 100 px
    assert torch.allclose(drawer.radii, torch.full((1024,), 1.5))  # (min + max) / 4
    assert torch.equal(drawer.paper, torch.ones(3))
    assert drawer.colors.min() >= 0 and drawer.colors.max() <= 1 and drawer.colors[:, 3].std() > 0.2
    starts = drawer.points[:, 0] / torch.tensor([200, 100])
    assert starts.min() >= 0 and starts.max() <= 1 and starts.std(0).min() > 0.25  # all over
    assert [g.get("lr_scale", 1.0) for g in drawer.param_groups()] == [1.0, 0.1, 0.01]


def test_a_paths_unused_segments_collapse_onto_its_end():
    drawer = _started("clipdraw", strokes=64)
    controls = drawer.controls()
    for path, count in zip(controls, drawer.segment_counts.tolist(), strict=True):
        assert (path[3 * count:] == path[3 * count]).all()


def test_the_runs_rate_scales_every_group(small_settings, tiny_perceptor):
    run = pixray.generate({**small_settings, "drawer": "clipdraw", "strokes": 8, "learning_rate": 0.5,
                           "iterations": 1}, perceptors=[tiny_perceptor])
    seen = []
    original = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append([g["lr"] for g in self.param_groups])
        return original(self, *args, **kwargs)

    torch.optim.Adam.step = spy
    try:
        list(run)
    finally:
        torch.optim.Adam.step = original
    assert seen == [[0.5, pytest.approx(0.05), pytest.approx(0.005)]]


@pytest.mark.parametrize("name", ["clipdraw", "line_sketch"])
def test_a_run_whose_strokes_all_left_the_canvas_goes_on_with_the_paper(name, small_settings, tiny_perceptor):
    """Strokes move freely (as Pixray's): once none is on the canvas the picture no longer depends on
    them, and the run goes on (nothing to learn) instead of failing in the backward pass."""
    run = pixray.generate({**small_settings, "drawer": name, "strokes": 2, "iterations": 3},
                          perceptors=[tiny_perceptor])
    clamp = run.drawer.clamp_

    def off_the_canvas() -> None:
        clamp()
        run.drawer.points.data += 100  # canvas widths away

    run.drawer.clamp_ = off_the_canvas
    steps = list(run)
    assert steps[-1].is_final and torch.isfinite(steps[-1].losses["total"])
    assert torch.equal(steps[-1].image, steps[-2].image)  # the paper alone, unchanged


def test_widths_out_of_order_are_refused():
    with pytest.raises(SettingsError, match="'min_stroke_width' \\(4\\) and 'max_stroke_width' \\(2\\)"):
        _drawer("clipdraw", min_stroke_width=4, max_stroke_width=2)
    # One given, the other the drawer's own default (clipdraw's least width is 1 % of the height).
    with pytest.raises(SettingsError, match=r"'min_stroke_width' \(1, this drawer's default\) and "
                                            r"'max_stroke_width' \(0.5\)"):
        _drawer("clipdraw", max_stroke_width=0.5)


@pytest.mark.parametrize("name, tolerance", [("line_sketch", 0.01), ("clipdraw", 0.02)])
def test_svg_renders_back_to_the_png(name, tolerance):
    drawer = _started(name, strokes=256)
    image = drawer.synth().detach()[0]
    rendered = render_svg(drawer.vector_image().svg())
    # Antialiasing differs at stroke edges (distance ramp against resvg's area coverage); thin
    # overlapping strokes add up most of it.
    assert (rendered - image).abs().mean() < tolerance


@pytest.mark.parametrize("name", STROKE_DRAWERS)
def test_each_steps_vector_picture_is_the_state_its_image_shows(name, small_settings, tiny_perceptor):
    steps = list(pixray.generate({**small_settings, "drawer": name, "strokes": 16, "size": [48, 32],
                                  "iterations": 3}, perceptors=[tiny_perceptor]))
    for step in steps:
        rendered = render_svg(step.vector.svg())
        assert (rendered - step.image[0]).abs().mean() < 0.02, step.index
    assert steps[0].vector.svg() != steps[-1].vector.svg()


@pytest.mark.parametrize("name", [*STROKE_DRAWERS, "pixel"])
def test_cli_two_steps_write_png_and_svg_and_a_seed_repeats(tmp_path, tiny_checkpoint, name):
    images = []
    for attempt in range(2):
        out = tmp_path / f"o{attempt}"
        code = main(["--prompts", "a red circle", "--drawer", name, "--clip_models", str(tiny_checkpoint),
                     "--size", "48,32", "--iterations", "2", "--num_cuts", "2", "--device", "cpu",
                     "--strokes", "32", "--pixel_type", "hex", "--seed", "7", "--outdir", str(out),
                     "--quiet"])
        assert code == 0
        svg = (out / "output.svg").read_text()
        assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" width="48" height="32"')
        with Image.open(out / "output.png") as png:
            images.append(np.asarray(png.convert("RGB")))
    assert np.array_equal(*images)


def test_too_many_segments_are_refused_before_any_work():
    with pytest.raises(SettingsError, match=r"'strokes': 4000 strokes of 8 segments is 32000 cubic segments"):
        _drawer("line_sketch", strokes=4000)


def test_a_render_beyond_the_memory_bound_stops_with_a_clear_error(monkeypatch):
    from pixray.errors import RunError
    from pixray.raster import strokes

    drawer = _started("clipdraw", strokes=64)
    monkeypatch.setattr(strokes, "MAX_PAIRS", 100)
    with pytest.raises(RunError, match="too much of the canvas to render within memory"):
        drawer.synth()


def test_a_yaml_file_names_the_drawer_and_its_settings(tmp_path, tiny_checkpoint):
    config = tmp_path / "sketch.yaml"
    config.write_text(f"prompts: a red circle\ndrawer: line_sketch\nstrokes: 6\nstroke_length: 3\n"
                      f"allow_paper_color: true\nmax_stroke_width: 3\nclip_models: [{tiny_checkpoint}]\n"
                      "size: [48, 32]\niterations: 2\nnum_cuts: 2\ndevice: cpu\n")
    assert main(["--config", str(config), "--outdir", str(tmp_path / "out"), "--quiet"]) == 0
    svg = (tmp_path / "out" / "output.svg").read_text()
    assert svg.count("<path ") == 6 and svg.count(" C ") == 6 * 3
