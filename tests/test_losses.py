import math

import pytest
import torch

import pixray
from pixray.colours import parse_colours
from pixray.init_images import ImageReader
from pixray.losses import LOSSES, Loss, LossContext
from pixray.resources import Resources
from pixray.settings import SettingsError, build_settings


def context(image, cutouts=None, embeds=None, index=0, iterations=10):
    """A loss context of one canvas (and, for losses that look at them, cutouts and embeddings)."""
    return LossContext(image, cutouts or {}, embeds or {}, index, iterations)


class _OnCanvas:
    """A loss called on a bare canvas, for the losses that look only at it."""

    def __init__(self, loss):
        self.loss = loss

    def __call__(self, image):
        return self.loss(context(image))

    def __getattr__(self, name):
        return getattr(self.loss, name)


def _loss(name, **options):
    return _OnCanvas(LOSSES.lookup(name)(build_settings(options).section(name)))


def test_smoothness_is_zero_on_flat_images_and_weighted():
    loss = _loss("smoothness", smoothness_weight=2.0, smoothness_type="tv")
    assert loss(torch.full((1, 3, 8, 8), 0.3)) == 0
    image = torch.zeros(1, 3, 8, 8)
    image[..., :, 4:] = 1.0  # one vertical edge: |dx| = 1 on 1 of 7 columns
    assert torch.isclose(loss(image), torch.tensor(2.0 / 7))


def test_smoothness_gradient_flattens_speckle():
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    loss = _loss("smoothness", smoothness_type="tv")
    before = loss(image)
    before.backward()
    assert loss(image.detach() - 0.01 * image.grad.sign()) < before


def test_custom_loss_setting_and_errors():
    assert build_settings({"custom_loss": "smoothness"}).custom_loss == ["smoothness"]
    with pytest.raises(SettingsError, match=r"'custom_loss'.*loss names \(smoothness, "):
        build_settings({"custom_loss": "borders"})
    with pytest.raises(SettingsError, match="unknown loss 'edges' \\(did you mean 'edge'\\?\\)"):
        LOSSES.lookup("edges")


def test_engine_adds_canvas_losses(small_settings, tiny_perceptor):
    steps = list(pixray.generate(small_settings, perceptors=[tiny_perceptor], iterations=2,
                                 custom_loss=["smoothness"], smoothness_weight=0.5))
    losses = steps[0].losses
    assert set(losses) == {"tiny", "smoothness", "total"}
    assert torch.isclose(losses["total"], losses["tiny"] + losses["smoothness"])


@pytest.mark.parametrize(("text", "rgb"), [
    ("#ff0000", (1.0, 0.0, 0.0)), ("navy", (0.0, 0.0, 128 / 255)), ("(255,0,0)", (1.0, 0.0, 0.0)),
    ("(255+128+0)", (1.0, 128 / 255, 0.0)), ("[1, 1, 0]", (1.0, 1.0, 0.0)),
    ("pixel_green", (0.44, 1.0, 0.53)),
])
def test_colours_in_pixrays_forms(text, rgb):
    assert build_settings({"edge_color": text}).section("edge").edge_color == text
    assert torch.allclose(parse_colours([text], "edge_color"), torch.tensor([rgb]))


def _framed(inner: float, frame: tuple[float, float, float]) -> torch.Tensor:
    """(1,3,20,10) image of colour ``inner`` with a 2-pixel frame (10 % of 20 px, 20 % of 10 px)."""
    h, w = 20, 10
    image = torch.tensor(frame).view(1, 3, 1, 1).repeat(1, 1, h, w)
    image[..., 2:h - 2, 2:w - 2] = inner
    return image


def test_edge_is_zero_on_a_frame_of_its_colour_whatever_the_inside():
    white = _loss("edge", edge_thickness=10, edge_margins=[20, 20, 10, 10], global_color_weight=0)
    assert white(_framed(0.3, (1.0, 1.0, 1.0))) == 0
    assert white(_framed(0.9, (1.0, 1.0, 1.0))) == 0
    # Black frame: each of the four bands is 1 from white in every channel; Pixray's weight 0.1.
    assert torch.isclose(white(_framed(0.3, (0.0, 0.0, 0.0))), torch.tensor(4 * 0.1))


