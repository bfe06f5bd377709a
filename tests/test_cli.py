import subprocess
import sys
from pathlib import Path

from pixray.cli import build_parser, main
from pixray.output import read_png_metadata
from pixray.settings import all_specs


def test_help_lists_every_setting(capsys):
    help_text = build_parser().format_help()
    for name in all_specs():
        assert f"--{name}" in help_text
    # Sections are titled by what they configure.
    assert "pixel drawer:" in help_text and "smoothness loss:" in help_text
    assert "smoothness drawer:" not in help_text


def test_cli_run_with_checkpoint_path_writes_png_with_metadata(tmp_path: Path, tiny_checkpoint: Path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("iterations: 3\nnum_cuts: 2\nsize: [32, 24]\nseed: 5\n")
    code = main(["--config", str(config), "--drawer", "pixel", "--prompts", "a red circle",
                 "--clip_models", str(tiny_checkpoint), "--outdir", str(tmp_path / "run%SEQ%"),
                 "--iterations", "4", "--device", "cpu", "--quiet"])
    assert code == 0
    out = Path(capsys.readouterr().out.strip())
    assert out == tmp_path / "run0001" / "output.png"
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
    (["--prompts", "x", "--drawer", "vqgan"], "python -m pixray.weights download imagenet_f16_16384"),
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
