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


def test_palette_is_zero_on_palette_colours_and_measures_the_nearest():
    loss = _loss("palette", target_palette="#ff0000,blue", palette_weight=2.0)
    image = torch.zeros(1, 3, 4, 4)
    image[:, 0, :, :2] = 1.0  # left half red, right half blue
    image[:, 2, :, 2:] = 1.0
    assert loss(image) < 1e-3
    grey = torch.full((1, 3, 4, 4), 0.5)  # sqrt(0.25 * 3) from both colours
    assert torch.isclose(loss(grey), torch.tensor(2.0 * 0.75 ** 0.5), atol=1e-4)


def test_palette_gradient_pulls_each_pixel_to_its_nearest_colour():
    loss = _loss("palette", target_palette="black,white")
    image = torch.tensor([0.2, 0.7]).view(1, 1, 1, 2).expand(1, 3, 1, 2).clone().requires_grad_(True)
    loss(image).backward()
    assert (image.grad[..., 0] > 0).all() and (image.grad[..., 1] < 0).all()  # down to 0, up to 1


@pytest.mark.parametrize(("palette", "message"), [
    ("#12345,red", r"'#12345' is not a colour; give '#rrggbb' codes or CSS colour names"),
    ("reddish", r"'reddish' is not a colour"),
    ([], "target_palette is empty"),
])
def test_palette_errors_name_the_bad_colour(palette, message):
    with pytest.raises(SettingsError, match=message):
        _loss("palette", target_palette=palette)
