from pathlib import Path

import pytest

import pixray.settings
from pixray.prompts import parse_prompts
from pixray.settings import (
    ASPECT_SIZES,
    QUALITY_PRESETS,
    SettingsError,
    all_specs,
    build_settings,
    parse_settings_text,
    read_settings_file,
    resolve,
)


def test_defaults_resolve_to_quality_normal():
    plan = resolve(build_settings())
    assert plan.clip_models == ("ViT-B/32", "ViT-B/16")
    assert (plan.width, plan.height) == (384, 216)
    assert (plan.iterations, plan.num_cuts, plan.batches) == (250, 30, 1)
    assert plan.lr_drop_steps == (187,)
    assert (plan.save_every, plan.display_every) == (10, 10)  # "10" once read as 1% (2 of 250)


@pytest.mark.parametrize("quality", list(QUALITY_PRESETS))
@pytest.mark.parametrize("aspect", list(ASPECT_SIZES))
def test_presets(quality, aspect):
    preset = QUALITY_PRESETS[quality]
    plan = resolve(build_settings({"quality": quality, "aspect": aspect}))
    base_w, base_h = ASPECT_SIZES[aspect]
    assert (plan.width, plan.height) == (int(base_w * preset.scale), int(base_h * preset.scale))
    assert plan.clip_models == preset.clip_models
    assert (plan.iterations, plan.num_cuts, plan.batches) == (preset.iterations, preset.num_cuts,
                                                              preset.batches)


def test_explicit_values_override_presets():
    s = build_settings({"quality": "draft", "clip_models": "RN50, /tmp/my model.pt", "size": "100 50",
                        "iterations": "10", "num_cuts": 3, "batches": 2, "learning_rate_drops": "50, 90"})
    plan = resolve(s)
    assert plan.clip_models == ("RN50", "/tmp/my model.pt")
    assert (plan.width, plan.height, plan.iterations, plan.num_cuts, plan.batches) == (100, 50, 10, 3, 2)
    assert plan.lr_drop_steps == (5, 9)
    assert (resolve(build_settings({"scale": 0.5, "aspect": "portrait"})).width) == 64


def test_later_sources_override_earlier():
    s = build_settings({"iterations": 5, "seed": 1}, {"iterations": "7"}, None)
    assert (s.iterations, s.seed) == (7, 1)


def test_types_are_coerced_from_text():
    s = build_settings({"overwrite": "yes", "learning_rate": "0.05", "seed": "12", "init_image": "none"})
    assert s.overwrite is True and s.learning_rate == 0.05 and s.seed == 12 and s.init_image is None


@pytest.mark.parametrize("source, fragments", [
    ({"iterashuns": 5}, ["unknown setting 'iterashuns'", "did you mean 'iterations'", "valid settings:",
                         "prompts"]),
    ({"iterations": 0}, ["'iterations'", "0", "from 1 to 100000"]),
    ({"iterations": 2.5}, ["'iterations'", "2.5", "an integer"]),
    ({"iterations": "many"}, ["'iterations'", "'many'", "an integer"]),
    ({"iterations": True}, ["'iterations'", "True"]),
    ({"quality": "ultra"}, ["'quality'", "'ultra'", "one of draft, normal, better, best, supreme"]),
    ({"drawer": "pixle"}, ["'drawer'", "'pixle'", "pixel", "fast_pixel"]),
    ({"learning_rate_drops": [50, 150]}, ["'learning_rate_drops'", "150", "percent up to 100"]),
    ({"size": "10 x"}, ["'size'", "'10 x'", "integers"]),
    ({"overwrite": "perhaps"}, ["'overwrite'", "'perhaps'", "true or false"]),
    ({"prompts": ["a", {"b": 1}]}, ["'prompts'", "text ('|'-separated entries) or a list of texts"]),
    ({"drawer": None}, ["'drawer'", "None"]),
    ({"pixel_type": "hexagon"}, ["'pixel_type'", "'hexagon'", "rect"]),
    # Names of Pixray's first versions (2021): what they are called now.
    ({"drawer": "pixeldraw"}, ["setting 'drawer': 'pixeldraw' is what Pixray's first versions called "
                               "'pixel'; give drawer: pixel"]),
    ({"drawer": "linedraw"}, ["called 'line_sketch'; give drawer: line_sketch"]),
    ({"use_pixeldraw": True}, ["unknown setting 'use_pixeldraw' (value True) (Pixray's first versions' way "
                               "to choose the drawer; give drawer: pixel instead); valid settings:"]),
    ({"use_clipdraw": True}, ["give drawer: clipdraw instead"]),
])
def test_errors_name_key_value_and_allowed(source, fragments):
    with pytest.raises(SettingsError) as info:
        build_settings(source)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_a_list_gives_the_entries_of_a_pipe_separated_setting():
    assert build_settings({"prompts": ["a red circle", " a blue square:-0.2 ", 7]}).prompts == \
        "a red circle | a blue square:-0.2 | 7"
    parsed = build_settings(parse_settings_text("prompts:\n  - a lighthouse\n  - a storm:0.5\n"
                                                "spot_prompts: [sun, moon]\n"))
    assert (parsed.prompts, parsed.spot_prompts) == ("a lighthouse | a storm:0.5", "sun | moon")
    assert [p.text for p in parse_prompts(parsed.prompts)] == ["a lighthouse", "a storm"]
    with pytest.raises(SettingsError, match="300 items is too many"):
        build_settings({"prompts": ["a"] * 300})
    with pytest.raises(SettingsError, match=r"'labels': \[True\] is not allowed"):
        build_settings({"labels": [True]})