def test_edge_is_pixrays_sum_of_band_mses_plus_the_global_pull():
    image = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(0))
    colour = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    loss = _loss("edge", edge_color="red", edge_margins=[10, 20, 15, 5])  # 3, 6 columns; 3, 1 rows

    def mse(region: torch.Tensor) -> torch.Tensor:
        return ((region - colour) ** 2).mean()

    bands = (mse(image[..., :, :3]) + mse(image[..., :, 24:]) + mse(image[..., :3, 3:24])
             + mse(image[..., 19:, 3:24]))
    expected = 0.1 * (bands + 0.05 * mse(image))  # Pixray's edge_color_weight and global_color_weight
    assert torch.isclose(loss(image), expected)
    l1 = _loss("edge", edge_color="red", edge_margins=[10, 20, 15, 5], edge_distance="l1",
               global_color_weight=0, edge_color_weight=1)
    assert torch.isclose(l1(image), sum((image[..., r, c] - colour).abs().mean() for r, c in
                                        l1.bands(20, 30)))


def test_edge_without_a_colour_asks_for_one_plain_colour():
    plain = _loss("edge", edge_color="none", edge_margins=[20, 20, 10, 10], edge_color_weight=2,
                  global_color_weight=0, edge_distance="l1")
    assert plain(_framed(0.3, (0.1, 0.5, 0.9))) < 1e-6
    image = _framed(0.3, (0.0, 0.0, 0.0))
    image[..., 0, 2:8] = 1.0  # the top band's first row (6 of the bands' 104 pixels) white
    mean = 6 / 104  # the bands' mean colour, in every channel
    top = (6 * (1 - mean) + 6 * mean) / 12  # the top band: 2 rows of the 6 columns between the sides
    sides = mean  # every other band is black, mean away from the mean
    assert torch.isclose(plain(image), torch.tensor(2 * (top + 3 * sides)), atol=1e-6)


def test_edge_bands_follow_thickness_and_margins_rounded_down_as_pixray():
    assert _loss("edge", edge_thickness=10).band(20, 40).sum() == 20 * 40 - 16 * 32
    band = _loss("edge", edge_margins="0,25,0,50").band(4, 8)  # right 2 columns, bottom 2 rows
    assert band.tolist() == [[False] * 6 + [True] * 2] * 2 + [[True] * 8] * 2
    assert _loss("edge", edge_thickness=9).band(20, 20)[1].tolist() == [True] + [False] * 18 + [True]
    assert _loss("edge", edge_thickness=0)(torch.rand(1, 3, 8, 8)) == 0
    # Sides that meet leave the top and bottom bands no pixels: they drop out rather than average nothing.
    meeting = _loss("edge", edge_margins=[50, 50, 10, 0], edge_color="red", global_color_weight=0)
    assert len(meeting.bands(24, 64)) == 2 and meeting.band(24, 64).all()
    assert torch.isfinite(meeting(torch.rand(1, 3, 24, 64)))


def test_edge_gradient_moves_only_the_band_towards_the_colour():
    image = torch.full((1, 3, 10, 10), 0.5, requires_grad=True)
    _loss("edge", edge_color="#000000", edge_thickness=20, global_color_weight=0)(image).backward()
    assert (image.grad[..., :2, :] > 0).all() and (image.grad[..., 8:, :] > 0).all()  # darker
    assert (image.grad[..., 2:8, 2:8] == 0).all()
    # Pixray's global pull reaches inside too, 0.05 as strongly per band.
    image.grad = None
    _loss("edge", edge_color="#000000", edge_thickness=20)(image).backward()
    assert (image.grad[..., 2:8, 2:8] > 0).all() and image.grad[..., 5, 5].max() < image.grad[..., 0, 5].min()


