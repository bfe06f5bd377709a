"""`pixray ui` without a browser: the form's settings, the page's runs (progress, stop, errors), the
gallery and "use these settings", and the Gradio page it builds."""

from __future__ import annotations

import re
import socket
import sys
import time
from pathlib import Path

import pytest

from pixray.cli import main
from pixray.drawers import DRAWERS
from pixray.options import SettingsError
from pixray.output import read_png_metadata
from pixray.settings import all_specs, build_settings
from pixray.ui.form import (
    ADVANCED,
    FIELDS,
    field_of,
    fields,
    form_from_settings,
    reference,
    settings_from_form,
)
from pixray.ui.gallery import output_root, pictures
from pixray.ui.page import Page, View


def _form(**values: object) -> dict[str, object]:
    return {name: values.get(name) for name in FIELDS}


def test_fields_come_from_the_settings_tree():
    specs = all_specs()
    by_name = {field.name: field for field in fields()}
    assert list(by_name) == list(FIELDS)
    assert by_name["drawer"].kind == "choice" and list(by_name["drawer"].spec.choices) == list(DRAWERS)
    assert by_name["iterations"].kind == "number" and by_name["seed"].kind == "text"  # seeds may be words
    assert by_name["init_image"].kind == "image" and by_name["make_video"].kind == "switch"
    assert by_name["quality"].info == specs["quality"].help  # the list shows the choices
    assert by_name["iterations"].info.endswith("an integer from 1 to 100000, or none")


def test_settings_from_the_form_and_the_advanced_box():
    form = _form(prompts=" a lighthouse ", drawer="pixel", iterations=60.0, seed="lighthouse words",
                 make_video=False)
    settings = settings_from_form({"num_cuts": 3}, form, "pixel_size: [8, 4]\nnum_cuts: 5\n")
    assert settings.prompts == "a lighthouse" and settings.iterations == 60 and settings.num_cuts == 5
    assert settings.section("pixel").pixel_size == [8, 4]
    assert settings.seed == build_settings({"seed": "lighthouse words"}).seed
    blank = settings_from_form({}, _form(seed="", iterations=None), "")
    assert blank.seed is None and blank.iterations is None and blank.drawer == "vqgan"  # left to defaults


@pytest.mark.parametrize(("form", "advanced", "field"), [
    ({"iterations": 0}, "", "iterations"),
    ({"iterations": 200000}, "", "iterations"),
    ({"aspect": "round"}, "", "aspect"),
    ({"drawer": "crayon"}, "", "drawer"),
    ({}, "pixel_size: 7", ADVANCED),
    ({}, "colour: red", ADVANCED),
    ({}, "iterations: 5", ADVANCED),  # a setting with a field of its own belongs in that field
    ({}, "[not, a, mapping]", ADVANCED),
])
def test_a_bad_setting_is_the_clis_one_line_message_by_its_field(form, advanced, field):
    with pytest.raises(SettingsError) as caught:
        settings_from_form({}, _form(**form), advanced)
    message = str(caught.value)
    assert field_of(message) == field and "\n" not in message
    if form and field != ADVANCED:  # the very message the command line gives for the same value
        with pytest.raises(SettingsError) as cli:
            build_settings({name: value for name, value in form.items()})
        assert str(cli.value) == message


def test_the_form_from_an_images_settings_leaves_out_where_it_went():
    form, advanced = form_from_settings({"prompts": "a fox", "drawer": "pixel", "seed": 7, "iterations": 9,
                                         "outdir": "x/%SEQ%", "overwrite": True, "pixel_size": [8, 4]})
    assert form["prompts"] == "a fox" and form["seed"] == 7 and form["quality"] == "normal"
    assert "pixel_size: [8, 4]" in advanced and "outdir" not in advanced and "overwrite" not in advanced
    assert settings_from_form({}, form, advanced).section("pixel").pixel_size == [8, 4]


def test_output_root_is_the_folder_around_every_runs_outdir():
    assert output_root("outputs/%DATE%_%SEQ%") == Path("outputs")
    assert output_root("/data/runs/%SEQ%/pics") == Path("/data/runs")
    assert output_root("%SEQ%") == Path(".") and output_root("mine/one") == Path("mine")


def _views(page: Page, form: dict, advanced: str = "", session: str = "s") -> list[View]:
    return list(page.generate(session, form, advanced))


@pytest.fixture
def page(tmp_path: Path, tiny_checkpoint: Path) -> Page:
    return Page({"clip_models": [str(tiny_checkpoint)], "size": [32, 24], "num_cuts": 2, "device": "cpu",
                 "outdir": str(tmp_path / "outputs" / "%SEQ%"), "display_every": 2})


