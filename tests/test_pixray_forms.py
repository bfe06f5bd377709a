"""What a Pixray user types or writes in YAML resolves to what Pixray would use (table-driven)."""

from __future__ import annotations

import hashlib

import pytest

from pixray.cli import _values, build_parser
from pixray.settings import SettingsError, all_specs, build_settings, parse_settings_text, resolve


def _from_argv(argv: list[str]):
    args = vars(build_parser().parse_args(argv))
    args.pop("config"), args.pop("quiet")
    return build_settings(_values(args))


def _pixray_text_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha512(text.encode()).digest(), "big") % 0x100000000


# (argv, attribute of Settings or Plan, expected value)
CLI_ROWS = [
    (["-p", "a cat|a dog:0.5"], "prompts", "a cat|a dog:0.5"),
    (["-s", "384", "216"], "size", [384, 216]),
    (["-s", "384 216"], "size", [384, 216]),
    (["--size", "384,216"], "size", [384, 216]),
    (["-i", "40"], "iterations", 40),
    (["-ii", "start.png"], "init_image", "start.png"),
    (["-in", "snow"], "init_noise", "snow"),
    (["-cuts", "12"], "num_cuts", 12),
    (["-bats", "3"], "batches", 3),
    (["-lr", "0.05"], "learning_rate", 0.05),
    (["-lrd", "50", "90"], "learning_rate_drops", ["50%", "90%"]),
    (["-se", "5"], "save_every", "5i"),
    (["-de", "20 iterations"], "display_every", "20i"),
    (["-o", "picture"], "output", "picture.png"),
    (["-o", "picture.jpg"], "output", "picture.png"),
    (["-asp", "portrait"], "aspect", "portrait"),
    (["-sca", "2.5"], "scale", 2.5),
    (["-opt", "AdamW"], "optimiser", "AdamW"),
    (["--losses", "smoothness:0.5,palette"], "custom_loss", ["smoothness:0.5", "palette"]),
    (["--custom_loss", "edge", "smoothness"], "custom_loss", ["edge", "smoothness"]),
    (["--clip_models", "ViT-B/32", "RN50"], "clip_models", ["ViT-B/32", "RN50"]),
    (["--seed", "42"], "seed", 42),
    (["--seed", "a seed in words"], "seed", _pixray_text_seed("a seed in words")),
    (["--prompt=sunrise"], "prompts", "sunrise"),  # Pixray's README: any unique prefix of a flag
    (["--iter", "7"], "iterations", 7),
    (["-ezs", "large"], "ezsize", "large"),
    (["--cut_power", "2"], "cut_pow", 2.0),
    (["-cutp", "0.5"], "cut_pow", 0.5),
    (["-cud", "cuda:1"], "cuda_device", "cuda:1"),
    (["-d", "true"], "cudnn_determinism", True),
    (["--deterministic", "yes"], "cudnn_determinism", True),
    (["-dc", "true"], "display_clear", True),
    (["--perceptors", "clip"], "perceptors", "clip"),
    (["--alpha_use_g", "true"], "alpha_use_g", True),
    (["--alpha_gamma", "2"], "alpha_gamma", 2.0),
]


@pytest.mark.parametrize("argv, name, expected", CLI_ROWS, ids=[" ".join(r[0]) for r in CLI_ROWS])
def test_pixray_command_line_forms(argv, name, expected):
    assert getattr(_from_argv(argv), name) == expected


