"""Pixray's starting canvases (init_noise): shapes, ranges, their statistics and reproducibility."""

import pytest
import torch

from pixray.errors import SettingsError
from pixray.init_noise import NOISE_KINDS, noise_image


def _neighbour_correlation(image: torch.Tensor) -> float:
    """Mean over channels of the correlation between horizontally adjacent pixels."""
    values = []
    for channel in image[0]:
        pairs = torch.stack([channel[:, :-1].flatten(), channel[:, 1:].flatten()])
        values.append(float(torch.corrcoef(pairs)[0, 1]))
    return sum(values) / len(values)


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("size", [(20, 10), (64, 64), (300, 90), (30, 2100)])
def test_every_kind_fills_the_canvas_in_range(kind, size):
    width, height = size
    image = noise_image(kind, width, height, torch.Generator().manual_seed(0))
    assert image.shape == (1, 3, height, width) and image.is_contiguous()
    assert image.min() >= 0 and image.max() <= 1 and image.isfinite().all()


@pytest.mark.parametrize("kind", ["pixels", "gradient", "snow"])
def test_a_seed_reproduces_the_start_and_another_seed_changes_it(kind):
    def start(seed: int) -> torch.Tensor:
        return noise_image(kind, 96, 54, torch.Generator().manual_seed(seed))

    assert torch.equal(start(3), start(3))
    assert not torch.equal(start(3), start(4))


def test_pixels_is_smooth_perlin_noise_and_snow_is_not():
    """Pixray's 'pixels' start is soft blobs of colour: neighbouring pixels correlate strongly, every
    channel spans the whole range with a mean near the middle; 'snow' is independent per pixel."""
    generator = torch.Generator().manual_seed(0)
    perlin = noise_image("pixels", 384, 216, generator)
    snow = noise_image("snow", 384, 216, generator)
    assert _neighbour_correlation(perlin) > 0.9
    assert abs(_neighbour_correlation(snow)) < 0.05
    for channel in perlin[0]:
        assert channel.min() < 0.01 and channel.max() > 0.99 and 0.4 < channel.mean() < 0.6
    assert 0.2 < perlin.std() < 0.3  # spread by the contrast curve, yet mostly mid tones
    # Blobs, not stripes: as smooth down the canvas as across it.
    assert _neighbour_correlation(perlin.transpose(2, 3)) > 0.9
    # The channels are independent fields: colour, not grey.
    red, green, _ = perlin[0].flatten(1)
    assert abs(float(torch.corrcoef(torch.stack([red, green]))[0, 1])) < 0.2


def test_blob_size_follows_the_canvas_as_pixray_picks_the_noise_square():
    """Up to 256 pixels the coarsest blobs are 8 pixels across (32 lattice cells over 256); a 384x216
    canvas lies on a 512 square, so its blobs are twice as big and neighbours correlate more."""
    generator = torch.Generator().manual_seed(0)
    small = noise_image("pixels", 256, 144, generator)
    large = noise_image("pixels", 384, 216, generator)
    assert _neighbour_correlation(large) > _neighbour_correlation(small) + 0.02


def test_gradient_is_pixrays_per_channel_ramps():
    image = noise_image("gradient", 40, 30, torch.Generator().manual_seed(1))[0]
    red, green, blue = image
    assert torch.equal(red, red[:1].expand_as(red)) and red[0, 0] == 0  # rises left to right from black
    assert (red[0, 1:] > red[0, :-1]).all()
    assert torch.equal(green, green[:, :1].expand_as(green)) and green[0, 0] == 0  # top to bottom
    assert (green[1:, 0] > green[:-1, 0]).all()
    assert torch.equal(blue, blue[:, :1].expand_as(blue))
    assert blue[-1, 0] <= 127 / 255 + 1e-6  # Pixray's blue ends below half


def test_none_is_flat_and_unknown_kinds_are_refused():
    assert torch.equal(noise_image("none", 8, 8, torch.Generator()), torch.full((1, 3, 8, 8), 0.5))
    with pytest.raises(SettingsError, match=r"init_noise.*pixels, gradient, snow, none"):
        noise_image("perlin", 8, 8, torch.Generator())
