"""Filters between the drawer's image and the cutouts: tiler and wallpaper, and what the user sees."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pixray
from pixray.filter_chain import FilterChain
from pixray.filters import FILTERS
from pixray.init_images import ImageReader
from pixray.model_cache import ModelCache
from pixray.resources import Resources
from pixray.settings import SettingsError, build_settings, resolve


def _filter(name, **options):
    return FILTERS.lookup(name)(build_settings(options).section(name))


def _image(height=6, width=8, channels=3):
    return torch.rand(1, channels, height, width, generator=torch.Generator().manual_seed(0))


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def _is_roll(rolled, image, dims=(-2, -1)):
    sizes = [image.shape[d] for d in dims]
    return any(torch.equal(rolled, torch.roll(image, shifts=(a, b)[:len(dims)], dims=dims))
               for a in range(sizes[0]) for b in (range(sizes[1]) if len(dims) == 2 else [0]))


def test_tiler_rolls_by_a_random_offset_from_the_runs_generator():
    image = _image(channels=4)
    tiler = _filter("tiler")
    rolled, loss = tiler(image, _generator(3))
    assert loss is None and rolled.shape == image.shape and _is_roll(rolled, image)
    again, _ = tiler(image, _generator(3))
    assert torch.equal(rolled, again)
    offsets = {tuple(tiler(torch.arange(48.0).view(1, 1, 6, 8), _generator(s))[0][0, 0, 0, :1].tolist())
               for s in range(20)}
    assert len(offsets) > 3  # not always the same roll


@pytest.mark.parametrize(("kind", "dims"), [("none", (-2, -1)), ("horizontal", (-1,)), ("vertical", (-2,))])
def test_wallpaper_rolls_along_its_directions(kind, dims):
    image = _image()
    rolled, loss = _filter("wallpaper", wallpaper_type=kind)(image, _generator())
    assert loss is None and _is_roll(rolled, image, dims)


def test_wallpaper_shift_is_two_rows_like_bricks():
    image = _image()
    for options in ({"wallpaper_type": "shift"}, {"wallpaper_shift": True}):
        out, loss = _filter("wallpaper", **options)(image, _generator())
        bricks = torch.cat([image, torch.roll(image, 4, dims=-1)], dim=-2)
        assert loss is None and out.shape == (1, 3, 12, 8) and _is_roll(out, bricks)


def test_wallpaper_edge_match_scores_the_edges_and_trims_half_of_each():
    image = _image(8, 10)
    out, loss = _filter("wallpaper", wallpaper_type="horizontal", wallpaper_edge_match=4)(image, _generator())
    assert out.shape == (1, 3, 8, 6)  # 2 columns off each side
    expected = ((image[..., :4] - image[..., -4:]) ** 2).mean() / 4
    assert torch.isclose(loss, expected)
    matched = torch.cat([image[..., :4], image[..., 4:6], image[..., :4]], dim=-1)
    matcher = _filter("wallpaper", wallpaper_type="horizontal", wallpaper_edge_match=4)
    assert matcher(matched, _generator())[1] == 0
    both, loss = _filter("wallpaper", wallpaper_edge_match=2)(image, _generator())
    assert both.shape == (1, 3, 6, 8) and loss > 0


def test_filters_setting_and_errors():
    settings = build_settings({"filters": "wallpaper:2,tiler"})
    assert resolve(settings).filters == (("wallpaper", 2.0), ("tiler", 1.0))
    with pytest.raises(SettingsError, match=r"'filters'.*filter names \(tiler, wallpaper, lookup\)"):
        build_settings({"filters": "blur"})
    with pytest.raises(SettingsError, match=r"'wallpaper_type'.*none, horizontal, vertical, shift"):
        build_settings({"wallpaper_type": "diagonal"})


def test_a_runs_images_never_show_the_tilers_roll(small_settings, tiny_perceptor):
    """The perceptors see the rolled picture; the steps and files show it unrolled."""
    plain = list(pixray.generate({**small_settings, "iterations": 2}, perceptors=[tiny_perceptor]))
    run = pixray.generate({**small_settings, "iterations": 2, "filters": "tiler"},
                          perceptors=[tiny_perceptor])
    rolled = list(run)
    assert torch.equal(rolled[0].image, plain[0].image)  # step 0 draws before any update
    assert not torch.equal(rolled[1].image, plain[1].image)  # the roll changed what the perceptors saw
    assert torch.equal(rolled[-1].image, run.drawer.synth().detach())


def test_the_filters_weighted_loss_is_reported_and_moves_the_drawer(small_settings, tiny_perceptor):
    base = {**small_settings, "iterations": 2, "filters": "wallpaper:50", "wallpaper_edge_match": 4,
            "drawer": "fast_pixel", "pixel_size": [32, 24], "prompts": "x:0.0001"}
    steps = list(pixray.generate(base, perceptors=[tiny_perceptor]))
    assert steps[0].losses["wallpaper"] > 0
    assert steps[1].losses["wallpaper"] < steps[0].losses["wallpaper"]


def test_a_filter_chain_applies_filters_in_order_and_sums_a_repeated_ones_loss():
    settings = build_settings({"filters": "wallpaper:2,wallpaper:3", "wallpaper_edge_match": 2})
    resources = Resources(ModelCache(torch.device("cpu"), Path("unused")), ImageReader())
    chain = FilterChain.from_settings(settings, resolve(settings), resources, torch.device("cpu"))
    image = _image(8, 10)
    out, losses = chain(image, _generator())
    assert out.shape == (1, 3, 4, 6) and chain.names() == ["wallpaper", "wallpaper"]  # trimmed twice
    _, loss1 = _filter("wallpaper", wallpaper_edge_match=2)(image, _generator())
    assert losses["wallpaper"] > 2 * loss1  # and the second filter's share
    assert torch.equal(chain.shown(image), image)  # wallpaper only changes the perceptors' view


def _seams(image):
    """(wrapped edge, largest interior seam) differences, across columns and across rows."""
    x = image[0]
    columns = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(0, 1))
    rows = (x[:, 1:, :] - x[:, :-1, :]).abs().mean(dim=(0, 2))
    return (((x[:, :, 0] - x[:, :, -1]).abs().mean(), columns.max()),
            ((x[:, 0, :] - x[:, -1, :]).abs().mean(), rows.max()))


def test_a_short_tiler_run_tiles(small_settings, tiny_perceptor):
    """A smoothness loss on the canvas the perceptors see smooths the wrapped edges too when the tiler
    rolls it (each step's roll brings them inside); without the tiler they stay rough."""
    settings = {**small_settings, "drawer": "fast_pixel", "iterations": 40, "num_cuts": 2,
                "init_noise": "snow", "custom_loss": "smoothness:20", "smoothness_type": "tv",
                "learning_rate": 0.05}
    tiled = list(pixray.generate({**settings, "filters": "tiler"}, perceptors=[tiny_perceptor]))[-1]
    plain = list(pixray.generate(settings, perceptors=[tiny_perceptor]))[-1]
    for wrapped, interior in _seams(tiled.image):
        assert wrapped <= interior  # the wrapped edge differs no more than an interior seam
    for wrapped, interior in _seams(plain.image):
        assert wrapped > 3 * interior
