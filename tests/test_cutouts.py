import dataclasses

import pytest
import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_perspective_transform, warp_perspective

from pixray.cutouts import (
    CUT_METHODS,
    CutoutParams,
    PixrayCutouts,
    RotatedCutouts,
    pooled_shape,
    unit_corners,
)


def _image():
    return torch.rand(1, 3, 30, 50, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", list(CUT_METHODS))
@pytest.mark.parametrize("size", [16, 24])
def test_shapes_ranges_and_gradients(method, size):
    image = _image().requires_grad_(True)
    cuts = CUT_METHODS[method](size)(image, 12, torch.Generator().manual_seed(1))
    assert cuts.shape == (12, 3, size, size)
    # Within [0,1] up to the added noise (sd <= 0.1).
    assert cuts.min() > -0.6 and cuts.max() < 1.6 and cuts.std() > 0.05
    cuts.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


@pytest.mark.parametrize("method", list(CUT_METHODS))
def test_same_generator_state_same_cutouts(method):
    recipe = CUT_METHODS[method]
    a = recipe(16)(_image(), 8, torch.Generator().manual_seed(5))
    b = recipe(16)(_image(), 8, torch.Generator().manual_seed(5))
    c = recipe(16)(_image(), 8, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _identity(n, zoom=False, half=1.0, grey=0.5):
    quads = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]).expand(n, 4, 2) * half
    return CutoutParams(quads=quads, framed=torch.full((n,), zoom), grey=torch.full((n,), grey),
                        hue=torch.zeros(n), saturation=torch.ones(n), noise=torch.zeros(n))


def test_identity_view_is_the_pooled_canvas():
    image = _image()[..., :30]  # square: the pooled canvas is the view's size
    out = PixrayCutouts(10).apply(image, _identity(2), torch.Generator())
    pooled = (F.adaptive_avg_pool2d(image, 10) + F.adaptive_max_pool2d(image, 10)) / 2
    assert torch.allclose(out, pooled.expand(2, -1, -1, -1), atol=1e-5)


def test_a_canvas_at_its_pooled_size_is_viewed_as_it_is():
    image = _image()[..., :30].requires_grad_(True)
    out = PixrayCutouts(30).apply(image, _identity(2), torch.Generator())
    assert torch.allclose(out, image.expand(2, -1, -1, -1), atol=1e-5)
    out.sum().backward()
    assert torch.allclose(image.grad, torch.full_like(image, 2.0), atol=1e-5)  # each pixel seen twice


def test_zoom_out_surround_uses_the_fill_grey():
    image = torch.zeros(1, 3, 20, 20)
    out = PixrayCutouts(20).apply(image, _identity(1, zoom=True, half=2.0, grey=0.7), torch.Generator())
    assert torch.allclose(out[0, :, 0, 0], torch.full((3,), 0.7))  # corner: surround
    assert out[0, :, 10, 10].abs().max() < 1e-6  # centre: the (black) canvas


def test_padding_mode_and_fill_are_per_call():
    image, gen = _image(), torch.Generator().manual_seed(0)
    out = PixrayCutouts(16)(image, 6, gen, padding_mode="reflection", fill=0.25)
    assert out.shape == (6, 3, 16, 16)
    with pytest.raises(ValueError, match="padding_mode 'wrap'"):
        PixrayCutouts(16)(image, 2, gen, padding_mode="wrap")


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
    cuts = RotatedCutouts(16)(image, 8, torch.Generator().manual_seed(0))
    cuts[:, 0].mean().backward()  # "more red"
    g = image.grad.sum(dim=(0, 2, 3))
    assert g[0] > 0 and g[0] > 2 * g[1].abs() and g[0] > 2 * g[2].abs()


def test_zoom_out_can_extend_the_canvas_instead_of_framing_it():
    image = torch.zeros(1, 3, 20, 20)
    image[..., 0, :] = 1.0  # a white top edge, extended upwards by "border" padding
    out = PixrayCutouts(20).apply(image, _identity(1, zoom=True, half=2.0, grey=0.7), torch.Generator(),
                            zoom_padding="border")
    assert torch.allclose(out[0, :, 0, 10], torch.ones(3), atol=1e-5)  # above the canvas: its edge
    assert out[0, :, 19, 10].abs().max() < 1e-5  # below: black, not the grey frame


@pytest.mark.parametrize("cut, canvas, pooled", [
    (224, (216, 384), (216, 384)),  # a canvas near the cut size is used as it is
    (224, (64, 64), (224, 224)),
    (224, (700, 1200), (224, 384)),  # short side to the cut size, aspect kept
    (224, (1200, 700), (384, 224)),
    (32, (24, 32), (24, 32)),  # the long side never beyond max(cut size, its own)
])
def test_the_canvas_is_pooled_at_its_own_aspect(cut, canvas, pooled):
    assert pooled_shape(cut, *canvas) == pooled


