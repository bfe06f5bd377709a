"""Prompts that are not text: target images and noise directions, through one prompt-source seam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import flag_settings, tiny_clip
from PIL import Image

import pixray
from pixray.cli import build_parser
from pixray.init_images import ImageReader
from pixray.perceptors import Perceptor
from pixray.prompt_sources import TargetImages
from pixray.prompt_sources.noise import NoisePrompts
from pixray.settings import SettingsError, build_settings, resolve


def _source(kind, values, images):
    settings = build_settings(values)
    return kind.from_settings(settings, resolve(settings), images)


def _image(path, colour, size=(40, 30)):
    Image.new("RGB", size, colour).save(path)
    return str(path)


def test_target_entries_keep_their_own_weights_and_are_centre_cropped(tmp_path, tiny_perceptor):
    red = _image(tmp_path / "red.png", (255, 0, 0))
    blue = _image(tmp_path / "blue.png", (0, 0, 255), (30, 90))
    settings = build_settings({"target_images": f"{red}:0.5|{blue}:-1:0.2"})
    source = TargetImages.from_settings(settings, resolve(settings), ImageReader())
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
    source = _source(NoisePrompts, {"noise_prompt_seeds": [3, 4],
                                                        "noise_prompt_weights": [0.5]}, ImageReader())
    targets = source.encode(tiny_perceptor)
    assert targets.weights.tolist() == [0.5, 1.0]
    assert torch.allclose(targets.embeds.norm(dim=-1), torch.ones(2))
    again = _source(NoisePrompts, {"noise_prompt_seeds": [3]}, ImageReader())
    assert torch.equal(again.encode(tiny_perceptor).embeds[0], targets.embeds[0])  # from its seed alone
    with pytest.raises(SettingsError, match="'noise_prompt_weights': 2 weights for 1 noise_prompt_seeds"):
        _source(NoisePrompts, {"noise_prompt_seeds": [3], "noise_prompt_weights": [1, 2]}, ImageReader())


def test_a_run_needs_some_prompt():
    with pytest.raises(SettingsError, match=r"'prompts' is empty.*image_prompts.*spot_prompts or noise_"):
        pixray.generate({"drawer": "pixel", "device": "cpu"})


def test_pixrays_short_flags():
    args = vars(build_parser().parse_args(["-ti", "a.png|b.png:2", "-nps", "1", "2", "-npw", "0.5", "1"]))
    settings = build_settings({k: (v[0] if len(v) == 1 else v) if isinstance(v, list) else v
                               for k, v in args.items() if k not in ("config", "quiet")})
    assert settings.target_images == "a.png|b.png:2"
    assert settings.noise_prompt_seeds == [1, 2] and settings.noise_prompt_weights == [0.5, 1.0]


def _named_perceptor(name: str, embed_dim: int) -> Perceptor:
    """A tiny CLIP under a catalog name, with that model's embedding width."""
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    vision = CLIPVisionCfg(layers=1, width=64, patch_size=8, image_size=32)
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1)
    return Perceptor(name, open_clip.CLIP(embed_dim, vision, text, quick_gelu=True).eval())


def test_textoff_is_on_by_default_for_models_it_has_and_skipped_for_others(tiny_perceptor, caplog):
    import json
    from importlib import resources

    from pixray.prompt_sources.vector_prompts import VectorPrompts

    source = _source(VectorPrompts, {}, ImageReader())
    vit = _named_perceptor("ViT-B/32", 512)
    targets = source.encode(vit)
    shipped = json.loads(resources.files("pixray").joinpath("prompt_sources", "vectors", "textoff.json")
                         .read_text())
    expected = torch.nn.functional.normalize(torch.tensor(shipped["ViT-B/32"][0]), dim=0)
    assert torch.allclose(targets.embeds[0], expected) and targets.weights.tolist() == [pytest.approx(0.1)]
    with caplog.at_level("INFO"):
        assert source.encode(tiny_perceptor).embeds.shape == (0, 32)  # a checkpoint by path: no entry
    assert "no direction for CLIP model 'tiny'" in caplog.text
    assert _source(VectorPrompts, {"vector_prompts": "none"}, ImageReader()) is None