def test_every_pipe_separated_setting_takes_a_list():
    described = {name for name, spec in all_specs().items() if "'|'-separated" in spec.help}
    assert described == {name for name, spec in all_specs().items() if spec.pipes}
    assert {"prompts", "spot_prompts", "image_prompts", "target_images"} <= described


def test_a_path_object_is_taken_as_its_text():
    # What a Python caller passes for a file: pathlib.Path, alone or among a '|'-setting's entries.
    settings = build_settings({"init_image": Path("in.png"), "outdir": Path("out") / "run",
                               "image_prompts": [Path("a.png"), "b.png:0.5"], "clip_models": [Path("m.pt")]})
    assert (settings.init_image, settings.outdir) == ("in.png", str(Path("out") / "run"))
    assert (settings.image_prompts, settings.clip_models) == ("a.png | b.png:0.5", ["m.pt"])
    with pytest.raises(SettingsError, match=r"'init_image': <bytes> is not allowed; expected text"):
        build_settings({"init_image": b"in.png"})


def test_a_size_reads_as_width_x_height_too():
    for text in ("384x216", "384 X 216", "384,216", "384 216"):
        assert build_settings({"size": text}).size == [384, 216]
    assert build_settings({"drawer": "pixel", "pixel_size": "20x10"}).section("pixel").pixel_size == [20, 10]
    for bad in ("384x", "3x4x5", "384y216"):
        with pytest.raises(SettingsError, match=r"two integers \(YAML list, comma-separated or WIDTHxHEIGHT"):
            build_settings({"size": bad})
    with pytest.raises(SettingsError, match="a list of integers"):  # only pairs: seeds are not sizes
        build_settings({"noise_prompt_seeds": "1x2"})


def test_size_needs_two_numbers():
    with pytest.raises(SettingsError, match="two integers"):
        resolve(build_settings({"size": [10, 20, 30]}))


def test_settings_text_and_yaml_file(tmp_path: Path):
    parsed = parse_settings_text("iterations: 5\nprompts: a cat:0.5")
    assert parsed == {"iterations": 5, "prompts": "a cat:0.5"}
    assert parse_settings_text("") == {}
    with pytest.raises(SettingsError, match=r"not valid YAML at line 1 \(expected ',' or '\]'"):
        parse_settings_text("iterations: [5")
    with pytest.raises(SettingsError, match=r"\(found character '\\t' .*; YAML takes spaces, not tabs"):
        parse_settings_text("prompts:\ta red circle")  # what YAML found, not only where
    with pytest.raises(SettingsError, match="'name: value' lines"):
        parse_settings_text("- just\n- a list")
    path = tmp_path / "s.yaml"
    path.write_text("quality: draft\npixel_size: [20, 10]\n")
    s = build_settings(read_settings_file(path), {"quality": "best"})
    assert s.quality == "best" and s.section("pixel").pixel_size == [20, 10]
    with pytest.raises(SettingsError, match="cannot read settings file"):
        read_settings_file(tmp_path / "missing.yaml")


def test_shared_drawer_options_reach_every_drawer_that_has_them():
    s = build_settings({"pixel_scale": 2})
    assert s.section("pixel").pixel_scale == 2 and s.section("fast_pixel").pixel_scale == 2


def test_to_dict_and_replace():
    s = build_settings({"iterations": 9, "pixel_scale": 0.5})
    assert s.to_dict(only_changed=True) == {"iterations": 9, "pixel_scale": 0.5}
    assert set(s.to_dict()) == set(all_specs())
    t = s.replace(seed=4)
    assert t.seed == 4 and t.iterations == 9 and s.seed is None


def test_the_changed_settings_are_read_against_one_spec_table(monkeypatch):
    # A run's record (every prediction's, before its first frame) lists the changed settings; building
    # the table of ~120 specs once per setting took a third of a second.
    settings, built = build_settings({"iterations": 9}), []
    monkeypatch.setattr(pixray.settings, "all_specs", lambda: built.append(1) or all_specs())
    assert settings.to_dict(only_changed=True) == {"iterations": 9}
    assert len(built) == 1


def test_every_spec_has_help_and_a_valid_default():
    for spec in all_specs().values():
        assert spec.help, spec.name
        build_settings({spec.name: spec.default})


def test_defaults_are_already_in_the_form_their_parser_gives():
    """Defaults skip the parser, so one in another form ("10" for "10i") would be misread."""
    for spec in all_specs().values():
        if spec.parse is not None and spec.default is not None:
            values = spec.default if spec.is_list else [spec.default]
            assert [spec.parse(v) for v in values] == values, spec.name