def test_a_run_streams_frames_and_progress_then_its_files(page: Page, tmp_path: Path):
    views = _views(page, _form(prompts="a red circle", drawer="pixel", iterations=5, seed="3"))
    assert views[0].running and views[0].message.startswith("Preparing")
    steps = [v for v in views if v.total]
    assert [v.done for v in steps] == sorted(v.done for v in steps) and steps[-1].done == 5
    # The loss from the first step's end on (step 0's picture comes before it is scored).
    assert all(v.total == 5 and v.running and (v.loss is not None or v.done == 0) for v in steps)
    # Frames of steps 0, 2 and 4 (display_every 2), each as soon as it is drawn; progress that piles up
    # while the page is busy comes as one update with the latest frame, so on a loaded machine all
    # three may come as one.
    framed = [v for v in steps if v.image is not None]
    assert 1 <= len(framed) <= 3 and framed[-1].done >= 4  # the last one step 4's
    last = views[-1]
    assert not last.running and last.message.startswith("Done: 5 steps, seed 3 · ") and last.image is not None
    outdir = tmp_path / "outputs" / "01"
    assert last.files == [outdir / "output.png", outdir / "output.svg", outdir / "steps" / "output.mp4"]
    assert read_png_metadata(last.files[0])["seed"] == 3


def test_the_gallery_shows_the_runs_and_fills_the_form_from_one(page: Page):
    _views(page, _form(prompts="a red circle", drawer="pixel", iterations=2, seed="4"))
    _views(page, _form(prompts="a blue square", drawer="fast_pixel", iterations=2, seed="5"), "num_cuts: 3")
    shown = page.gallery()
    assert [p.caption for p in shown] == ["a blue square · seed 5", "a red circle · seed 4"]  # newest first
    form, advanced = page.settings_of(shown[0].path)
    assert (form["prompts"], form["drawer"], form["seed"]) == ("a blue square", "fast_pixel", 5)
    assert form["iterations"] == 2
    assert "num_cuts: 3" in advanced and "outdir" not in advanced
    again = _views(page, form, advanced)[-1]  # the same settings make the same picture
    assert again.files and again.files[0].read_bytes() != b""
    assert again.image.tobytes() == _image(shown[0].path).tobytes()


def _image(path: Path):
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def test_the_gallery_leaves_out_frames_and_other_pngs(tmp_path: Path):
    (tmp_path / "run" / "steps").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "run" / "plain.png")
    (tmp_path / "run" / "broken.png").write_bytes(b"not a png")
    assert pictures(tmp_path) == []


def test_stop_ends_the_run_after_the_step_under_way_and_keeps_its_image(page: Page):
    views, asked_at = [], None
    form = _form(prompts="a red circle", drawer="pixel", iterations=500, seed="1")
    for view in page.generate("s", form, ""):
        views.append(view)
        if view.done == 1:
            time.sleep(0.3)  # a busy page: the progress that piles up meanwhile comes as one update,
            # so step 2's may never be seen (on a loaded machine it was not), hence ">=" below
        if asked_at is None and view.done >= 2:
            assert page.stop("s")
            asked_at = view.done
    last = views[-1]
    assert asked_at is not None and last.message.startswith("Stopped after step") and not last.running
    stopped_at = int(re.match(r"Stopped after step (\d+), seed 1 · ", last.message).group(1))
    # The run may be steps ahead of the page when Stop comes, never at its end.
    assert asked_at <= stopped_at < 400 and views[-2].message == "Stopping after this step…"
    assert read_png_metadata(last.files[0])["iteration"] == stopped_at - 1
    assert not page.stop("s")  # nothing left to stop


def test_a_page_that_goes_away_mid_run_stops_it(page: Page):
    run = page.generate("s", _form(prompts="a red circle", drawer="pixel", iterations=500, seed="1"), "")
    session = None
    for view in run:
        if view.done:
            session = page._sessions["s"]
            break
    run.close()  # what Gradio does with a closed page's generator
    session.join(timeout=60)
    assert session.stopping and "s" not in page._sessions


def test_errors_show_by_their_field_and_a_failed_run_in_the_message(page: Page, tmp_path: Path):
    view = _views(page, _form(prompts="", drawer="pixel"))[-1]  # found when the run is made
    assert not view.running and list(view.errors) == ["prompts"]
    assert "setting 'prompts' is empty" in view.errors["prompts"]
    [view] = _views(page, _form(prompts="x", drawer="pixel"), "num_cuts: lots")
    assert list(view.errors) == [ADVANCED] and "'num_cuts'" in view.errors[ADVANCED]
    missing = _views(page, _form(prompts="x", drawer="pixel"), "clip_models: [ViT-B/32]\nweights_dir: "
                     + str(tmp_path / "none"))
    assert missing[-1].message.startswith("Failed: ") and "ViT-B-32.pt" in missing[-1].message
    assert not missing[-1].running and not missing[-1].errors
    # The page still works after each of them.
    assert _views(page, _form(prompts="x", drawer="pixel", iterations=1))[-1].message.startswith("Done")


def test_models_stay_loaded_between_runs(page: Page):
    _views(page, _form(prompts="a", drawer="pixel", iterations=1))
    [cache] = page._caches.values()
    loads = cache.loads
    _views(page, _form(prompts="b", drawer="fast_pixel", iterations=1))
    assert cache.loads == loads and list(page._caches.values()) == [cache]