def test_a_vector_table_file_with_a_weight(tmp_path, tiny_perceptor):
    from pixray.prompt_sources.vector_prompts import VectorPrompts

    table = tmp_path / "mine.json"
    table.write_text('{"tiny": [[' + ", ".join(["1"] + ["0"] * 31) + "]]}")
    source = _source(VectorPrompts, {"vector_prompts": f"{table}:2"}, ImageReader())
    targets = source.encode(tiny_perceptor)
    assert targets.weights.tolist() == [pytest.approx(0.2)] and targets.embeds[0, 0] == 1
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(SettingsError, match=r"'vector_prompts'.*not a vector table"):
        _source(VectorPrompts, {"vector_prompts": str(tmp_path / "bad.json")}, ImageReader())
    with pytest.raises(SettingsError, match="'vector_prompts': a request may only use files it sends"):
        _source(VectorPrompts, {"vector_prompts": str(table)}, ImageReader(uploads=tmp_path / "up"))


def test_the_command_writes_a_mean_embedding_difference(tmp_path, tiny_checkpoint):
    import json
    from pathlib import Path

    from pixray.model_cache import ModelCache
    from pixray.prompt_sources.target_images import centre_crop
    from pixray.vector_tables import main

    for side, colour in (("away", (255, 0, 0)), ("towards", (0, 0, 255))):
        (tmp_path / side).mkdir()
        _image(tmp_path / side / "a.png", colour)
    out = tmp_path / "v.json"
    assert main(["--away", str(tmp_path / "away"), "--towards", str(tmp_path / "towards"),
                 "--clip_models", str(tiny_checkpoint), "--out", str(out)]) == 0
    (vector,) = json.loads(out.read_text())[str(tiny_checkpoint)]
    perceptor = ModelCache(torch.device("cpu"), Path("unused")).perceptors([str(tiny_checkpoint)])[0]
    reader = ImageReader()

    def embed(path):
        return perceptor.encode_image(centre_crop(reader.read(str(path), 40, 30, "x"), 32))[0]

    expected = embed(tmp_path / "towards" / "a.png") - embed(tmp_path / "away" / "a.png")
    assert torch.allclose(torch.tensor(vector), expected, atol=1e-5)
    # The table is kept unless --overwrite says to replace it.
    out.write_text("{}")
    assert main(["--away", str(tmp_path / "towards"), "--towards", str(tmp_path / "away"),
                 "--clip_models", str(tiny_checkpoint), "--out", str(out), "--device", "cpu"]) == 2
    assert out.read_text() == "{}"
    assert main(["--away", str(tmp_path / "towards"), "--towards", str(tmp_path / "away"),
                 "--clip_models", str(tiny_checkpoint), "--out", str(out), "--overwrite"]) == 0
    (reversed_vector,) = json.loads(out.read_text())[str(tiny_checkpoint)]
    assert torch.allclose(torch.tensor(reversed_vector), -expected, atol=1e-5)


def test_the_commands_mistakes_are_one_line_each(tmp_path, capsys):
    from pixray.vector_tables import main

    (tmp_path / "away").mkdir()
    _image(tmp_path / "away" / "a.png", (255, 0, 0))
    good = ["--away", str(tmp_path / "away"), "--towards", str(tmp_path / "away")]
    for argv, fragment in [
        (["--away", str(tmp_path / "none"), "--towards", str(tmp_path / "away")], "--away: '"),
        ([*good, "--out", str(tmp_path / "none" / "v.json")], "--out: '"),  # said before any model loads
        ([*good, "--clip_models", "ViT-Z/9"], "unknown CLIP model 'ViT-Z/9'"),
        ([*good, "--device", "gpu"], "setting 'device': 'gpu' is not allowed"),
        ([*good, "--out", str(tmp_path / "away" / "a.png")], "exists; name another file or add --overwrite"),
    ]:
        argv = [*argv, *(["--clip_models", "shapes-demo"] if "--clip_models" not in argv else []),
                *(["--out", str(tmp_path / "v.json")] if "--out" not in argv else [])]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert not (tmp_path / "v.json").exists()


