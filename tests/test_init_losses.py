"""Pixray's init settings: init_image_alpha, init_weight (a prompt), init_weight_dist/cos/pix."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import pixray
from pixray.cli import build_parser
from pixray.prompt_sources.init_image import InitImagePrompt
from pixray.settings import SettingsError


@pytest.fixture
def red(tmp_path) -> str:
    path = tmp_path / "red.png"
    Image.new("RGB", (32, 24), (230, 20, 20)).save(path)
    return str(path)


def _steps(settings, perceptor, **changes):
    return list(pixray.generate({**settings, **changes}, perceptors=[perceptor]))


@pytest.mark.parametrize("name", ["init_weight", "init_weight_dist", "init_weight_cos", "init_weight_pix"])
def test_init_weights_need_an_init_image(name, small_settings):
    with pytest.raises(SettingsError, match=f"setting '{name}' pulls towards the init image, and there is "):
        pixray.generate({**small_settings, name: 1.0})


def test_zero_weights_add_no_loss_and_weights_add_theirs(small_settings, tiny_perceptor, red):
    plain = _steps(small_settings, tiny_perceptor, init_image=red, iterations=1)[0].losses
    assert not any(name.startswith("init_weight") for name in plain)
    weighted = _steps(small_settings, tiny_perceptor, init_image=red, iterations=2, init_weight_dist=1,
                      init_weight_cos=1, init_weight_pix=1)
    first = weighted[0].losses
    for name in ("init_weight_dist", "init_weight_cos", "init_weight_pix"):
        assert float(first[name]) == pytest.approx(0, abs=1e-5)  # the drawer starts on the image
    assert float(weighted[1].losses["init_weight_dist"]) > 0  # and has moved off it after one step


def test_init_image_alpha_blends_the_start_over_the_noise(small_settings, tiny_perceptor, red):
    image = torch.tensor([230, 20, 20]).float()[:, None, None] / 255

    def start(alpha):
        step = _steps(small_settings, tiny_perceptor, init_image=red, iterations=1, init_noise="snow",
                      init_image_alpha=alpha)[0]
        return step.image[0]

    assert torch.allclose(start(255), image.expand(3, 24, 32), atol=1e-5)
    assert torch.allclose(start(None), start(255))
    far, near = ((start(a) - image).abs().mean() for a in (0, 200))
    assert near < 0.3 * far  # 200/255 of the image: the start is mostly the image


def test_init_weight_pix_pulls_the_canvas_to_the_image(small_settings, tiny_perceptor, red):
    image = torch.tensor([230, 20, 20]).float()[:, None, None] / 255
    settings = {**small_settings, "init_image": red, "init_image_alpha": 0, "init_noise": "snow",
                "iterations": 8, "learning_rate": 0.1}
    free = _steps(settings, tiny_perceptor)[-1].image[0]
    held = _steps(settings, tiny_perceptor, init_weight_pix=20)[-1].image[0]
    assert (held - image).abs().mean() < (free - image).abs().mean() - 0.02


def test_init_weight_is_a_prompt_towards_the_init_images_embedding(small_settings, tiny_perceptor, red):
    run = pixray.generate({**small_settings, "init_image": red, "init_weight": 0.5},
                          perceptors=[tiny_perceptor])
    (source,) = [s for s in run.prompt_sources if isinstance(s, InitImagePrompt)]
    targets = source.encode(tiny_perceptor)
    assert targets.embeds.shape == (1, 32) and targets.weights.tolist() == [0.5]
    flat = torch.tensor([230, 20, 20]).float()[None, :, None, None].expand(1, 3, 32, 32) / 255
    assert torch.allclose(targets.embeds, tiny_perceptor.encode_image(flat), atol=1e-4)


def test_pixrays_short_flags():
    flags = ["-iia", "128", "-iw", "0.5", "-iwd", "1", "-iwc", "2", "-iwp", "3"]
    args = vars(build_parser().parse_args(flags))
    assert (args["init_image_alpha"], args["init_weight"], args["init_weight_dist"], args["init_weight_cos"],
            args["init_weight_pix"]) == ("128", "0.5", "1", "2", "3")