def test_the_demo_preset_fills_the_shapes_world_settings():
    form, advanced = Page.demo_preset()
    settings = settings_from_form({}, form, advanced)
    assert settings.clip_models == ["shapes-demo", "shapes-demo-rn"] and settings.drawer == "pixel"
    assert settings.prompts.startswith("a red circle on a blue background")


def test_the_gradio_page_is_built_from_the_settings_tree(page: Page):
    import gradio as gr

    from pixray.ui.app import build_app, status_html

    app = build_app(page)
    dropdowns = {block.elem_id: block for block in app.blocks.values() if isinstance(block, gr.Dropdown)}
    assert [choice[0] for choice in dropdowns["field-drawer"].choices] == list(DRAWERS)
    boxes = {block.elem_id: block for block in app.blocks.values() if isinstance(block, gr.Textbox)}
    assert boxes["field-iterations"].value == ""  # blank: from quality (a number box would send 0)
    shown = status_html(View("Running", None, 3, 9, 0.5, 65))
    assert "step 3 of 9 · loss 0.5000 · about 1 min 05 s left" in shown


def test_pixray_ui_refuses_bad_settings_before_serving(capsys):
    assert main(["ui", "--iterations", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pixray: error: setting 'iterations': '0' is not allowed; expected an integer from 1 to "
                   "100000, or none"]


def test_pixray_ui_on_a_port_in_use_says_so_in_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port), "--clip_models", "shapes-demo"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"pixray: error: pixray ui cannot serve on 127.0.0.1:{port} (the port is in use, or the address is "
        "not this machine's): choose another --port or --host"]


# The web server's thread ends with SystemExit when it cannot bind (silent in the command).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_pixray_ui_on_an_address_not_this_machines_says_so_in_one_line(capfd):
    # A host name that resolves nowhere (".invalid" is reserved for that): the server's own log line
    # about it stays out of the output.
    assert main(["ui", "--host", "no-such-host.invalid", "--clip_models", "shapes-demo"]) == 2
    assert capfd.readouterr().err.strip().splitlines() == [
        "pixray: error: pixray ui cannot serve on no-such-host.invalid:7860 (the port is in use, or the "
        "address is not this machine's): choose another --port or --host"]


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_pixray_ui_takes_only_a_port_number(capsys, port):
    with pytest.raises(SystemExit) as exit_:  # 99999 was a traceback (OverflowError from bind)
        main(["ui", "--port", port])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == (f"pixray ui: error: argument --port: expected a port number "
                                               f"from 1 to 65535, got '{port}' (see pixray ui --help)")


def test_pixray_ui_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # what an install without the ui extra has
    monkeypatch.delitem(sys.modules, "pixray.ui.app", raising=False)
    assert main(["ui"]) == 2
    assert capsys.readouterr().err.strip() == ("pixray: error: pixray ui needs the ui extra: pip install "
                                               "'pixray[ui]' (make install installs it)")


def test_an_animation_is_refused_with_where_to_make_it():
    with pytest.raises(SettingsError, match="setting 'animation_dir': the page makes one picture"):
        settings_from_form({}, _form(prompts="a"), "animation_dir: anim")


def test_the_settings_reference_lists_every_setting_grouped_by_what_it_configures():
    text = reference()
    assert all(f"- `{name}` (default " in text for name in all_specs())
    assert "**Core**" in text and "**pixel, fast_pixel drawers**" in text  # as pixray --help groups them
    assert "- `iterations` (default unset): Optimisation steps" in text
    assert "- `learning_rate_drops` (default `[75%]`)" in text and "- `prompts` (default `''`)" in text


def test_pixray_ui_auth_is_a_user_and_a_password(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["ui", "--auth", "only-a-name"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == ("pixray ui: error: argument --auth: expected USER:PASSWORD "
                                               "(see pixray ui --help)")


def test_an_init_image_from_its_field_starts_the_run_and_comes_back(page: Page, tmp_path: Path):
    from PIL import Image

    start = tmp_path / "start.png"
    Image.new("RGB", (40, 30), (250, 10, 10)).save(start)
    views = _views(page, _form(prompts="a red circle", drawer="pixel", iterations=1, seed="2",
                               init_image=str(start)))
    assert views[-1].message.startswith("Done: 1 steps")
    form, _ = page.settings_of(views[-1].files[0])
    assert form["init_image"] == str(start)
    from pixray.ui.app import _form_updates

    shown = _form_updates(form)[FIELDS.index("init_image")]  # the picture itself, for any path
    assert shown.size == (40, 30) and shown.getpixel((0, 0)) == (250, 10, 10)
    start.unlink()
    assert _form_updates(form)[FIELDS.index("init_image")] is None  # gone: the field stays empty
    updates = _form_updates(form)
    assert (updates[FIELDS.index("seed")], updates[FIELDS.index("iterations")]) == ("2", "1")  # text boxes
