import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pixray.cli import _values, build_parser, main
from pixray.options import SettingsError
from pixray.output import read_png_metadata
from pixray.settings import all_specs, build_settings, read_settings_file


def test_help_lists_every_setting(capsys):
    help_text = build_parser().format_help()
    for name in all_specs():
        assert f"--{name}" in help_text
    # Sections are titled by what they configure.
    assert "pixel drawer:" in help_text and "smoothness loss:" in help_text
    assert "smoothness drawer:" not in help_text
    # A setting several parts share is grouped under all of them, each with its kind.
    assert "pixel, fast_pixel drawers:" in help_text and "palette loss, lookup filter:" in help_text
    assert "wallpaper filter:" in help_text
    # The environment the commands read.
    assert "PIXRAY_WEIGHTS_DIR" in help_text and "PIXRAY_DOWNLOAD=0" in help_text


@pytest.mark.parametrize("command, own", [([], "[--version]"), (["batch"], "[--workers N] [--ray ADDRESS]"),
                                          (["ui"], "[--auth USER:PASSWORD]")])
def test_help_begins_with_a_usage_of_a_few_lines(command, own, capsys):
    """argparse's usage line listed every setting's flag: some 75 lines before the help began. Now each
    command's own options and the settings as one [--SETTING VALUE ...], within 79 columns, no bracket
    broken across lines."""
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    help_text = capsys.readouterr().out
    usage = help_text[:help_text.index("\n\n")].splitlines()
    assert usage[0].startswith(f"usage: {' '.join(['pixray', *command])} [-h] ")
    assert len(usage) <= 3 and all(len(line) <= 79 for line in usage)
    joined = " ".join(" ".join(usage).split())
    assert own in joined and joined.endswith("[--config FILE] [--quiet] [--SETTING VALUE ...]")
    assert all(line.count("[") == line.count("]") for line in usage)
    assert "--prompts" not in joined  # listed under "settings" below


def test_cli_run_with_checkpoint_path_writes_png_with_metadata(tmp_path: Path, tiny_checkpoint: Path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("iterations: 3\nnum_cuts: 2\nsize: [32, 24]\nseed: 5\n")
    code = main(["--config", str(config), "--drawer", "pixel", "--prompts", "a red circle",
                 "--clip_models", str(tiny_checkpoint), "--outdir", str(tmp_path / "run%SEQ%"),
                 "--iterations", "4", "--device", "cpu", "--quiet"])
    assert code == 0
    out = Path(capsys.readouterr().out.strip())
    assert out == tmp_path / "run01" / "output.png"
    meta = read_png_metadata(out)
    assert meta["seed"] == 5 and meta["iteration"] == 4
    assert meta["settings"]["iterations"] == 4 and meta["settings"]["clip_models"] == [str(tiny_checkpoint)]
    assert (out.parent / "settings.yaml").is_file()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixray.cli", *args], capture_output=True, text=True,
                          timeout=120)


BAD_INPUTS = [
    (["--iterations", "-3"], "'iterations'"),
    (["--drawer", "crayon"], "'crayon'"),
    (["--colour", "red"], "--colour"),
    (["--prompts", "x", "--drawer", "pixel", "--clip_models", "ViT-B/32"], "ViT-B-32.pt"),
    (["--prompts", "x", "--drawer", "pixel", "--clip_models", "nope.pt"], "nope.pt"),
    (["--prompts", "x", "--drawer", "pixel", "--clip_models", "junk.pt"], "junk.pt"),
    (["--prompts", "x", "--drawer", "vqgan", "--clip_models", "shapes-demo"],
     "python -m pixray.weights download imagenet_f16_16384"),
    # A first run of the defaults misses three models: all named at once, with one command for them.
    (["--prompts", "x"], "ViT-B/16 (ViT-B-16.pt), imagenet_f16_16384 (vqgan_imagenet_f16_16384.yaml, "
                         "vqgan_imagenet_f16_16384.ckpt); fetch them all with `python -m pixray.weights "
                         "download ViT-B/32 ViT-B/16 imagenet_f16_16384 --dir w`"),
    (["--prompts", "x", "--vqgan_config", "c.yaml"], "'vqgan_checkpoint'"),
    (["--config", "missing.yaml"], "missing.yaml"),
]