@pytest.mark.parametrize(("options", "message"), [
    ({"edge_color": "grren"}, r"'edge_color': 'grren' is not allowed; expected '#rrggbb', a CSS name"),
    ({"edge_color": "(255,0)"}, r"'edge_color': '\(255,0\)' is not allowed"),
    ({"edge_margins": "5,5,5"}, r"'edge_margins'.*four numbers"),
    ({"edge_thickness": 60}, r"'edge_thickness'.*from 0 to 50"),
])
def test_edge_errors_name_the_setting(options, message):
    with pytest.raises(SettingsError, match=message):
        _loss("edge", **options)


def _raw(name, **options):
    return LOSSES.lookup(name)(build_settings(options).section(name))


def test_saturation_rewards_colour_and_its_gradient_adds_it():
    loss = _raw("saturation", saturation_weight=2.0)
    grey = torch.full((4, 3, 8, 8), 0.5)
    colourful = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert loss(context(grey[:1], {8: grey})) == pytest.approx(-0.2 * 1e-4 * 1.3, abs=1e-6)  # eps only
    assert loss(context(grey[:1], {8: colourful})) < loss(context(grey[:1], {8: grey}))
    red, green, blue = colourful.unbind(1)
    rg, yb = red - green, (red + green) / 2 - blue
    expected = -(torch.sqrt(rg.std() ** 2 + yb.std() ** 2)
                 + 0.3 * torch.sqrt(rg.mean() ** 2 + yb.mean() ** 2))
    assert loss(context(grey[:1], {8: colourful})) == pytest.approx(float(expected) * 2 / 10, rel=1e-4)
    jitter = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    pale = torch.full((2, 3, 8, 8), 0.5) + 0.05 * jitter
    pale.requires_grad_(True)
    before = loss(context(grey[:1], {8: pale}))
    before.backward()
    assert loss(context(grey[:1], {8: pale.detach() - 0.05 * pale.grad.sign()})) < before
    two = loss(context(grey[:1], {8: colourful, 16: colourful}))
    assert two == pytest.approx(2 * float(loss(context(grey[:1], {8: colourful}))), rel=1e-5)  # summed
    assert loss(context(grey[:1])) == 0  # no cutouts given: nothing to score


def test_symmetry_is_zero_on_a_mirror_image_and_pulls_towards_one():
    loss = _loss("symmetry", symmetry_weight=3.0)
    half = torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    mirrored = torch.cat([half, half.flip(-1)], dim=-1)
    assert loss(mirrored) == 0
    image = torch.rand(1, 3, 6, 10, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    value = loss(image)
    expected = 3.0 * float(((image.detach() - image.detach().flip(-1)) ** 2).mean())
    assert float(value.detach()) == pytest.approx(expected)
    value.backward()
    after = image.detach() - 0.05 * image.grad
    assert loss(after) < value


def test_gaussian_pulls_the_edges_to_its_colour_and_leaves_the_centre():
    from pixray.losses.gaussian import centred_gaussian

    loss = _loss("gaussian", gaussian_std="3 5", gaussian_color="255 0 0")
    red = torch.zeros(1, 3, 9, 11)
    red[:, 0] = 1
    assert loss(red) == 0
    kernel = centred_gaussian(9, 11, 3, 5)
    assert kernel[4, 5] == 1 and kernel[0, 0] == pytest.approx(math.exp(-16 / 18 - 25 / 50))
    centre_only = red.clone()
    centre_only[..., 4, 5] = 0  # a black pixel where the weight is 0 costs nothing
    assert loss(centre_only) == 0
    corner = red.clone()
    corner[..., 0, 0] = 0
    assert loss(corner) == pytest.approx(float(1 - kernel[0, 0]) / (3 * 9 * 11), rel=1e-5)


def test_smoothness_types_on_cutouts():
    flat = torch.full((3, 3, 8, 8), 0.4)
    default = _raw("smoothness")
    assert default.uses_cutouts and not _raw("smoothness", smoothness_type="tv").uses_cutouts
    assert default(context(flat[:1], {8: flat})) < 1e-5
    # Two flat cutouts of different colours: each is its own image, no seam between them.
    pair = torch.cat([torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)])
    assert default(context(flat[:1], {8: pair})) < 1e-5
    ramp = torch.linspace(0, 1, 8).expand(2, 3, 8, 8).clone()  # a step of 1/7 per column
    step = 1 / 7
    assert default(context(flat[:1], {8: ramp})) == pytest.approx(math.sqrt(3) * step, rel=1e-3)
    steep = ramp * 7
    assert _raw("smoothness", smoothness_type="clipped")(context(flat[:1], {8: steep})) == pytest.approx(0.5)
    assert _raw("smoothness", smoothness_type="log")(context(flat[:1], {8: ramp})) == pytest.approx(
        math.log1p(math.sqrt(3) * step), rel=1e-3)
    assert _raw("smoothness", smoothness_spacing=2)(context(flat[:1], {8: ramp})) == pytest.approx(
        math.sqrt(3) * step / 2, rel=1e-3)
    blurred = _raw("smoothness", smoothness_gaussian_kernel=3, smoothness_gaussian_std=1.0)
    noise = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert blurred(context(flat[:1], {8: noise})) < default(context(flat[:1], {8: noise}))
    assert float(blurred.blur[0, 0].sum()) == pytest.approx(1.0)
    with pytest.raises(SettingsError, match=r"'smoothness_type'.*default, clipped, log, tv"):
        build_settings({"smoothness_type": "sharp"})