def _circle_canvas(width: int, height: int, centre: tuple[float, float], radius: float) -> torch.Tensor:
    """(1,3,height,width): a red disc on blue, antialiased by supersampling."""
    ys, xs = torch.meshgrid(torch.arange(height * 4) / 4, torch.arange(width * 4) / 4, indexing="ij")
    inside = (((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) < radius**2).float()
    inside = F.avg_pool2d(inside[None, None], 4)[0, 0]
    return torch.stack([inside, torch.zeros_like(inside), 1 - inside])[None]


def _whole_disc_ratios(cuts: torch.Tensor) -> list[float]:
    """width / height of the red disc in each cutout where it is whole (not touching the border),
    from the second moments of its coverage (sub-pixel, unlike a bounding box)."""
    ratios = []
    for cut in cuts:
        mask = (cut[0] > 0.5) & (cut[2] < 0.5)
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        if len(rows) < 8 or rows.min() == 0 or cols.min() == 0 or rows.max() == cut.shape[1] - 1 \
                or cols.max() == cut.shape[2] - 1:
            continue
        weight = (cut[0] - cut[2]).clamp(0, 1)  # the disc: red; its blue ground and grey frames: 0
        ys, xs = torch.meshgrid(torch.arange(cut.shape[1]), torch.arange(cut.shape[2]), indexing="ij")
        mass = weight.sum()
        mean_x, mean_y = (weight * xs).sum() / mass, (weight * ys).sum() / mass
        var_x = (weight * (xs - mean_x) ** 2).sum() / mass
        var_y = (weight * (ys - mean_y) ** 2).sum() / mass
        ratios.append(float((var_x / var_y).sqrt()))
    return ratios


@pytest.mark.parametrize("method, undistorted", [
    ("pixray", {"crop_perspective": 0, "framed_perspective": 0, "crop_ratio": (1.0, 1.0)}),
    ("rotated", {"rotate_degrees": 0, "perspective": 0, "crop_ratio": (1.0, 1.0)}),
])
@pytest.mark.parametrize("canvas", [(384, 216), (216, 384)])
def test_a_circle_on_a_wide_or_tall_canvas_stays_a_circle_in_every_cutout(method, undistorted, canvas):
    """Without the recipe's deliberate distortions (perspective, Pixray's 0.85-1.2 crop ratios,
    rotation) every whole disc in a cutout is round within 5 %; with them, round on average."""
    width, height = canvas
    image = _circle_canvas(width, height, (width * 0.45, height * 0.55), min(width, height) * 0.3)
    recipe = CUT_METHODS[method]
    straight = recipe(128, noise=0, jitter_probability=0, **undistorted)
    params = straight.sample(48, torch.Generator().manual_seed(0), torch.device("cpu"),
                             pooled_shape(128, height, width))
    ratios = _whole_disc_ratios(straight.apply(image, params, torch.Generator()))
    assert len(ratios) >= 16 and params.framed.sum() >= 12
    assert all(abs(r - 1) <= 0.05 for r in ratios), ratios
    # The defaults, distortions included: no systematic squash.
    ratios = _whole_disc_ratios(recipe(128, noise=0)(image, 96, torch.Generator().manual_seed(1)))
    assert len(ratios) >= 24
    assert abs(sorted(ratios)[len(ratios) // 2] - 1) <= 0.05


def test_pixray_proportions_letterbox_and_one_grey_per_batch():
    recipe = PixrayCutouts(64, noise=0, jitter_probability=0, framed_perspective=0)
    params = recipe.sample(30, torch.Generator().manual_seed(2), torch.device("cpu"), (216, 384))
    assert params.framed.tolist() == [False] * 18 + [True] * 12  # int(0.6 n) crops first, as Pixray
    assert (params.grey == params.grey[0]).all()
    # A white widescreen canvas in a framed view: 90-100 % of the view's width, 1/1.78 of that high,
    # on the grey above and below.
    white = torch.ones(1, 3, 216, 384)
    views = recipe.apply(white, params, torch.Generator())[18:]
    grey = float(params.grey[0])
    for view in views:
        canvas = (view[0] - grey).abs() > 0.5 * abs(1 - grey)
        width = int(canvas.any(0).sum())
        height = int(canvas.any(1).sum())
        assert 0.88 * 64 <= width <= 64 and abs(width / height - 384 / 216) < 0.12
        assert torch.allclose(view[:, 0, 32], torch.full((3,), grey), atol=1e-4)  # letterbox band


def test_pixray_colour_jitter_strength():
    params = PixrayCutouts(32).sample(4000, torch.Generator().manual_seed(0), torch.device("cpu"), (32, 32))
    jittered = params.hue != 0
    assert 0.77 < jittered.float().mean() < 0.83
    assert params.hue.abs().max() <= 0.2 * torch.pi and params.hue.abs().max() > 0.19 * torch.pi
    assert ((params.saturation - 1).abs() <= 0.1 + 1e-6).all()


def _warped_views(cutouts, image, params, padding_mode, zoom_padding):
    """The views as kornia's ``warp_perspective`` draws them, one warp of the expanded canvas per
    padding mode (what ``apply`` did before it sampled all views through one grid), before colour."""
    size = cutouts.cut_size
    height, width = pooled_shape(size, *image.shape[-2:])
    shape = (height, width)
    pooled = (F.adaptive_avg_pool2d(image, shape) + F.adaptive_max_pool2d(image, shape)) / 2
    n = params.quads.shape[0]
    target = unit_corners(image.device).to(params.quads).expand(n, 4, 2)
    scale = torch.tensor([(width - 1) / 2, (height - 1) / 2])
    matrix = get_perspective_transform((params.quads + 1) * scale, (target + 1) * (size - 1) / 2)
    source = pooled.expand(n, -1, -1, -1)
    crops = warp_perspective(source, matrix, (size, size), padding_mode=padding_mode)
    if zoom_padding is None:
        covered = torch.cat([source, torch.ones_like(source[:, :1])], 1)
        framed = warp_perspective(covered, matrix, (size, size), padding_mode="zeros")
        zoomed = framed[:, :3] + (1 - framed[:, 3:]) * params.grey[:, None, None, None]
    else:
        zoomed = warp_perspective(source, matrix, (size, size), padding_mode=zoom_padding)
    return torch.where(params.framed[:, None, None, None], zoomed, crops)


@pytest.mark.parametrize("method", list(CUT_METHODS))
@pytest.mark.parametrize(("padding_mode", "zoom_padding"), [
    ("border", None), ("reflection", None), ("zeros", None), ("border", "reflection"),
    ("reflection", "zeros"), ("zeros", "border")])
def test_views_sampled_through_one_grid_are_kornias_warps(method, padding_mode, zoom_padding):
    image = torch.rand(1, 3, 30, 50, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    cutouts = CUT_METHODS[method](24)
    params = cutouts.sample(16, torch.Generator().manual_seed(4), image.device, pooled_shape(24, 30, 50))
    params = dataclasses.replace(params, quads=params.quads.double() * 1.3,  # some views well beyond
                                 grey=params.grey.double(), hue=torch.zeros(16, dtype=torch.float64),
                                 saturation=torch.ones(16, dtype=torch.float64),
                                 noise=torch.zeros(16, dtype=torch.float64))
    assert params.framed.any() and not params.framed.all()
    weights = torch.rand(16, 3, 24, 24, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    results = []
    for views in (lambda x: cutouts.apply(x, params, torch.Generator(), padding_mode, zoom_padding),
                  lambda x: _warped_views(cutouts, x, params, padding_mode, zoom_padding)):
        leaf = image.clone().requires_grad_(True)
        out = views(leaf)
        (out * weights).sum().backward()
        results.append((out.detach(), leaf.grad))
    (ours, our_grad), (kornias, kornia_grad) = results
    assert (ours - kornias).abs().max() <= 1e-9
    assert (our_grad - kornia_grad).abs().max() <= 1e-9 * kornia_grad.abs().max()


@pytest.mark.parametrize("threads, parts", [(2, 2), (3, 3), (4, 4), (5, 4)])
def test_a_cpu_samples_the_stacked_views_in_one_part_a_thread(threads, parts, monkeypatch):
    """torch's CPU sampler gives each image to one thread, so the canvas is expanded to one image a
    thread (or to the most parts below that dividing the stacked rows: 6 views x 16 rows do not divide
    by 5); the views, their gradient and the noise are those of one part to within rounding."""
    image = _image().double().requires_grad_(True)
    weights = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def run(count: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        batches: list[int] = []
        sample = F.grid_sample

        def recording(source, grid, **kwargs):
            batches.append(source.shape[0])
            return sample(source, grid, **kwargs)

        image.grad = None
        before = torch.get_num_threads()
        torch.set_num_threads(count)
        try:
            with monkeypatch.context() as patch:
                patch.setattr(F, "grid_sample", recording)
                cuts = PixrayCutouts(16)(image, 6, torch.Generator().manual_seed(1))
        finally:
            torch.set_num_threads(before)
        (cuts * weights).sum().backward()
        return cuts.detach(), image.grad.clone(), batches

    one, one_grad, one_batches = run(1)
    parted, parted_grad, parted_batches = run(threads)
    assert one_batches == [1, 1]  # the views, then their coverage of the canvas
    assert parted_batches == [parts, parts]
    assert torch.allclose(parted, one, atol=1e-12) and torch.allclose(parted_grad, one_grad, atol=1e-12)
