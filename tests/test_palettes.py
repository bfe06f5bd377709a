"""Pixray's palette syntax, and the lookup filter that maps every pixel to a palette colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pixray
from pixray.filters import FILTERS
from pixray.init_images import ImageReader
from pixray.palettes import ReaderFiles, parse_palette
from pixray.resources import Resources
from pixray.settings import SettingsError, build_settings

XKCD_RED = (229 / 255, 0.0, 0.0)  # 'red' is xkcd's red first, as Pixray reads it


def _rows(palette):
    return [tuple(round(v, 4) for v in row) for row in palette.tolist()]


@pytest.mark.parametrize(("text", "expected"), [
    ("[black, (255+0+0), [0+0+1], #00ff00]", [(0, 0, 0), (1, 0, 0), (0, 0, 1), (0, 1, 0)]),
    ("red\\3", [(0, 0, 0), (XKCD_RED[0] / 2, 0, 0), XKCD_RED]),
    ("black->white\\3", [(0, 0, 0), (0.5, 0.5, 0.5), (1, 1, 1)]),
    ("black->mat:red->white\\5", [(0, 0, 0), (0.5, 0, 0), (1, 0, 0), (1, 0.5, 0.5), (1, 1, 1)]),
    ("[black, white]\\3", [(0, 0, 0), (0.5, 0.5, 0.5), (1, 1, 1)]),
    ("pixel_green\\1; [mat:navy]", [(0.44, 1.0, 0.53), (0, 0, 128 / 255)]),
    ("[navy]", [(1 / 255, 21 / 255, 62 / 255)]),  # xkcd's navy before CSS's, as Pixray
])
def test_palette_forms(text, expected):
    assert _rows(parse_palette(text)) == [tuple(round(v, 4) for v in row) for row in expected]


def test_ramps_default_to_sixteen_steps_and_presets_are_there():
    assert parse_palette("rust").shape == (16, 3) and parse_palette("red->rust").shape == (16, 3)
    assert parse_palette("red;blue;yellow").shape == (48, 3)
    assert parse_palette("grayscale").shape == (256, 3) and parse_palette("greyscale").shape == (256, 3)
    websafe = parse_palette("web safe")
    assert websafe.shape == (216, 3) and torch.equal(websafe, parse_palette("websafe"))
    assert {round(v, 4) for v in torch.unique(websafe).tolist()} == {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}
    assert parse_palette("pixray").shape == (16, 3)


@pytest.mark.parametrize(("text", "fragment"), [
    ("rojo", r"in 'rojo': 'rojo' is not a colour"),
    ("red->bleu", r"in 'red->bleu': 'bleu' is not a colour"),
    ("red, blue", r"'red, blue' is not a colour .*; a list of colours is bracketed: '\[red, blue\]'$"),
    ("[red, blue", r"'\[red, blue' is not a list"),
    ("red\\x", r"in 'red\\\\x': '\\\\x' is not a number of colours from 1 to 4096"),
    ("red\\0", r"is not a number of colours"),
    ("(300+0+0)", r"'\(300\+0\+0\)' is not a colour triple"),
    ("(1+2)", r"is not a colour triple"),
    ("red;;blue", r"in '': an empty section"),
    ("photos/sunset.JPG\\8", r"'photos/sunset.JPG' is not a colour; a file's colours are taken with an '@' "
                             r"before its name: '@photos/sunset.JPG\\\\8'$"),
    ("red\\4000;blue\\4000", r"8000 colours is too many; at most 4096"),
    # Quoted as every setting's value is: on one line, and a long one cut short.
    ("- red\n- blue", r"in '- red\\n- blue': '- red\\n- blue' is not a colour"),
    ("x" * 500, r"in 'x{79}… \(500 characters\): 'x{79}… \(500 characters\) is not a colour \(a name[^x]*$"),
])
def test_malformed_palettes_name_the_section_that_failed(text, fragment):
    with pytest.raises(SettingsError, match=rf"^setting 'palette': .*{fragment}"):
        build_settings({"palette": text})


def test_an_unquoted_yaml_list_is_pixrays_list_of_colours():
    # `palette: [black, red]` in a YAML file reads as a list: the same colours as the text '[black, red]'.
    settings = build_settings(pixray.parse_settings_text("palette: [black, red, '#ffff00']"))
    text = settings.section("lookup").palette
    assert text == "[black, red, #ffff00]" and parse_palette(text).shape == (3, 3)
    for bad in ([1, 2], []):
        with pytest.raises(SettingsError, match=r"^setting .palette.: .*\(a YAML list: its list of colours"):
            build_settings({"palette": bad})


def test_image_palettes_take_every_colour_or_a_median_cut(tmp_path):
    few = np.zeros((4, 6, 3), dtype=np.uint8)
    few[:, 3:] = (255, 0, 0)
    few[0, 0] = (0, 0, 255)
    Image.fromarray(few).save(tmp_path / "few.png")
    files = ReaderFiles(ImageReader())
    # Every colour, most frequent first: 12 red, 11 black, 1 blue.
    assert _rows(parse_palette(f"@{tmp_path / 'few.png'}", files)) == [(1, 0, 0), (0, 0, 0), (0, 0, 1)]
    many = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(many).save(tmp_path / "many.png")
    assert parse_palette(f"@{tmp_path / 'many.png'}\\8", files).shape == (8, 3)
    assert parse_palette(f"@{tmp_path / 'many.png'}", files).shape[0] <= 255
    assert parse_palette(f"@{tmp_path / 'few.png'};white", files).shape == (19, 3)


def test_act_colour_tables_are_read(tmp_path):
    table = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255]) + bytes(768 - 9) + (3).to_bytes(2, "big") + bytes(2)
    (tmp_path / "three.act").write_bytes(table)
    files = ReaderFiles(ImageReader())
    assert _rows(parse_palette(f"@{tmp_path / 'three.act'}", files)) == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    (tmp_path / "short.act").write_bytes(bytes(10))
    with pytest.raises(SettingsError, match=r"an \.act colour table is 768 or 772 bytes, and this one is 10"):
        parse_palette(f"@{tmp_path / 'short.act'}", files)


def test_a_server_reads_no_palette_file_of_its_own(tmp_path):
    Image.new("RGB", (4, 4), "red").save(tmp_path / "secret.png")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    with pytest.raises(SettingsError, match="may only use files it sends") as refused:
        parse_palette(f"@{tmp_path / 'secret.png'}", ReaderFiles(ImageReader(uploads=uploads)))
    assert str(refused.value).count("setting 'palette'") == 1  # said once, by the reader


def test_an_unreadable_palette_image_is_named_once(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(SettingsError) as refused:
        parse_palette(f"red->blue;@{tmp_path / 'notes.png'}", ReaderFiles(ImageReader()))
    assert str(refused.value).startswith("setting 'palette': cannot read image")
    assert str(refused.value).count("setting 'palette'") == 1 and "notes.png" in str(refused.value)


def _lookup(**options):
    settings = build_settings(options)
    return FILTERS.lookup("lookup").create(settings.section("lookup"), Resources(None, ImageReader()))


def test_lookup_shows_only_palette_colours_with_a_straight_through_gradient():
    lookup = _lookup(palette="[black, white, (255+0+0)]", lookup_beta=10)
    image = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    out, loss = lookup(image, torch.Generator())
    colours = {tuple(c) for c in out.detach()[0].flatten(1).T.tolist()}
    assert colours <= {(0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (1.0, 0.0, 0.0)}
    nearest = out.detach()
    assert torch.isclose(loss, 11 * ((nearest - image.detach()) ** 2).mean())
    (out * torch.arange(3.0)[None, :, None, None]).sum().backward()
    assert torch.equal(image.grad, torch.arange(3.0)[None, :, None, None].expand_as(image))  # passed through
    rgba = torch.cat([image.detach(), torch.full((1, 1, 5, 7), 0.25)], dim=1)
    assert torch.equal(lookup(rgba, torch.Generator())[0][:, 3:], rgba[:, 3:])


def test_lookup_without_a_palette_uses_pixrays_table():
    assert _lookup().palette.shape == (16, 3)


def test_a_lookup_run_saves_only_palette_colours(small_settings, tiny_perceptor):
    steps = list(pixray.generate({**small_settings, "iterations": 2, "filters": "lookup",
                                  "palette": "[black, white]"}, perceptors=[tiny_perceptor]))
    for step in steps:
        assert set(torch.unique(step.image).tolist()) <= {0.0, 1.0}
    assert "lookup" in steps[0].losses
    assert Path(small_settings["outdir"]).parent.exists()