def test_the_engine_gives_losses_what_they_declare(small_settings, tiny_perceptor):
    """Cutouts and embeddings reach a loss only when it declares them, with gradient to the drawer."""
    seen = []

    class Looking(Loss):
        def __init__(self, cutouts, embeds):
            super().__init__(None)
            self.uses_cutouts, self.uses_embeds = cutouts, embeds

        def forward(self, context):
            seen.append((sorted(context.cutouts), sorted(context.embeds), context.index, context.iterations))
            total = context.canvas.sum() * 0
            for cutouts in context.cutouts.values():
                total = total + cutouts.mean()
            for embeds in context.embeds.values():
                total = total + embeds[:, 0].mean()
            return total

    for cutouts, embeds in ((False, False), (True, False), (False, True)):
        seen.clear()
        run = pixray.generate({**small_settings, "iterations": 2, "batches": 2}, perceptors=[tiny_perceptor])
        run.custom_losses["looking"] = (Looking(cutouts, embeds), 1000.0)
        steps = list(run)
        plain = list(pixray.generate({**small_settings, "iterations": 2, "batches": 2},
                                     perceptors=[tiny_perceptor]))
        # Per batch (2) when it looks at cutouts or embeddings; once per step for the canvas alone.
        calls = (0, 0, 1, 1) if cutouts or embeds else (0, 1)
        assert seen == [([32] if cutouts else [], ["tiny"] if embeds else [], i, 2) for i in calls]
        moved = not torch.equal(steps[1].image, plain[1].image)
        assert moved == (cutouts or embeds)  # a loss of the canvas times 0 moves nothing
        assert steps[0].losses["looking"].shape == ()


def _palette_loss(text, weight=1.0):
    options = build_settings({"palette": text, "palette_weight": weight}).section("palette")
    return LOSSES.lookup("palette").create(options, Resources(None, ImageReader()))