@pytest.mark.parametrize("text, expected", [
    ("a forest ^ a city ^ the sea", [("a forest", 0, 33), ("a city", 33, 66), ("the sea", 66, 100)]),
    ("a forest@0-40% ^ a city", [("a forest", 0, 40), ("a city", 40, 100)]),
    ("a ^ b ^ c@80-100", [("a", 0, 40), ("b", 40, 80), ("c", 80, 100)]),
    ("a@10i-20i ^ b", [("a", 10, 20), ("b", 20, 100)]),
    ("x:0.5 | y:-1", [("x | y", 0, 100)]),
    ("mail me@home", [("mail me@home", 0, 100)]),  # an @ without a range is text
])
def test_schedules_split_the_run(text, expected):
    from pixray.prompts import parse_schedule

    phases = parse_schedule(text, 100)
    assert [(" | ".join(p.text for p in ph.prompts), ph.start, ph.end) for ph in phases] == expected


@pytest.mark.parametrize("text, fragment", [
    ("a@50-20 ^ b", "ends before it starts"),
    ("a@0-150 ^ b", r"percent \(at most 100\)"),
    ("a@0-100 ^ b", "no part of the run left"),
    ("a@10-10 ^ b", "holds no step of this 100-iteration run"),
    ("a@0-0.4% ^ b", r"holds no step .* both fall at step 0\); widen it or add iterations$"),
])
def test_bad_schedules_are_refused(text, fragment):
    from pixray.prompts import parse_schedule

    with pytest.raises(SettingsError, match=fragment):
        parse_schedule(text, 100)


def test_a_schedule_switches_prompts_at_its_steps_and_frames_say_which(small_settings, tiny_perceptor,
                                                                       tmp_path):
    from pixray.output import OutputWriter, read_png_metadata

    settings = {**small_settings, "prompts": "a red circle ^ a blue square@50-100%", "iterations": 6,
                "save_every": 1}
    run = pixray.generate(settings, perceptors=[tiny_perceptor])
    seen = []
    original = run._backward

    def spy(image, views, generator, index):
        targets = views[0].targets
        seen.append([float(t.weights[0] * ((t.starts[0] <= index) & (index < t.ends[0]))) for t in targets])
        return original(image, views, generator, index)

    run._backward = spy
    steps = list(run)
    assert [s.prompts for s in steps] == ["a red circle"] * 3 + ["a blue square"] * 4
    assert seen == [[1.0]] * 3 + [[0.0]] * 3  # the first prompt weighs nothing from step 3
    writer = OutputWriter(build_settings({**settings, "outdir": str(tmp_path / "o")}))
    writer.start(run)
    writer.write(steps[4])
    with Image.open(writer.path) as image:
        assert image.text["pixray_prompts_in_force"] == "a blue square"
    assert read_png_metadata(writer.path)["iteration"] == 4


def test_labels_are_the_mean_of_pixrays_templates(tiny_perceptor):
    from pixray.prompt_sources.labels import TEMPLATES, Labels

    source = _source(Labels, {"labels": "lighthouse:2 | cat:-1:0.5"}, ImageReader())
    targets = source.encode(tiny_perceptor)
    texts = tiny_perceptor.encode_text([t.format("lighthouse") for t in TEMPLATES])
    expected = torch.nn.functional.normalize(texts.mean(0), dim=0)
    assert torch.allclose(targets.embeds[0], expected, atol=1e-5)
    assert targets.weights.tolist() == [2.0, -1.0] and targets.stops.tolist()[1] == pytest.approx(0.5)
    assert len(TEMPLATES) == 7 and TEMPLATES[0] == "itap of a {}."


def test_labels_alone_are_enough_to_run(small_settings, tiny_perceptor):
    steps = list(pixray.generate({**small_settings, "prompts": "", "labels": "lighthouse", "iterations": 1},
                                 perceptors=[tiny_perceptor]))
    assert steps[-1].is_final
    args = vars(build_parser().parse_args(["-l", "a|b"]))
    assert args["labels"] == "a|b"


