"""The super_resolution drawer: a quarter-size picture enlarged by a Real-ESRGAN-format network."""

from pathlib import Path

import pytest
import torch
from test_frozen_convolution import check_frozen_network

import pixray
from pixray.drawers import DRAWERS
from pixray.drawers.super_resolution import load_upscaler
from pixray.model_cache import ModelCache
from pixray.settings import build_settings
from pixray.weights import CheckpointError, MissingWeightsError


def write_upscaler(directory: Path, name: str = "RealESRGAN_x4plus.pth", scale_convs: int = 2) -> Path:
    """A tiny RRDBNet (8 features, one block) in Real-ESRGAN's file format: basicsr's key names
    under ``params_ema``. ``scale_convs`` upsampling convolutions make it 4x (2) or 2x (1)."""
    torch.manual_seed(0)
    features, growth, state = 8, 32, {}

    def conv(name: str, inputs: int, outputs: int) -> None:
        state[f"{name}.weight"] = torch.randn(outputs, inputs, 3, 3) * 0.05
        state[f"{name}.bias"] = torch.zeros(outputs)

    conv("conv_first", 3, features)
    for block in (1, 2, 3):
        for i in range(1, 6):
            conv(f"body.0.rdb{block}.conv{i}", features + (i - 1) * growth, growth if i < 5 else features)
    for layer in ("conv_body", *[f"conv_up{i + 1}" for i in range(scale_convs)], "conv_hr"):
        conv(layer, features, features)
    conv("conv_last", features, 3)
    path = directory / name
    torch.save({"params_ema": state}, path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("sr")
    write_upscaler(directory)
    return directory


def test_the_canvas_is_the_networks_4x_enlargement_of_a_learnt_quarter(weights):
    models = ModelCache(torch.device("cpu"), weights)
    drawer = DRAWERS.lookup("super_resolution").create(build_settings({}).section("super_resolution"), 42, 27,
                                                       models)
    assert (drawer.width, drawer.height) == (40, 24) and drawer.small.shape == (1, 3, 6, 10)
    image = torch.rand(1, 3, 24, 40)
    drawer.init_from_image(image, torch.Generator())
    expected = torch.nn.functional.interpolate(image, size=(6, 10), mode="bilinear", align_corners=False)
    assert torch.allclose(drawer.small, expected)  # Pixray's start: the image at a quarter size
    out = drawer.synth()
    assert out.shape == (1, 3, 24, 40) and out.min() >= 0 and out.max() <= 1
    out.sum().backward()
    assert drawer.small.grad.abs().sum() > 0
    assert [p for p in drawer.trainable()] == [drawer.small]  # the network stays frozen
    again = DRAWERS.lookup("super_resolution").create(build_settings({}).section("super_resolution"), 40, 24,
                                                      models)
    assert again.model is drawer.model and models.loads == 1


def test_a_run_through_the_api_and_what_is_refused(weights, tmp_path, tiny_perceptor):
    settings = {"prompts": "a red circle", "drawer": "super_resolution", "size": [32, 24], "iterations": 2,
                "num_cuts": 2, "seed": 1, "device": "cpu", "weights_dir": str(weights)}
    steps = list(pixray.generate(settings, perceptors=[tiny_perceptor]))
    assert steps[-1].image.shape == (1, 3, 24, 32)
    with pytest.raises(MissingWeightsError, match=r"RealESRGAN_x4plus\.pth"):
        pixray.generate({**settings, "weights_dir": str(tmp_path)}, perceptors=[tiny_perceptor])
    write_upscaler(tmp_path, scale_convs=1)
    with pytest.raises(CheckpointError, match="scale 2; the super_resolution drawer needs a 4x RGB one"):
        pixray.generate({**settings, "weights_dir": str(tmp_path)}, perceptors=[tiny_perceptor])
    (tmp_path / "RealESRGAN_x4plus.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a super-resolution checkpoint"):
        pixray.generate({**settings, "weights_dir": str(tmp_path)}, perceptors=[tiny_perceptor])


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_network_runs_in_the_runs_precision_channels_last_on_the_cpu(weights, tiny_perceptor, precision):
    settings = {"prompts": "a red circle", "drawer": "super_resolution", "size": [32, 24], "iterations": 2,
                "num_cuts": 2, "seed": 1, "device": "cpu", "precision": precision}
    run = pixray.generate(settings, perceptors=[tiny_perceptor], models=ModelCache(torch.device("cpu"),
                                                                                     weights))
    convs = [m for m in run.drawer.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(conv.weight.is_contiguous(memory_format=torch.channels_last) for conv in convs)
    seen = []
    for conv in convs:
        conv.register_forward_hook(lambda module, args, out: seen.append((args[0].is_contiguous(
            memory_format=torch.channels_last), out.dtype)))
    steps = list(run)
    assert set(seen) == {(True, getattr(torch, precision))}
    assert all(step.image.dtype == torch.float32 and torch.isfinite(step.image).all() for step in steps)
    assert steps[-1].image.min() >= 0 and steps[-1].image.max() <= 1


def test_the_network_keeps_no_convolutions_input_for_the_same_picture_and_gradient(weights):
    model = load_upscaler(weights / "RealESRGAN_x4plus.pth")
    check_frozen_network(model, model, torch.rand(1, 3, 6, 10))