def test_palette_loss_is_pixrays_on_the_cutouts():
    loss = _palette_loss("[red, blue]", weight=2.0)
    assert torch.allclose(loss.palette[0], torch.tensor([0.898, 0.0, 0.0]), atol=1e-3)  # xkcd red, as Pixray
    cutouts = torch.zeros(3, 3, 4, 4)
    cutouts[..., :2] = loss.palette[0][:, None, None]  # red on the left, blue on the right
    cutouts[..., 2:] = loss.palette[1][:, None, None]
    assert loss(context(cutouts[:1], {4: cutouts})) < 1e-3
    grey = torch.full((3, 3, 4, 4), 0.5)
    nearest = min(((grey[0, :, 0, 0] - c) ** 2).sum().sqrt() for c in loss.palette)
    # mean distance x the number of cutouts x weight / 10, per resolution
    assert float(loss(context(grey[:1], {4: grey}))) == pytest.approx(float(nearest) * 3 * 2 / 10, rel=1e-4)
    assert float(loss(context(grey[:1], {4: grey, 8: grey.repeat(1, 1, 2, 2)}))) == pytest.approx(
        2 * float(nearest) * 3 * 2 / 10, rel=1e-4)


def test_palette_loss_pulls_each_pixel_to_its_nearest_colour():
    loss = _palette_loss("[black, white]")
    cutouts = torch.tensor([0.2, 0.7]).view(1, 1, 1, 2).expand(1, 3, 1, 2).clone().requires_grad_(True)
    loss(context(cutouts, {1: cutouts})).backward()
    assert (cutouts.grad[..., 0] > 0).all() and (cutouts.grad[..., 1] < 0).all()  # down to 0, up to 1


def test_palette_loss_needs_a_palette():
    with pytest.raises(SettingsError, match="custom loss 'palette' pulls towards the colours of the palette"):
        pixray.generate({"prompts": "x", "custom_loss": "palette", "device": "cpu", "drawer": "pixel"})


def test_edge_input_image_and_mask_as_pixray(tmp_path):
    """An input image replaces edge_color as the target; a mask replaces the bands: its dark part is
    pulled, the whole canvas averaged (Pixray's)."""
    from PIL import Image

    target = torch.zeros(1, 3, 10, 10)
    target[:, 1] = 1.0  # green
    Image.new("RGB", (20, 20), (0, 255, 0)).save(tmp_path / "green.png")
    mask = Image.new("L", (20, 20), 255)
    mask.paste(0, (0, 0, 10, 20))  # dark on the left half: pulled there
    mask.save(tmp_path / "mask.png")
    resources = Resources(None, ImageReader())

    def edge(**options):
        settings = build_settings({"global_color_weight": 0, "edge_color_weight": 1, **options})
        return LOSSES.lookup("edge").create(settings.section("edge"), resources)

    green_frame = edge(edge_input_image=str(tmp_path / "green.png"), edge_thickness=20)
    assert green_frame(context(target)) < 1e-6
    assert green_frame(context(torch.zeros(1, 3, 10, 10))) > 0
    masked = edge(edge_mask_image=str(tmp_path / "mask.png"), edge_color="red")
    image = torch.zeros(1, 3, 10, 10)
    image[:, 0, :, :5] = 1.0  # red where the mask pulls, black where it is free
    assert masked(context(image)) < 1e-6
    free_changed = image.clone()
    free_changed[..., 5:] = 0.3
    assert masked(context(free_changed)) < 1e-6
    wrong = torch.zeros(1, 3, 10, 10)  # black where red is asked: (1 - 0)^2 on half the canvas's red channel
    assert float(masked(context(wrong))) == pytest.approx(50 / 300, rel=1e-4)
    with pytest.raises(SettingsError, match="'edge_mask_image': cannot read image"):
        edge(edge_mask_image=str(tmp_path / "missing.png"))


@pytest.fixture(scope="module")
def vgg_dir(tmp_path_factory):
    """torchvision's VGG16 file format (the features' state dict under ``features.``) with random
    weights, under the manifest's file name."""
    from pixray.losses.style import Vgg16Features

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("vgg")
    layers = Vgg16Features.empty().layers
    for name, parameter in layers.named_parameters():
        torch.nn.init.kaiming_normal_(parameter) if name.endswith("weight") else parameter.data.zero_()
    torch.save({f"features.{key}": value for key, value in layers.state_dict().items()},
               directory / "vgg16-397923af.pth")
    return directory


