import pytest
import torch

from pixray.losses import LOSSES
from pixray.settings import SettingsError, build_settings


def _loss(name, **options):
    return LOSSES.lookup(name)(build_settings(options).section(name))


def test_smoothness_is_zero_on_flat_images_and_weighted():
    loss = _loss("smoothness", smoothness_weight=2.0)
    assert loss(torch.full((1, 3, 8, 8), 0.3)) == 0
    image = torch.zeros(1, 3, 8, 8)
    image[..., :, 4:] = 1.0  # one vertical edge: |dx| = 1 on 1 of 7 columns
    assert torch.isclose(loss(image), torch.tensor(2.0 / 7))


def test_smoothness_gradient_flattens_speckle():
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    loss = _loss("smoothness")
    before = loss(image)
    before.backward()
    assert loss(image.detach() - 0.01 * image.grad.sign()) < before


def test_custom_loss_setting_and_errors():
    assert build_settings({"custom_loss": "smoothness"}).custom_loss == ["smoothness"]
    with pytest.raises(SettingsError, match=r"'custom_loss'.*one of smoothness"):
        build_settings({"custom_loss": "edges"})
    with pytest.raises(SettingsError, match="unknown loss 'edge'"):
        LOSSES.lookup("edge")


def test_engine_adds_canvas_losses(small_settings, tiny_perceptor):
    import pixray

    steps = list(pixray.generate(small_settings, perceptors=[tiny_perceptor], iterations=2,
                                 custom_loss=["smoothness"], smoothness_weight=0.5))
    losses = steps[0].losses
    assert set(losses) == {"tiny", "smoothness", "total"}
    assert torch.isclose(losses["total"], losses["tiny"] + losses["smoothness"])