def test_image_prompt_entries_expand_braces_and_globs(tmp_path):
    from pixray.prompt_sources.image_prompts import expand_braces, image_files

    assert expand_braces("a{b,c}d{1,2}") == ["abd1", "abd2", "acd1", "acd2"]
    for name in ("x1.png", "x2.png", "y1.png"):
        _image(tmp_path / name, (0, 0, 0))
    assert image_files(str(tmp_path / "{x,y}1.png")) == [str(tmp_path / "x1.png"), str(tmp_path / "y1.png")]
    assert image_files(str(tmp_path / "x*.png")) == [str(tmp_path / "x1.png"), str(tmp_path / "x2.png")]
    assert image_files("https://example.com/a.png") == ["https://example.com/a.png"]


def test_image_prompts_weigh_by_entry_and_setting_and_missing_files_are_refused(tmp_path, small_settings):
    from pixray.prompt_sources.image_prompts import ImagePrompts

    red = _image(tmp_path / "red.png", (255, 0, 0))
    values = {**small_settings, "image_prompts": f"{red}:2", "image_prompt_weight": 0.5}
    source = _source(ImagePrompts, values, ImageReader())
    assert [p.weight for p in source.prompts] == [1.0] and source.images[0].shape == (1, 3, 24, 32)
    with pytest.raises(SettingsError, match=r"'image_prompts'.*matches no file"):
        _source(ImagePrompts, {"image_prompts": str(tmp_path / "none*.png")}, ImageReader())


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_image_prompt_loss_is_lower_from_the_prompt_image(tmp_path, small_settings, tiny_perceptor,
                                                              shuffle):
    from PIL import ImageDraw

    path = tmp_path / "scene.png"
    scene = Image.new("RGB", (32, 24), (20, 40, 200))
    ImageDraw.Draw(scene).ellipse((8, 4, 24, 20), fill=(230, 30, 30))
    scene.save(path)
    settings = {**small_settings, "prompts": "", "image_prompts": str(path), "iterations": 1,
                "image_prompt_shuffle": shuffle, "vector_prompts": "none"}
    near = next(iter(pixray.generate({**settings, "init_image": str(path)}, perceptors=[tiny_perceptor])))
    far = next(iter(pixray.generate({**settings, "init_noise": "snow"}, perceptors=[tiny_perceptor])))
    assert near.loss < far.loss


def test_the_default_spot_is_a_centred_disc_the_size_of_pixrays():
    from pixray.prompt_sources.spot import default_spot

    square, wide = default_spot(100, 100)[0, 0], default_spot(160, 90)[0, 0]
    assert square.sum().item() == pytest.approx(3.1416 * 23.5**2, rel=0.03)  # 0.47 of the side
    assert wide.sum().item() == pytest.approx(3.1416 * 27**2, rel=0.03)  # 0.6 of the short side
    for mask in (square, wide):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert ys.float().mean() == pytest.approx((mask.shape[0] - 1) / 2, abs=0.01)
        assert xs.float().mean() == pytest.approx((mask.shape[1] - 1) / 2, abs=0.01)


def test_spot_prompts_see_the_light_part_of_spot_file_and_spot_off_the_dark(tmp_path):
    from pixray.prompt_sources.spot import SpotOffPrompts, SpotPrompts

    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[:, 15:] = 200  # light on the right quarter
    Image.fromarray(mask).resize((40, 20), Image.Resampling.NEAREST).save(tmp_path / "mask.png")
    values = {"spot_prompts": "a red circle", "spot_prompts_off": "a blue sky:2",
              "spot_file": str(tmp_path / "mask.png"), "size": [32, 24]}
    on = _source(SpotPrompts, values, ImageReader())
    off = _source(SpotOffPrompts, values, ImageReader())
    light = on.region(24, 32)[0, 0]
    assert set(light.unique().tolist()) == {0.0, 1.0}
    assert light[:, 25:].all() and not light[:, :23].any()  # stretched to the canvas
    assert torch.equal(off.region(24, 32), 1 - on.region(24, 32))
    assert off.phases[0].prompts[0].weight == 2.0
    assert _source(SpotPrompts, {"spot_prompts_off": "x"}, ImageReader()) is None


