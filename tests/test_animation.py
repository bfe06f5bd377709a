"""Pixray's animation mode: a picture per image of a list, made in rounds and blended with its neighbour."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from pixray.animation import Animation, AnimationWriter
from pixray.cli import main
from pixray.output import read_png_metadata
from pixray.settings import SettingsError, build_settings

COLOURS = {"a_red.png": (255, 0, 0), "b_green.png": (0, 255, 0), "c_blue.png": (0, 0, 255)}


@pytest.fixture
def frames_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "frames"
    directory.mkdir()
    for name, colour in COLOURS.items():
        Image.new("RGB", (16, 16), colour).save(directory / name)
    return directory


def _settings(tmp_path: Path, frames_dir: Path, **changes) -> dict:
    return {"prompts": "a red circle", "drawer": "fast_pixel", "size": [16, 16], "iterations": 4,
            "num_cuts": 2, "seed": 1, "device": "cpu", "save_every": 2,
            "target_images": f"{frames_dir}/*.png:0.5", "animation_dir": str(tmp_path / "anim"), **changes}


def test_an_animation_makes_a_picture_per_image_blended_in_rounds(tmp_path, frames_dir, tiny_perceptor):
    settings = build_settings(_settings(tmp_path, frames_dir, animation_alpha=255,
                                        init_image=str(frames_dir / "a_red.png")))
    animation = Animation(settings, perceptors=[tiny_perceptor])
    assert animation.names == list(COLOURS)
    assert [run.settings.target_images for run in animation.runs] == [
        f"{frames_dir / name}:0.5" for name in COLOURS]  # each picture pulled by its own image only
    assert {run.settings.init_image for run in animation.runs} == {str(frames_dir / "a_red.png")}
    reapplied = {}
    for i, run in enumerate(animation.runs):
        run.drawer.reapply_image = lambda image, i=i: reapplied.setdefault(i, []).append(image.clone())
    rounds = list(animation.rounds())
    assert [[step.index for step in steps] for steps in rounds] == [[1, 1, 1], [3, 3, 3], [4, 4, 4]]
    assert all(step.is_final for step in rounds[-1])
    # alpha 255: after each round but the last, every picture is redrawn as the one before it.
    assert sorted(reapplied) == [0, 1, 2] and all(len(images) == 2 for images in reapplied.values())
    for i in range(3):
        assert torch.allclose(reapplied[i][0], rounds[0][i - 1].image[:, :3])


def test_the_writer_saves_each_picture_under_its_images_name_and_a_gif(tmp_path, frames_dir, tiny_perceptor):
    settings = build_settings(_settings(tmp_path, frames_dir))
    done = []
    gif = AnimationWriter(settings).save(Animation(settings, perceptors=[tiny_perceptor]),
                                         lambda n, total: done.append((n, total)))
    assert gif == tmp_path / "anim" / "anim.gif"
    assert sorted(p.name for p in (tmp_path / "anim").iterdir()) == sorted([*COLOURS, "anim.gif"])
    assert read_png_metadata(tmp_path / "anim" / "b_green.png")["iteration"] == 4
    with Image.open(gif) as image:
        assert image.n_frames == 3 and image.info["duration"] == 100
    assert done == [(2, 4), (4, 4), (4, 4)]
    with pytest.raises(SettingsError, match="already holds files"):
        AnimationWriter(settings)


def test_each_picture_is_written_in_the_format_its_name_says(tmp_path, tiny_perceptor):
    """Pictures named for a JPEG, a BMP and a WebP image are those formats, as Pixray wrote them (they were
    PNG data under those names); a PNG's keeps the settings in its metadata."""
    images = tmp_path / "images"
    images.mkdir()
    names = ["a.png", "b.jpg", "c.bmp", "d.webp"]
    for name, colour in zip(names, [(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)], strict=True):
        Image.new("RGB", (16, 16), colour).save(images / name)
    settings = build_settings(_settings(tmp_path, images, target_images=f"{images}/*"))
    AnimationWriter(settings).save(Animation(settings, perceptors=[tiny_perceptor]))
    formats = {}
    for name in names:
        with Image.open(tmp_path / "anim" / name) as image:
            formats[name] = (image.format, image.size)
    assert formats == {"a.png": ("PNG", (16, 16)), "b.jpg": ("JPEG", (16, 16)), "c.bmp": ("BMP", (16, 16)),
                       "d.webp": ("WEBP", (16, 16))}
    assert read_png_metadata(tmp_path / "anim" / "a.png")["iteration"] == 4


def test_a_picture_with_opacity_is_written_without_it_where_its_format_has_none(tmp_path):
    from pixray.output import save_image

    picture = Image.new("RGBA", (8, 8), (255, 0, 0, 128))
    save_image(picture, tmp_path / "x.jpg", None)
    save_image(picture, tmp_path / "x.webp", None)
    with Image.open(tmp_path / "x.jpg") as jpeg, Image.open(tmp_path / "x.webp") as webp:
        assert (jpeg.format, jpeg.mode, webp.format, webp.mode) == ("JPEG", "RGB", "WEBP", "RGBA")


@pytest.mark.parametrize("changes, message", [
    ({"target_images": None}, "needs a list of images"),
    ({"drawer": "clipdraw"}, "'animation_dir' needs a drawer that takes its parameters from an image"),
])
def test_animation_errors_name_the_setting(tmp_path, frames_dir, tiny_perceptor, changes, message):
    with pytest.raises(SettingsError, match=message):
        Animation(build_settings({**_settings(tmp_path, frames_dir), **changes}), perceptors=[tiny_perceptor])


def test_two_images_of_one_name_are_refused(tmp_path, frames_dir, tiny_perceptor):
    (tmp_path / "more").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "more" / "a_red.png")
    settings = _settings(tmp_path, frames_dir, target_images=f"{frames_dir}/*.png|{tmp_path}/more/*.png")
    with pytest.raises(SettingsError, match="share a file name"):
        Animation(build_settings(settings), perceptors=[tiny_perceptor])


def test_the_cli_animates_with_pixrays_flags(tmp_path, frames_dir, tiny_checkpoint, capsys):
    code = main(["--prompts", "a red circle", "--drawer", "pixel", "--size", "16 16", "--iterations", "2",
                 "--num_cuts", "2", "--device", "cpu", "--clip_models", str(tiny_checkpoint),
                 "--save_every", "1", "-ti", f"{frames_dir}/*.png", "-anim", str(tmp_path / "anim"),
                 "-ana", "64", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert Path(capsys.readouterr().out.strip()) == tmp_path / "anim" / "anim.gif"
    assert sorted(p.name for p in (tmp_path / "anim").iterdir()) == sorted([*COLOURS, "anim.gif"])


def test_generate_refuses_an_animation_instead_of_ignoring_it(tmp_path, frames_dir, tiny_perceptor):
    import pixray

    with pytest.raises(SettingsError, match=r"'animation_dir': pixray\.generate makes one picture"):
        pixray.generate(_settings(tmp_path, frames_dir), perceptors=[tiny_perceptor])
