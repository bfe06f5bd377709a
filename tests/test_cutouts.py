import pytest
import torch
import torch.nn.functional as F

from pixray.cutouts import CutoutParams, Cutouts


def _image():
    return torch.rand(1, 3, 30, 50, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("size", [16, 24])
def test_shapes_ranges_and_gradients(size):
    image = _image().requires_grad_(True)
    cuts = Cutouts(size)(image, 12, torch.Generator().manual_seed(1))
    assert cuts.shape == (12, 3, size, size)
    # Within [0,1] up to the added noise (sd <= 0.1).
    assert cuts.min() > -0.6 and cuts.max() < 1.6 and cuts.std() > 0.05
    cuts.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_same_generator_state_same_cutouts():
    a = Cutouts(16)(_image(), 8, torch.Generator().manual_seed(5))
    b = Cutouts(16)(_image(), 8, torch.Generator().manual_seed(5))
    c = Cutouts(16)(_image(), 8, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _identity(n, zoom=False, half=1.0, grey=0.5):
    quads = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]).expand(n, 4, 2) * half
    return CutoutParams(quads=quads, zoom=torch.full((n,), zoom), grey=torch.full((n,), grey),
                        hue=torch.zeros(n), saturation=torch.ones(n), noise=torch.zeros(n))


def test_identity_view_is_the_pooled_canvas():
    image = _image()
    out = Cutouts(10).apply(image, _identity(2), torch.Generator())
    pooled = (F.adaptive_avg_pool2d(image, 10) + F.adaptive_max_pool2d(image, 10)) / 2
    assert torch.allclose(out, pooled.expand(2, -1, -1, -1), atol=1e-5)


def test_zoom_out_surround_uses_the_fill_grey():
    image = torch.zeros(1, 3, 20, 20)
    out = Cutouts(20).apply(image, _identity(1, zoom=True, half=2.0, grey=0.7), torch.Generator())
    assert torch.allclose(out[0, :, 0, 0], torch.full((3,), 0.7))  # corner: surround
    assert out[0, :, 10, 10].abs().max() < 1e-6  # centre: the (black) canvas


def test_padding_mode_and_fill_are_per_call():
    image, gen = _image(), torch.Generator().manual_seed(0)
    out = Cutouts(16)(image, 6, gen, padding_mode="reflection", fill=0.25)
    assert out.shape == (6, 3, 16, 16)
    with pytest.raises(ValueError, match="padding_mode 'wrap'"):
        Cutouts(16)(image, 2, gen, padding_mode="wrap")


def test_colour_matrices():
    from pixray.cutouts import colour_matrices

    grey = torch.full((3,), 0.4)
    m = colour_matrices(torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 0.5, 1.5]))
    assert torch.allclose(m[0], torch.eye(3), atol=1e-6)
    assert torch.allclose(m @ grey, grey.expand(3, 3), atol=1e-6)  # greys stay grey
    red = torch.tensor([1.0, 0.0, 0.0])
    # A third of a turn maps red to green: hue rotation about the grey axis.
    third = colour_matrices(torch.tensor([2 * torch.pi / 3]), torch.ones(1))[0]
    assert torch.allclose(third @ red, torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    # Saturation 0 gives the luma grey.
    flat = colour_matrices(torch.zeros(1), torch.zeros(1))[0]
    assert torch.allclose(flat @ red, torch.full((3,), 0.299), atol=1e-6)


def test_colour_gradient_reaches_a_grey_canvas():
    image = torch.full((1, 3, 20, 20), 0.5, requires_grad=True)
    cuts = Cutouts(16)(image, 8, torch.Generator().manual_seed(0))
    cuts[:, 0].mean().backward()  # "more red"
    g = image.grad.sum(dim=(0, 2, 3))
    assert g[0] > 0 and g[0] > 2 * g[1].abs() and g[0] > 2 * g[2].abs()


def test_zoom_out_can_extend_the_canvas_instead_of_framing_it():
    image = torch.zeros(1, 3, 20, 20)
    image[..., 0, :] = 1.0  # a white top edge, extended upwards by "border" padding
    out = Cutouts(20).apply(image, _identity(1, zoom=True, half=2.0, grey=0.7), torch.Generator(),
                            zoom_padding="border")
    assert torch.allclose(out[0, :, 0, 10], torch.ones(3), atol=1e-5)  # above the canvas: its edge
    assert out[0, :, 19, 10].abs().max() < 1e-5  # below: black, not the grey frame