def test_a_spot_prompts_gradient_is_zero_outside_its_part(small_settings, tiny_perceptor):
    """With one drawer cell per pixel, the spot prompts' gradient reaches only the disc's cells."""
    from pixray.prompt_sources.spot import default_spot

    settings = {**small_settings, "drawer": "fast_pixel", "pixel_size": [32, 24], "prompts": "",
                "spot_prompts": "a red circle", "vector_prompts": "none", "iterations": 1}
    run = pixray.generate(settings, perceptors=[tiny_perceptor])
    grads = []
    original = run._backward

    def keep_gradient(*args):
        losses = original(*args)
        grads.append(run.drawer.colors.grad.clone())
        return losses

    run._backward = keep_gradient
    list(run)
    disc = default_spot(32, 24)[0, 0].bool()
    magnitude = grads[0][0].abs().sum(0)
    assert magnitude[disc].min() > 0 and magnitude[~disc].max() == 0


def test_spot_prompts_with_a_filter_that_changes_the_canvas_size_see_their_part_stretched(small_settings,
                                                                                         tiny_perceptor):
    """wallpaper's shift shows the perceptors two rows of the picture (twice its height): the spot's
    region is stretched over that, as spot_file is over the canvas (it stopped the run with a size
    mismatch)."""
    from pixray.engine import PromptView

    settings = {**small_settings, "drawer": "fast_pixel", "filters": ["wallpaper"], "wallpaper_type": "shift",
                "spot_prompts_off": "a grey square", "iterations": 2}
    steps = list(pixray.generate(settings, perceptors=[tiny_perceptor]))
    assert steps[-1].is_final and steps[-1].index == 2
    region = torch.zeros(1, 1, 2, 2)
    region[..., 0, :] = 1
    seen = PromptView(region, (), []).seen(torch.ones(1, 3, 4, 6))
    assert seen[..., :2, :].eq(1).all() and seen[..., 2:, :].eq(0).all()


def test_spot_prompts_join_the_whole_canvas_prompts_and_show_in_force_when_phased(small_settings,
                                                                                  tiny_perceptor):
    base = {**small_settings, "iterations": 2, "vector_prompts": "none"}
    plain = next(iter(pixray.generate(base, perceptors=[tiny_perceptor]))).loss
    spotted = pixray.generate({**base, "spot_prompts": "a cat ^ a dog"}, perceptors=[tiny_perceptor])
    step = next(iter(spotted))
    assert step.loss != plain and step.prompts == "spot_prompts: a cat"


@pytest.mark.parametrize(("values", "fragment"), [
    ({"spot_file": "MASK"}, "'spot_file' shapes spot prompts, and there are none"),
    ({"spot_file": "DARK", "spot_prompts": "x"}, "'spot_file': the mask has no light part, so spot_prompts "
                                                 "would see nothing"),
    ({"spot_file": "nope.png", "spot_prompts": "x"}, "'spot_file': cannot read image"),
])
def test_spot_mistakes_are_settings_errors(tmp_path, values, fragment):
    Image.new("L", (8, 8), 0).save(tmp_path / "dark.png")
    files = {"MASK": str(tmp_path / "dark.png"), "DARK": str(tmp_path / "dark.png")}
    values = {k: files.get(v, v) for k, v in values.items()}
    with pytest.raises(SettingsError, match=fragment):
        pixray.generate({"device": "cpu", "drawer": "pixel", "prompts": "x", **values})


def test_spot_flags_are_pixrays():
    settings = flag_settings(["-sp", "a|b", "-spo", "c", "-spf", "m.png"])
    assert (settings.spot_prompts, settings.spot_prompts_off, settings.spot_file) == ("a|b", "c", "m.png")
    settings = flag_settings(["--spot", "a", "--spot_off", "c", "--spot_file", "m.png"])
    assert (settings.spot_prompts, settings.spot_prompts_off, settings.spot_file) == ("a", "c", "m.png")