def _one_error_line(stderr: str, fragment: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pixray: error:") and fragment in lines[0], lines
    assert "Traceback" not in stderr


def test_bad_input_gives_one_line_and_writes_nothing(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    for args, fragment in BAD_INPUTS:
        try:
            code = main([*args, "--outdir", "o%SEQ%", "--weights_dir", "w", "--quiet"])
        except SystemExit as exc:  # argparse's own errors exit
            code = exc.code
        assert code == 2, args
        _one_error_line(capsys.readouterr().err, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt"]


def test_bad_input_as_a_subprocess(tmp_path: Path):
    for args, fragment in BAD_INPUTS[:3:2]:
        result = _cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        _one_error_line(result.stderr, fragment)


def _cli_on_terminal(*args: str) -> str:
    """What the command writes to standard error when that is a terminal (a pseudo-terminal here)."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    main_end, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    process = subprocess.Popen([sys.executable, "-m", "pixray.cli", *args], stdout=subprocess.DEVNULL,
                               stderr=terminal)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(main_end, 4096)
        except OSError:  # the terminal's other end closed with the command
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=120) == 0, b"".join(chunks)
    os.close(main_end)
    return b"".join(chunks).decode()


LONG_PROMPT_RUN = ("--prompts", " ".join(["a red circle on a blue background"] * 5), "--drawer", "pixel",
                   "--clip_models", "shapes-demo", "--size", "16", "16", "--iterations", "2",
                   "--num_cuts", "1")


def test_a_warning_during_a_run_is_a_line_of_its_own_above_the_progress_bar(tmp_path: Path):
    """A warning the run logs while its bar is up (a prompt longer than the CLIP reads) was written into
    the bar's line ("  0%|  | 0/2 [...]pixray: the prompt ..."); it goes above the bar now."""
    shown = _cli_on_terminal(*LONG_PROMPT_RUN, "--outdir", str(tmp_path / "out"))
    assert "\r" in shown  # on a terminal the bar is redrawn in place
    pieces = re.split(r"[\r\n]", shown)  # what the terminal shows as lines
    warned = [piece for piece in pieces if "the prompt" in piece]
    assert len(warned) == 1 and warned[0].startswith("pixray: the prompt 'a red circle"), pieces
    assert any("2/2" in piece for piece in pieces)  # the bar is still drawn


def test_where_standard_error_is_no_terminal_the_bar_is_lines(tmp_path: Path):
    """Redirected to a file or a pipe (a log, docker logs), each redraw of the bar would pile onto one
    line: the bar is a line of its own now and then (here: as it starts and ends), warnings between."""
    result = _cli(*LONG_PROMPT_RUN, "--outdir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    lines = result.stderr.splitlines()
    seed = re.match(r"seed (\d+): +0%\|.*\| 0/2 ", lines[0])  # the seed first, as Pixray said it
    assert seed and re.match(rf"seed {seed[1]}: 100%\|.*\| 2/2 .*loss=", lines[-1]), lines
    saved = read_png_metadata(tmp_path / "out" / "output.png")
    assert saved["seed"] == int(seed[1])
    assert next(line for line in lines if "the prompt" in line).startswith("pixray: the prompt 'a red circle")


@pytest.mark.parametrize("interval, shown", [(0.0, ["0/3", "1/3", "2/3", "3/3"]), (1000.0, ["0/3", "3/3"])])
def test_the_lines_of_a_bar_come_at_most_every_line_interval(monkeypatch, interval, shown):
    import io

    from pixray import console

    monkeypatch.setattr(console, "LINE_INTERVAL", interval)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with console.progress_bar(3, "it", quiet=False) as bar:
        for _ in range(3):
            bar.update(1)
    counts = [re.search(r"\d/3", line)[0] for line in sys.stderr.getvalue().splitlines()]
    assert [count for count, _ in itertools.groupby(counts)] == shown  # the end may repeat the last


def test_a_reader_of_the_output_that_goes_away_first_gets_no_traceback(tmp_path: Path):
    """`pixray ... | true`: the run's files are kept, exit 1 (Python's advice for a closed pipe), stderr
    quiet; `python -m pixray.weights list | true` blamed the weights directory ("cannot write into")."""
    commands = {
        "pixray": [sys.executable, "-m", "pixray", "--prompts", "a red circle", "--drawer", "pixel",
                   "--clip_models", "shapes-demo", "--size", "16", "16", "--iterations", "1",
                   "--num_cuts", "1", "--outdir", str(tmp_path / "out"), "--quiet"],
        "weights": [sys.executable, "-m", "pixray.weights", "list", "--dir", str(tmp_path / "w")],
    }
    for name, command in commands.items():
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        process.stdout.close()  # before the command writes its first line
        stderr = process.stderr.read()
        assert process.wait(timeout=120) == 1, (name, stderr)
        assert stderr == "", name
    assert (tmp_path / "out" / "output.png").is_file()


def test_values_that_start_with_a_minus_and_a_digit_are_values(capsys):
    """argparse alone reads -1e-3, '-1,1' and -5% as unknown flags ("expected one argument")."""
    parser = build_parser()
    args = parser.parse_args(["--init_weight", "-1e-3", "-npw", "-1,0.5", "--saturation_weight", "-2",
                              "-ovo", "-5%"])
    assert args.init_weight == "-1e-3" and args.noise_prompt_weights == ["-1,0.5"]
    assert args.saturation_weight == "-2" and args.overlay_offset == "-5%"
    assert parser.parse_args(["-npw", "1", "-.5", "-2e-1"]).noise_prompt_weights == ["1", "-.5", "-2e-1"]
    settings = build_settings({"init_weight": "-1e-3", "noise_prompt_seeds": [1, 2],
                               "noise_prompt_weights": "-1,0.5"})
    assert settings.init_weight == -1e-3 and settings.noise_prompt_weights == [-1, 0.5]
    # A word that is not a number still cannot follow a flag: the error says how to give it.
    try:
        main(["--init_weight", "-inf"])
    except SystemExit as exc:
        assert exc.code == 2
    _one_error_line(capsys.readouterr().err, "a value that starts with '-' is given as --init_weight=VALUE")


def test_a_true_false_flag_alone_means_true(capsys):
    """Pixray's str2bool flags needed a word (`--make_video` alone: "expected one argument"); here the
    flag alone is true, a word after it is still its value, and a positional after it is not eaten."""
    parser = build_parser()

    def parsed(argv: list[str]):
        args = vars(parser.parse_args(argv))
        del args["config"], args["quiet"]
        return build_settings(_values(args))

    assert parsed(["--make_video"]).make_video is True
    settings = parsed(["-vid", "--overwrite", "--prompts", "x", "--auto_st", "--video", "no"])
    assert (settings.make_video, settings.overwrite, settings.auto_stop) == (False, True, True)
    for word, value in [("t", True), ("Y", True), ("f", False), ("N", False), ("off", False)]:  # Pixray's
        assert parsed(["--gif", word]).gif is value
    with pytest.raises(SettingsError, match="'make_video': 'ys' is not allowed; expected true or false"):
        parsed(["--make_video", "ys"])  # a misspelt word is still the flag's, so its error names the setting
    # pixray batch's JOBS after a bare flag stays the jobs file (it is missing: the error names it).
    assert main(["batch", "--make_video", "missing.yaml", "--quiet"]) == 2
    _one_error_line(capsys.readouterr().err, "jobs file 'missing.yaml' cannot be read")
    # A value-taking flag left without its value: the '=VALUE' advice only where a '-' word followed it.
    follows = "(its value follows it)"
    for argv, hint in [(["--seed"], follows), (["--seed", "--quiet"], follows),
                       (["-iw", "-inf"], "is given as --init_weight=VALUE")]:
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        _one_error_line(capsys.readouterr().err, hint)


def test_run_that_fails_before_its_first_image_leaves_no_outdir(tmp_path: Path, monkeypatch, capsys):
    """A NaN at step 0 fails the run after settings.yaml was written; the outdir goes with it,
    so the same command (or the same %SEQ%) works again."""
    import pixray.engine

    real = pixray.engine.prompt_loss
    monkeypatch.setattr(pixray.engine, "prompt_loss", lambda *args: real(*args) * float("nan"))
    outdir = tmp_path / "deep" / "out"
    code = main(["--prompts", "a red circle", "--drawer", "pixel", "--clip_models", "shapes-demo",
                 "--size", "16 16", "--iterations", "3", "--num_cuts", "2", "--device", "cpu",
                 "--outdir", str(outdir), "--save_every", "1", "--quiet"])
    assert code == 2
    _one_error_line(capsys.readouterr().err, "not a finite number at step 0")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_ends_the_cli_cleanly_with_complete_images(tmp_path: Path):
    import signal
    import time

    from PIL import Image

    process = subprocess.Popen(
        [sys.executable, "-m", "pixray.cli", "--prompts", "a red circle", "--drawer", "pixel",
         "--clip_models", "shapes-demo", "--size", "32 32", "--iterations", "100000", "--num_cuts", "4",
         "--device", "cpu", "--outdir", str(tmp_path / "out"), "--save_every", "1", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "out" / "output.png").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip() == "pixray: interrupted", err[-2000:]
    # No half-written temporary files; the SVG beside the PNG depends on where the signal fell.
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert names - {"output.svg"} == {"output.png", "settings.yaml", "steps"}, names
    # An interrupted run still gets the video of the frames it saved (as Pixray's Ctrl-C does).
    steps = sorted(p.name for p in (tmp_path / "out" / "steps").iterdir())
    assert steps[-1] == "output.mp4" and steps[0] == "frame_0000.png", steps
    assert all(name.startswith("frame_") for name in steps[:-1])
    with Image.open(tmp_path / "out" / "output.png") as image:
        image.load()  # complete, not truncated
        assert int(image.text["pixray_iteration"]) >= 0


def test_pixray_png_keys_and_rerun_from_a_png_gives_the_same_image(tmp_path: Path, capsys):
    import numpy as np
    from PIL import Image

    args = ["--prompts", "a red circle", "--drawer", "pixel", "--clip_models", "shapes-demo",
            "--size", "24 16", "--iterations", "3", "--num_cuts", "2", "--device", "cpu",
            "--seed", "a seed in words", "--quiet"]
    assert main([*args, "--outdir", str(tmp_path / "first")]) == 0
    first = Path(capsys.readouterr().out.strip())
    with Image.open(first) as image:
        text = dict(image.text)
        pixels = np.asarray(image.convert("RGB"))
    assert text["pixray_drawer"] == "pixel" and text["pixray_iterations"] == "3"
    assert text["pixray_seed_used"] == text["pixray_seed"] and text["Software"].startswith("pixray (")
    assert main(["--config", str(first), "--outdir", str(tmp_path / "again"), "--quiet"]) == 0
    again = Path(capsys.readouterr().out.strip())
    with Image.open(again) as image:
        assert np.array_equal(np.asarray(image.convert("RGB")), pixels)
        assert image.text["pixray_seed_used"] == text["pixray_seed_used"]


def test_a_rerun_from_an_image_goes_to_a_new_outdir(tmp_path: Path, capsys, monkeypatch):
    # The image records where it was written; a re-run without --outdir was refused there ("outdir
    # 'first' already holds files"): where it went is not how it was made.
    monkeypatch.chdir(tmp_path)
    args = ["--prompts", "a red circle", "--drawer", "fast_pixel", "--clip_models", "shapes-demo",
            "--size", "16 16", "--iterations", "2", "--num_cuts", "2", "--device", "cpu", "--quiet"]
    assert main([*args, "--outdir", "first", "--output", "pic.png"]) == 0
    capsys.readouterr()
    assert "outdir" not in read_settings_file(tmp_path / "first" / "pic.png")
    assert main(["--config", "first/pic.png", "--quiet"]) == 0
    again = Path(capsys.readouterr().out.strip())
    assert again.parent.parent == Path("outputs") and again.name == "output.png"
    assert sorted(p.name for p in (tmp_path / "first").iterdir()) == ["pic.png", "settings.yaml", "steps"]


def test_config_from_an_image_pixray_itself_made_takes_its_settings_and_seed(tmp_path: Path, capsys):
    # Pixray writes one 'pixray_<setting>' chunk per setting it was given, Python's str of the value,
    # and the seed it used (a seed given in words, hashed) in 'pixray_seed_used'.
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in {"Software": "pixray (1.9.1)", "pixray_prompts": "a red circle",
                       "pixray_drawer": "pixel", "pixray_size": "[24, 16]", "pixray_seed": "some words",
                       "pixray_seed_used": "12345",
                       "pixray_iterations": "2", "pixray_clip_models": "shapes-demo",
                       "pixray_custom_loss": "smoothness:0.5", "pixray_learning_rate_drops": "[80]",
                       "pixray_save_intermediates": "False"}.items():
        info.add_text(key, value)
    Image.new("RGB", (24, 16)).save(tmp_path / "pixrays.png", pnginfo=info)
    read = read_settings_file(tmp_path / "pixrays.png")
    assert (read["iterations"], read["save_intermediates"], read["seed"]) == (2, False, 12345)
    given = build_settings(read)
    assert (given.prompts, given.drawer, given.size, given.seed) == ("a red circle", "pixel", [24, 16], 12345)
    assert (given.custom_loss, given.learning_rate_drops) == (["smoothness:0.5"], ["80%"])
    assert given.clip_models == ["shapes-demo"] and given.save_intermediates is False
    assert main(["--config", str(tmp_path / "pixrays.png"), "--outdir", str(tmp_path / "again"), "--quiet",
                 "--num_cuts", "2", "--device", "cpu"]) == 0
    with Image.open(capsys.readouterr().out.strip()) as image:
        assert image.size == (24, 16) and image.text["pixray_seed_used"] == "12345"


def test_config_from_an_image_without_settings_is_refused(tmp_path: Path, capsys):
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert main(["--config", str(tmp_path / "plain.png"), "--quiet"]) == 2
    _one_error_line(capsys.readouterr().err, "holds no pixray settings")


def test_settings_from_standard_input_or_any_pipe(tmp_path: Path):
    """`--config -` reads standard input; `--config /dev/stdin` (or a shell's `<(...)`) was read twice,
    the first 8 bytes lost to the PNG check ("setting 'prompts' is empty")."""
    text = ("prompts: a red circle\ndrawer: pixel\nclip_models: shapes-demo\nsize: [16, 16]\niterations: 1\n"
            "num_cuts: 1\n")
    for config in ("-", "/dev/stdin"):
        outdir = tmp_path / f"out{len(config)}"
        result = subprocess.run([sys.executable, "-m", "pixray", "--config", config, "--outdir", str(outdir),
                                 "--quiet"], input=text, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and result.stderr == "", (config, result.stderr)
        assert Path(result.stdout.strip()) == outdir / "output.png"
    # Nothing on standard input: no settings, so no prompt.
    result = subprocess.run([sys.executable, "-m", "pixray", "--config", "-"], input="", capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "setting 'prompts' is empty" in result.stderr


def test_a_settings_file_is_held_to_its_length_in_characters_not_bytes(tmp_path: Path):
    from pixray.settings import MAX_SETTINGS_BYTES, SettingsError

    wide = tmp_path / "wide.yaml"  # 3 bytes a character: over the limit in bytes, within it in characters
    wide.write_text(f"# {'風' * (MAX_SETTINGS_BYTES // 2)}\nseed: 3\n", encoding="utf-8")
    assert read_settings_file(wide) == {"seed": 3}
    long = tmp_path / "long.yaml"
    long.write_text(f"# {'x' * MAX_SETTINGS_BYTES}\nseed: 3\n")
    try:
        read_settings_file(long)
    except SettingsError as exc:
        assert "too long" in str(exc)
    else:
        raise AssertionError("a settings file over the limit was read")


def test_a_settings_files_paths_may_start_with_the_home_directory(tmp_path: Path, capsys, monkeypatch):
    """`~` in a YAML file (no shell expands it there) means the home directory, as on the command line:
    init_image, an image prompt's glob, outdir and weights_dir."""
    from PIL import Image

    from pixray.weights import weights_dir

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    Image.new("RGB", (20, 10), (200, 30, 30)).save(home / "start.png")
    config = tmp_path / "c.yaml"
    config.write_text("init_image: ~/start.png\nimage_prompts: ~/st*.png\noutdir: ~/renders/%SEQ%\n"
                      "weights_dir: ~/w\n")
    code = main(["--config", str(config), "--drawer", "fast_pixel", "--prompts", "a red circle",
                 "--clip_models", "shapes-demo", "--size", "16", "16", "--iterations", "1", "--quiet"])
    assert code == 0
    assert Path(capsys.readouterr().out.strip()) == home / "renders" / "01" / "output.png"
    assert weights_dir("~/w") == home / "w"


def test_help_shows_each_default_as_it_is_typed_and_it_reads_back_as_the_default(capsys):
    """`--help` said "(default: None)", "(default: False)", "(default: )" and "(default: ['75%'])": Python's
    spellings, not the words the command takes. Each default is now shown as it is typed, and reads back
    (the shell turning '' into an empty word) as the default itself."""
    from pixray.cli import typed
    from pixray.options import coerce
    from pixray.settings import all_specs

    with pytest.raises(SystemExit):
        main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for text in ["(default: None)", "(default: False)", "(default: )", "(default: [", "(default: True)"]:
        assert text not in shown
    for text in ["(default: none)", "(default: false)", "(default: '')", "(default: 75%)", "(default: true)"]:
        assert text in shown
    for spec in all_specs().values():
        word = typed(spec.default)
        assert coerce(spec, "" if word == "''" else word) == spec.default, spec


@pytest.mark.parametrize("args, hint", [
    (["--iterationz", "3"], "--iterationz 3 (did you mean --iterations?)"),
    (["--promts=a cat"], "--promts=a cat (did you mean --prompts?)"),
    (["--use_pixeldraw", "true"], "--use_pixeldraw true (Pixray's first versions' way to choose the drawer; "
                                  "give --drawer pixel instead)"),
    (["--qqqqqqq"], "--qqqqqqq"),
])
def test_an_unknown_flag_is_answered_with_the_setting_meant(capsys, args, hint):
    with pytest.raises(SystemExit) as info:
        main([*args, "--prompts", "x"])
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"pixray: error: unrecognized arguments: {hint} (see pixray --help)"


def test_a_flag_given_with_equals_then_more_values_says_how_to_give_several(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--size=64", "48", "--prompts", "x"])
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == ("pixray: error: unrecognized arguments: 48 (a value given as --size=64 ends there; give "
                    "several as --size 64 48) (see pixray --help)")
    with pytest.raises(SystemExit):
        main(["--prompts=a", "red", "circle"])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == ("pixray: error: unrecognized arguments: red circle (a value given as --prompts=a ends "
                    "there; quote a value of several words: --prompts='a red circle') (see pixray --help)")


@pytest.mark.parametrize("command, args, message", [
    ("weights", [], "python -m pixray.weights: error: the following arguments are required: command"),
    ("weights", ["dl"], "python -m pixray.weights: error: argument command: invalid choice: 'dl'"),
    ("weights", ["list", "--bogus"], "python -m pixray.weights: error: unrecognized arguments: --bogus"),
    ("vector_tables", ["--away", "a"], "python -m pixray.vector_tables: error: the following arguments are "
                                       "required: --towards, --clip_models, --out"),
])
def test_the_other_commands_mistakes_are_one_line_too(capsys, command, args, message):
    from pixray import vector_tables
    from pixray.weights import __main__ as weights

    with pytest.raises(SystemExit) as info:
        {"weights": weights.main, "vector_tables": vector_tables.main}[command](args)
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(message) and line.endswith(f"(see python -m pixray.{command} --help)")
