"""Steering through the drawer's parameters: overlays redrawn into the drawer, image labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import flag_settings
from PIL import Image

import pixray
from pixray.init_images import ImageReader
from pixray.overlay import Overlay
from pixray.settings import SettingsError, build_settings, resolve


def _flat(path, colour, size=(32, 24), mode="RGB"):
    Image.new(mode, size, colour).save(path)
    return str(path)


def _overlay(values):
    settings = build_settings({"drawer": "pixel", "iterations": 20, **values})
    return Overlay.from_settings(settings, resolve(settings), ImageReader())


def test_overlay_steps_follow_pixrays_rule(tmp_path):
    red = _flat(tmp_path / "red.png", (255, 0, 0))
    overlay = _overlay({"overlay_image": red, "overlay_every": "3 iterations", "overlay_offset": "1",
                        "overlay_until": "50%"})
    assert [i for i in range(20) if overlay.due(i)] == [1, 4, 7]  # step % 3 == 1, before step 10
    assert [i for i in range(20) if _overlay({"overlay_image": red}).due(i)] == [0, 10]  # every 10 from 0
    assert _overlay({}) is None


@pytest.mark.parametrize(("values", "fragment"), [
    ({"overlay_every": "0"}, "'overlay_every': 0i is less than one step"),
    ({"overlay_every": "5", "overlay_offset": "5"}, r"'overlay_offset': 5 iterations is not less than "
                                                    r"overlay_every \(5\).*0 to 4"),
    ({"drawer": "clipdraw"}, "'overlay_image' needs a drawer that takes its parameters from an image, "
                             "and 'clipdraw' places its strokes at random; choose one of vqgan, pixel, "
                             "fast_pixel, fft, super_resolution$"),
])
def test_overlay_mistakes_are_settings_errors(tmp_path, values, fragment):
    red = _flat(tmp_path / "red.png", (255, 0, 0))
    with pytest.raises(SettingsError, match=fragment):
        _overlay({"overlay_image": red, **values})


def test_overlay_flags_are_pixrays():
    settings = flag_settings(["-ovi", "o.png", "-ove", "5 iterations", "-ovo", "2", "-ovu", "80%",
                              "-ova", "100"])
    assert (settings.overlay_image, settings.overlay_every, settings.overlay_offset, settings.overlay_until,
            settings.overlay_alpha) == ("o.png", "5i", "2i", "80%", 100)


def test_overlay_is_pasted_by_its_opacity_and_redrawn_into_the_drawer(tmp_path, small_settings,
                                                                       tiny_perceptor):
    """At a due step the drawer takes its parameters from the overlay over its image: an opaque
    overlay replaces it, overlay_alpha blends, a transparent part leaves the image alone."""
    half = np.zeros((24, 32, 4), dtype=np.uint8)
    half[:, 16:] = (0, 0, 255, 255)  # opaque blue on the right, transparent on the left
    Image.fromarray(half).save(tmp_path / "half.png")
    base = {**small_settings, "init_image": _flat(tmp_path / "grey.png", (128, 128, 128)),
            "pixel_size": [8, 6], "iterations": 3, "overlay_every": "2", "learning_rate": 1e-6}
    steps = list(pixray.generate({**base, "overlay_image": str(tmp_path / "half.png")},
                                 perceptors=[tiny_perceptor]))
    first = steps[0].image[0]
    assert torch.allclose(first[:, :, 16:], torch.tensor([0.0, 0, 1])[:, None, None], atol=1e-4)
    assert torch.allclose(first[:, :, :16], torch.full((3, 24, 16), 128 / 255), atol=1e-4)
    blended = list(pixray.generate({**base, "overlay_image": _flat(tmp_path / "red.png", (255, 0, 0)),
                                    "overlay_alpha": 64}, perceptors=[tiny_perceptor]))
    expected = torch.tensor([64 / 255 + (1 - 64 / 255) * 128 / 255, (1 - 64 / 255) * 128 / 255,
                             (1 - 64 / 255) * 128 / 255])
    assert torch.allclose(blended[0].image[0].mean((1, 2)), expected, atol=1e-3)
    assert torch.allclose(blended[1].image, blended[0].image, atol=1e-3)  # step 1 takes no overlay
    plain = list(pixray.generate(base, perceptors=[tiny_perceptor]))
    assert torch.allclose(plain[0].image[0], torch.full((3, 24, 32), 128 / 255), atol=1e-4)


def test_an_overlay_keeps_a_transparent_drawers_opacity(tmp_path, small_settings, tiny_perceptor):
    settings = {**small_settings, "transparent": True, "iterations": 1, "learning_rate": 1e-6,
                "overlay_image": _flat(tmp_path / "red.png", (255, 0, 0))}
    run = pixray.generate(settings, perceptors=[tiny_perceptor])
    steps = list(run)
    assert steps[0].image.shape[1] == 4
    assert torch.allclose(steps[0].image[0, 0], torch.ones(24, 32), atol=1e-4)
    opacity = run.drawer.colors[3:].detach()
    run.overlay.apply(run.drawer)
    assert torch.equal(run.drawer.colors[3:], opacity)


def test_image_labels_pull_the_parameters_towards_the_labels_mean(tmp_path, small_settings, tiny_perceptor):
    red = _flat(tmp_path / "lab_red.png", (255, 0, 0))
    _flat(tmp_path / "lab_blue.png", (0, 0, 255))
    settings = {**small_settings, "drawer": "fast_pixel", "pixel_size": [8, 6], "iterations": 8,
                "init_noise": "none", "image_labels": str(tmp_path / "lab_*.png"), "image_label_weight": 50,
                "prompts": "a red circle:0.01"}
    run = pixray.generate(settings, perceptors=[tiny_perceptor])
    start = run.drawer.colors.detach().clone()
    steps = list(run)
    vectors = [F.normalize(torch.tensor(c, dtype=torch.float32)[:, None].expand(3, 48).flatten(), dim=0)
               for c in ((0.0, 0, 1), (1.0, 0, 0))]  # blue then red: the glob's sorted order
    expected = F.normalize(torch.stack(vectors).mean(0), dim=0)
    assert torch.allclose(run.image_labels.target, expected, atol=1e-5)
    assert not torch.equal(run.drawer.colors, start)  # binding left the start alone; the run moved it
    losses = [float(s.losses["image_labels"]) for s in steps[:-1]]
    assert losses[-1] < losses[0] / 2
    colour = steps[-1].image[0].mean((1, 2))
    assert colour[1] < colour[0] and colour[1] < colour[2]  # towards purple, the labels' mean
    assert run.drawer.colors.shape == start.shape
    only_red = pixray.generate({**settings, "image_labels": red}, perceptors=[tiny_perceptor])
    assert next(iter(only_red)).losses["image_labels"] > 0


@pytest.mark.parametrize(("values", "fragment"), [
    ({"drawer": "line_sketch"}, "'image_labels' needs a drawer that takes its parameters from an image"),
    ({"image_labels": "nothing_here_*.png"}, "'image_labels': 'nothing_here_\\*.png' matches no file"),
])
def test_image_label_mistakes_are_settings_errors(tmp_path, values, fragment):
    red = _flat(tmp_path / "red.png", (255, 0, 0))
    with pytest.raises(SettingsError, match=fragment):
        pixray.generate({"prompts": "x", "device": "cpu", "drawer": "pixel", "image_labels": red, **values})


def test_image_label_flags_are_pixrays():
    settings = flag_settings(["-il", "l/*.png", "-ilw", "2"])
    assert (settings.image_labels, settings.image_label_weight) == ("l/*.png", 2.0)
