"""Prompts that are not text: target images and noise directions, through one prompt-source seam."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_clip
from PIL import Image

import pixray
from pixray.cli import build_parser
from pixray.init_images import ImageReader
from pixray.perceptors import Perceptor
from pixray.prompt_sources import TargetImages
from pixray.prompt_sources.noise import NoisePrompts
from pixray.settings import SettingsError, build_settings


def _image(path, colour, size=(40, 30)):
    Image.new("RGB", size, colour).save(path)
    return str(path)


def test_target_entries_keep_their_own_weights_and_are_centre_cropped(tmp_path, tiny_perceptor):
    red = _image(tmp_path / "red.png", (255, 0, 0))
    blue = _image(tmp_path / "blue.png", (0, 0, 255), (30, 90))
    settings = build_settings({"target_images": f"{red}:0.5|{blue}:-1:0.2"})
    source = TargetImages.from_settings(settings, ImageReader())
    targets = source.encode(tiny_perceptor)
    assert targets.embeds.shape == (2, 32) and torch.allclose(targets.embeds.norm(dim=-1), torch.ones(2))
    assert targets.weights.tolist() == [0.5, -1.0] and targets.stops.tolist()[1] == pytest.approx(0.2)
    flat_red = torch.tensor([1.0, 0.0, 0.0])[None, :, None, None].expand(1, 3, 32, 32)
    alone = tiny_perceptor.encode_image(flat_red)
    assert torch.allclose(targets.embeds[0], alone[0], atol=1e-4)  # a flat image crops to itself


def test_a_missing_target_image_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="target_images"):
        pixray.generate({"target_images": str(tmp_path / "nope.png"), "drawer": "pixel", "device": "cpu"})


def test_target_images_alone_steer_a_run_towards_them(tmp_path, small_settings, tiny_perceptor):
    red = _image(tmp_path / "red.png", (255, 0, 0))
    settings = {**small_settings, "prompts": "", "target_images": red, "iterations": 1}
    from_target = list(pixray.generate({**settings, "init_image": red}, perceptors=[tiny_perceptor]))
    from_grey = list(pixray.generate({**settings, "init_noise": "none"}, perceptors=[tiny_perceptor]))
    assert from_target[0].loss < from_grey[0].loss


def test_noise_prompts_reach_every_perceptor(small_settings):
    perceptors = [Perceptor("a", tiny_clip(seed=0)), Perceptor("b", tiny_clip(seed=1))]
    plain = next(iter(pixray.generate({**small_settings, "iterations": 1}, perceptors=perceptors))).losses
    noisy = next(iter(pixray.generate({**small_settings, "iterations": 1, "noise_prompt_seeds": [3, 4],
                                       "noise_prompt_weights": [0.5]}, perceptors=perceptors))).losses
    for name in ("a", "b"):
        assert noisy[name] != plain[name]


def test_noise_prompt_weights_default_to_one_and_may_not_outnumber_seeds(tiny_perceptor):
    source = NoisePrompts.from_settings(build_settings({"noise_prompt_seeds": [3, 4],
                                                        "noise_prompt_weights": [0.5]}), ImageReader())
    targets = source.encode(tiny_perceptor)
    assert targets.weights.tolist() == [0.5, 1.0]
    assert torch.allclose(targets.embeds.norm(dim=-1), torch.ones(2))
    again = NoisePrompts.from_settings(build_settings({"noise_prompt_seeds": [3]}), ImageReader())
    assert torch.equal(again.encode(tiny_perceptor).embeds[0], targets.embeds[0])  # from its seed alone
    with pytest.raises(SettingsError, match="'noise_prompt_weights': 2 weights for 1 noise_prompt_seeds"):
        NoisePrompts.from_settings(build_settings(
            {"noise_prompt_seeds": [3], "noise_prompt_weights": [1, 2]}), ImageReader())


def test_a_run_needs_some_prompt():
    with pytest.raises(SettingsError, match=r"'prompts' is empty.*target_images.*noise_prompt_seeds"):
        pixray.generate({"drawer": "pixel", "device": "cpu"})


def test_pixrays_short_flags():
    args = vars(build_parser().parse_args(["-ti", "a.png|b.png:2", "-nps", "1", "2", "-npw", "0.5", "1"]))
    settings = build_settings({k: (v[0] if len(v) == 1 else v) if isinstance(v, list) else v
                               for k, v in args.items() if k not in ("config", "quiet")})
    assert settings.target_images == "a.png|b.png:2"
    assert settings.noise_prompt_seeds == [1, 2] and settings.noise_prompt_weights == [0.5, 1.0]