def test_an_ambiguous_prefix_names_the_flags_it_could_be(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--init", "x.png"])
    assert "ambiguous option: --init could match --init_image, --init_image_alpha" in capsys.readouterr().err


def test_config_file_alias(tmp_path):
    (tmp_path / "a.yaml").write_text("iterations: 7\n")
    args = vars(build_parser().parse_args(["--config_file", str(tmp_path / "a.yaml")]))
    assert args["config"] == [str(tmp_path / "a.yaml")]


# (YAML text, attribute of the resolved Plan, expected value)
PLAN_ROWS = [
    ("iterations: 100\nsave_every: 10", "save_every", 10),
    ("iterations: 100\nsave_every: '10 iterations'", "save_every", 10),
    ("iterations: 100\nsave_every: 10i", "save_every", 10),
    ("iterations: 100\nsave_every: 5%", "save_every", 5),
    ("iterations: 300\nsave_every: 5p", "save_every", 15),
    ("iterations: 300\ndisplay_every: '2.5 percent'", "display_every", 7),
    ("iterations: 100\ndisplay_every: 0", "display_every", 0),
    # Pixray drops after the step at int(p * 0.01 * (iterations - 1)): 29 % of 100 is step 28.
    ("iterations: 100\nlearning_rate_drops: [29]", "lr_drop_steps", (29,)),
    ("iterations: 250", "lr_drop_steps", (187,)),
    ("iterations: 100\nlearning_rate_drops: [50i, 90%]", "lr_drop_steps", (51, 90)),
    ("iterations: 10\nlearning_rate_drops: [100]", "lr_drop_steps", ()),
    ("custom_loss: 'smoothness:0.5,palette'", "custom_losses", (("smoothness", 0.5), ("palette", 1.0))),
    ("custom_loss: [edge:2, edge:3]", "custom_losses", (("edge", 3.0),)),
]


@pytest.mark.parametrize("text, name, expected", PLAN_ROWS, ids=[r[0] for r in PLAN_ROWS])
def test_pixray_value_forms_resolve_as_pixray(text, name, expected):
    assert getattr(resolve(build_settings(parse_settings_text(text))), name) == expected


@pytest.mark.parametrize("text, fragment", [
    ("save_every: 5 minutes", "'save_every'"),
    ("save_every: -5", "'save_every'"),
    ("learning_rate_drops: [150]", "percent up to 100"),
    ("custom_loss: 'smoothness:lots'", "'custom_loss'"),
    ("custom_loss: 'smoothness:nan'", "'custom_loss'"),
    ("custom_loss: 'nope:1'", "loss names (smoothness"),
    ("output: ../escape.png", "'output'"),
])
def test_malformed_pixray_forms_are_refused(text, fragment):
    with pytest.raises(SettingsError, match=fragment.replace("(", r"\(")):
        build_settings(parse_settings_text(text))


@pytest.mark.parametrize("given, width", [
    ({"ezsize": "small"}, 192), ({"ezsize": "medium"}, 384), ({"ezsize": "large"}, 768),
    ({"ezsize": "large", "scale": 1.5}, 288),  # Pixray: scale, when given, wins
    ({"ezsize": "small", "quality": "best"}, 192),  # and ezsize over the quality's scale (4)
    ({"quality": "best"}, 768),
])
def test_ezsize_picks_the_scale_as_pixray(given, width):
    assert resolve(build_settings(given)).width == width


@pytest.mark.parametrize(("pixray_name", "model"), [
    ("imagenet_f16_16384m", "imagenet_f16_16384"), ("wikiart_1024m", "wikiart_1024"),
    ("wikiart_16384m", "wikiart_16384"), ("wikiart_16384m2", "wikiart_16384"), ("coco", "coco"),
])
def test_pixrays_mirror_names_of_a_vqgan_model_are_the_model(pixray_name, model):
    settings = build_settings(parse_settings_text(f"vqgan_model: {pixray_name}"))
    assert settings.section("vqgan").vqgan_model == model
    with pytest.raises(SettingsError, match="'vqgan_model': 'imagenet_f16_16384x' is not allowed"):
        build_settings({"vqgan_model": "imagenet_f16_16384x"})


def test_pixrays_slip_perceptors_are_refused_with_the_reason():
    for family in ("slip", "mixed"):
        with pytest.raises(SettingsError, match=rf"'perceptors': Pixray's '{family}' perceptors are not part "
                                                r"of this pixray: Meta's SLIP models' code is not on PyPI"):
            build_settings({"perceptors": family})
    with pytest.raises(SettingsError, match=r"'perceptors': 'blip' is not allowed; expected one of clip"):
        build_settings({"perceptors": "blip"})


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:123", "cpu", 1])
def test_a_cuda_device_is_cuda_or_cuda_n(value):
    with pytest.raises(SettingsError, match=r"'cuda_device': .* expected cuda or cuda:N"):
        build_settings({"cuda_device": value})


def test_pixray_flags_of_media_and_losses():
    settings = _from_argv(["-vid", "true", "-si", "false", "--custom_loss", "style,aesthetic",
                           "--style_file", "a.png", "--styleloss_skip", "5", "--styleloss_ospace", "vgg",
                           "--aesthetic_target", "7"])
    assert settings.make_video and not settings.save_intermediates
    style, aesthetic = settings.section("style"), settings.section("aesthetic")
    assert (style.style_file, style.styleloss_skip, style.styleloss_ospace) == ("a.png", 5, "vgg")
    assert aesthetic.aesthetic_target == 7


def test_every_flag_is_one_settings():
    flags = [flag for spec in all_specs().values() for flag in spec.flags]
    assert len(flags) == len(set(flags))
    assert not {f"--{name}" for name in all_specs()} & set(flags)


@pytest.mark.parametrize("image, scale, canvas", [
    ((300, 600), 2, (288, 576)),  # Pixray: 144 x scale wide, the image's height / width below it
    ((640, 360), 1, (144, 81)),
    ((1000, 1000), 3, (432, 432)),
])
def test_aspect_retain_takes_the_init_images_shape_as_pixray(image, scale, canvas):
    settings = build_settings({"aspect": "retain", "scale": scale, "init_image": "photo.png"})
    plan = resolve(settings, image)
    assert (plan.width, plan.height) == canvas
    # An explicit size still wins, as in Pixray.
    sized = build_settings({"aspect": "retain", "size": [64, 48], "init_image": "photo.png"})
    assert (resolve(sized).width, resolve(sized).height) == (64, 48)


def test_aspect_retain_without_a_usable_init_image_is_one_clear_error():
    with pytest.raises(SettingsError, match="'aspect': retain takes the canvas shape from init_image"):
        resolve(build_settings({"aspect": "retain"}))
    stripe = build_settings({"aspect": "retain", "init_image": "stripe.png"})
    with pytest.raises(SettingsError, match=r"retain makes a 288x2304000 canvas .* outside 8\.\.4096"):
        resolve(stripe, (1, 8000))