@pytest.fixture
def unverified(monkeypatch):
    """Random stand-in weights cannot match the published checksum: skip that check."""
    import pixray.weights

    monkeypatch.setattr(pixray.weights, "verify", lambda path, entry: None)


def _style_loss(vgg_dir, tmp_path, style, **options):
    from PIL import Image

    from pixray.model_cache import ModelCache

    Image.fromarray((style.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(tmp_path / "style.png")
    settings = build_settings({"custom_loss": ["style"], "style_file": str(tmp_path / "style.png"),
                               **options})
    resources = Resources(ModelCache(torch.device("cpu"), vgg_dir), ImageReader())
    return LOSSES.lookup("style").create(settings.section("style"), resources)


def _stripes(vertical: bool, size: int = 20) -> torch.Tensor:
    """(3,size,size): red and blue stripes 4 pixels wide."""
    band = (torch.arange(size) // 4 % 2).float()
    mask = band[None, :].expand(size, size) if vertical else band[:, None].expand(size, size)
    return torch.stack([mask, torch.zeros_like(mask), 1 - mask])


def test_style_loss_prefers_the_style_and_its_gradient_moves_towards_it(vgg_dir, tmp_path, unverified):
    # Without the content term (Pixray's default weighs the canvas's own layout 32 to 1) the loss
    # is the style's alone. Each score draws the same positions (a fresh generator of one seed).
    loss = _style_loss(vgg_dir, tmp_path, _stripes(True), styleloss_skip=0, styleloss_content_weight=0)

    def score(image, index=0):
        return loss(LossContext(image[None], {}, {}, index, 10, torch.Generator().manual_seed(0)))

    grey = torch.full((3, 20, 20), 0.5, requires_grad=True)
    before = score(grey)
    assert float(score(_stripes(True))) < before.item()
    (grad,) = torch.autograd.grad(before, grey)
    assert float(score((grey - 0.02 * grad / grad.abs().max()).detach())) < before.item()
    late = _style_loss(vgg_dir, tmp_path, _stripes(True), styleloss_skip=5, styleloss_every=2)
    scored = [float(late(LossContext(grey.detach()[None], {}, {}, i, 10))) > 0 for i in (0, 4, 5, 6, 7)]
    assert scored == [False, False, False, True, False]  # from step 5 on, every 2nd: 6 (5 % 2 != 0)


def test_style_loss_repeats_with_the_seed_and_names_what_it_needs(vgg_dir, tmp_path, unverified):
    from pixray.model_cache import ModelCache
    from pixray.weights import CheckpointError, MissingWeightsError

    canvas = torch.rand(1, 3, 20, 36)
    values = [float(_style_loss(vgg_dir, tmp_path, _stripes(False), styleloss_skip=0)(
        LossContext(canvas, {}, {}, 0, 10, torch.Generator().manual_seed(3)))) for _ in range(2)]
    assert values[0] == values[1] > 0
    resources = Resources(ModelCache(torch.device("cpu"), vgg_dir), ImageReader())
    with pytest.raises(SettingsError, match="needs setting 'style_file'"):
        LOSSES.lookup("style").create(build_settings({"custom_loss": ["style"]}).section("style"), resources)
    with pytest.raises(MissingWeightsError, match=r"vgg16-397923af\.pth"):
        _style_loss(tmp_path, tmp_path, _stripes(False))
    (tmp_path / "vgg16-397923af.pth").write_bytes(b"not a state dict")
    with pytest.raises(CheckpointError):
        _style_loss(tmp_path, tmp_path, _stripes(False))


def test_vgg16_weights_are_checked_against_torchvisions_published_digits(vgg_dir, tmp_path):
    from pixray.weights import CheckpointError

    (tmp_path / "vgg16-397923af.pth").write_bytes((vgg_dir / "vgg16-397923af.pth").read_bytes())
    with pytest.raises(CheckpointError, match="checksum"):
        _style_loss(tmp_path, tmp_path, _stripes(False))


def test_a_run_with_the_style_loss(small_settings, tiny_perceptor, vgg_dir, tmp_path, unverified):
    from PIL import Image

    Image.new("RGB", (20, 20), (200, 30, 30)).save(tmp_path / "style.png")
    settings = {**small_settings, "size": [24, 20], "custom_loss": "style:2",
                "style_file": str(tmp_path / "style.png"), "styleloss_skip": 1, "weights_dir": str(vgg_dir),
                "iterations": 3}
    steps = list(pixray.generate(settings, perceptors=[tiny_perceptor]))
    assert float(steps[0].losses["style"]) == 0 and float(steps[1].losses["style"]) > 0


def _ava_head(directory, width, bias=5.0):
    """The AVA head's file format (a linear layer's state dict, ``weight`` (1,D), ``bias`` (1,))."""
    torch.manual_seed(1)
    torch.save({"weight": torch.randn(1, width), "bias": torch.tensor([bias])},
               directory / "ava_vit_b_16_linear.pth")
    return directory


def test_aesthetic_loss_pulls_the_rating_to_its_target(tmp_path, tiny_perceptor, unverified):
    from pixray.model_cache import ModelCache

    _ava_head(tmp_path, tiny_perceptor.embed_width)
    resources = Resources(ModelCache(torch.device("cpu"), tmp_path), ImageReader())
    settings = build_settings({"custom_loss": ["aesthetic"], "aesthetic_target": 7,
                               "aesthetic_perceptor": "tiny"})
    loss = LOSSES.lookup("aesthetic").create(settings.section("aesthetic"), resources)
    assert loss.uses_embeds and not loss.uses_cutouts
    embeds = torch.randn(4, tiny_perceptor.embed_width, requires_grad=True)
    ratings = loss.head(torch.nn.functional.normalize(embeds, dim=-1))
    value = loss(context(torch.zeros(1, 3, 8, 8), embeds={"tiny": embeds}))
    assert torch.isclose(value, 0.02 * (ratings - 7).square().mean())
    (grad,) = torch.autograd.grad(value, embeds)
    moved = embeds - 0.5 * grad
    assert loss(context(torch.zeros(1, 3, 8, 8), embeds={"tiny": moved})) < value
    loss.check_perceptors(["tiny"], [tiny_perceptor.embed_width])
    with pytest.raises(SettingsError, match="'aesthetic_perceptor': 'tiny' is not among"):
        loss.check_perceptors(["ViT-B/32"], [512])
    with pytest.raises(SettingsError, match="embeds in 3 dimensions"):
        loss.check_perceptors(["tiny"], [3])


def test_a_run_with_the_aesthetic_loss_and_its_errors(small_settings, tiny_perceptor, tmp_path, unverified):
    from pixray.weights import CheckpointError, MissingWeightsError

    settings = {**small_settings, "custom_loss": "aesthetic", "weights_dir": str(tmp_path), "iterations": 2}
    with pytest.raises(MissingWeightsError, match=r"ava_vit_b_16_linear\.pth"):
        pixray.generate(settings, perceptors=[tiny_perceptor])
    (tmp_path / "ava_vit_b_16_linear.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="AVA rating head"):
        pixray.generate(settings, perceptors=[tiny_perceptor])
    _ava_head(tmp_path, tiny_perceptor.embed_width)
    with pytest.raises(SettingsError, match="'ViT-B/16' is not among this run's CLIP models"):
        pixray.generate(settings, perceptors=[tiny_perceptor])
    steps = list(pixray.generate({**settings, "aesthetic_perceptor": "tiny"}, perceptors=[tiny_perceptor]))
    assert all(float(step.losses["aesthetic"]) > 0 for step in steps)


def test_pixrays_resmem_loss_is_refused_with_its_reason():
    with pytest.raises(SettingsError, match=r"'resmem' loss is not part of this pixray: .*non-commercial"):
        build_settings({"custom_loss": "saturation,resmem:2"})
