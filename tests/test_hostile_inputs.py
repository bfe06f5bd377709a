"""Hostile input, as a careless or malicious user would send it, through every way in.

One table of settings texts (what a YAML file, a ``--config`` or Cog's ``settings`` input holds) is
run against the settings layer, the CLI and, for a representative subset, the real Cog server
(in test_cog_server.py). Every row must give one short line naming the setting, never a traceback,
never a file written outside the outdir, and never a change to an existing outdir.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from pixray.cli import main
from pixray.limits import Budget
from pixray.options import SettingsError
from pixray.prompts import parse_prompts
from pixray.settings import build_settings, parse_settings_text, resolve

MAX_MESSAGE = 1000


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height`` pixels with no pixel data: a few hundred bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) +
            chunk(b"IEND", b""))


def bad_images(directory: Path) -> dict[str, Path]:
    """Image files a user could name: bombs, truncations, non-images."""
    files = {
        "bomb.png": png_header(50000, 50000),
        "large.png": png_header(13000, 13000),
        "bomb.gif": b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00;",
        "truncated.png": png_header(10, 10),
        "text.png": b"not an image at all\n",
        "empty.png": b"",
        "stripe.png": png_header(1, 8000),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    (directory / "folder.png").mkdir(exist_ok=True)
    return {name: directory / name for name in [*files, "folder.png"]}


ALIAS_BOMB = ("prompts: [&a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol,lol], " +
              ", ".join(f"&a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)) + "]")


@dataclass(frozen=True)
class Row:
    """A settings text and a pattern its one-line error must match.

    ``layer``: "settings" rows fail in the settings layer itself; "run" rows only when a run is
    prepared (a file is read, a loss built), so they are checked through the CLI and the server.
    ``server``: the pattern the server's error must match when it differs (the server refuses
    file-naming and server-owned settings first).
    """

    id: str
    text: str
    pattern: str
    layer: str = "settings"
    server: str | None = None


OWNED = "set by the server"
ROWS = [
    Row("alias-bomb", ALIAS_BOMB, "aliases"),
    Row("deep-nesting", "prompts: " + "[" * 5000, "nested deeper"),
    Row("huge-size-text", "size: " + "x" * 9_000_000, "too long", server="SETTINGS_CHARS"),
    Row("huge-prompt", "prompts: " + "a" * 30_000, "'prompts'.*too long", server="SETTINGS_CHARS"),
    Row("many-comment-lines", "#\n" * 600_000, "too long", server="SETTINGS_CHARS"),
    Row("duplicate-key", "iterations: 5\niterations: 6", "given twice"),
    Row("top-level-list", "- iterations\n- 5", "'name: value' lines"),
    Row("python-tag", "prompts: !!python/object/apply:os.system ['echo hi']", "not valid YAML"),
    Row("binary-tag", "prompts: !!binary aGVsbG8=", "'prompts'"),
    Row("unknown-key-unicode", "ïtérations: 5", "unknown setting 'ïtérations'"),
    Row("huge-unknown-key", "k" * 500_000 + ": 1", "not valid YAML", server="SETTINGS_CHARS"),
    Row("nan-learning-rate", "learning_rate: .nan", "'learning_rate'.*nan"),
    Row("inf-learning-rate", "learning_rate: .inf", "'learning_rate'"),
    Row("nan-scale", "scale: .nan", "'scale'"),
    Row("nan-smoothness", "smoothness_weight: .nan", "'smoothness_weight'"),
    Row("inf-fft-decay", "fft_decay: -.inf", "'fft_decay'"),
    Row("nan-lr-drops", "learning_rate_drops: [.nan]", "'learning_rate_drops'"),
    Row("nan-prompt-weight", "prompts: 'a red circle:nan'", "weight"),
    Row("inf-prompt-weight", "prompts: 'a red circle:inf'", "weight"),
    Row("nan-prompt-stop", "prompts: 'a red circle:1:nan'", "stop"),
    Row("prompt-without-text", "prompts: ':1:2'", "no text"),
    Row("huge-iterations-float", "iterations: 1e400", "'iterations'"),
    Row("bool-iterations", "iterations: true", "'iterations'"),
    Row("list-num-cuts", "num_cuts: [1, 2]", "'num_cuts'"),
    Row("seed-too-big", "seed: 99999999999999999999999", "'seed'"),
    Row("seed-negative", "seed: -1", "'seed'"),
    Row("seed-10k-digits", "seed: '" + "7" * 10_000 + "'", "'seed'"),
    Row("mapping-drawer", "drawer: {a: 1}", "'drawer'"),
    Row("nul-in-choice", 'quality: "normal\\0"', "'quality'"),
    Row("shell-in-choice", "optimiser: 'Adam; rm -rf /'", "'optimiser'"),
    Row("nested-clip-models", "clip_models: [[ViT-B/32]]", "'clip_models'"),
    Row("many-clip-models", "clip_models: [" + ", ".join(["RN50"] * 300) + "]", "too many"),
    Row("size-three", "size: [10, 10, 10]", "'size'"),
    Row("size-zero", "size: [0, 5]", "'size'"),
    Row("size-huge", "size: [100000, 100000]", "'size'"),
    Row("pixel-size-negative", "pixel_size: [-1, 5]", "'pixel_size'"),
    Row("unknown-loss", "custom_loss: [smoothness, nope]", "'custom_loss'"),
    Row("device-tpu", "device: tpu", "'device'", server=OWNED),
    Row("bad-palette", "custom_loss: [palette]\ntarget_palette: ['#zzzzzz']", "target_palette"),
    Row("empty-prompts", "prompts: ''", "'prompts' is empty", "run"),
    Row("vqgan-files-etc-passwd", "drawer: vqgan\nvqgan_config: /etc/passwd\nvqgan_checkpoint: /etc/passwd",
        "passwd", "run", OWNED),
    Row("init-etc-passwd", "init_image: /etc/passwd", "init_image", "run", OWNED),
    Row("init-missing", "init_image: /nonexistent/x.png", "init_image", "run", OWNED),
    Row("init-png-bomb", "init_image: {bomb.png}", "megapixels", "run", OWNED),
    Row("init-13000-png", "init_image: {large.png}", "megapixels", "run", OWNED),
    Row("init-gif-bomb", "init_image: {bomb.gif}", "init_image", "run", OWNED),
    Row("init-truncated", "init_image: {truncated.png}", "init_image.*truncated", "run", OWNED),
    Row("init-text-file", "init_image: {text.png}", "init_image", "run", OWNED),
    Row("init-empty-file", "init_image: {empty.png}", "init_image", "run", OWNED),
    Row("init-directory", "init_image: {folder.png}", "init_image", "run", OWNED),
    Row("retain-without-init-image", "aspect: retain\nsize: null", "'aspect': retain", "run"),
    Row("retain-stripe-image", "aspect: retain\nsize: null\ninit_image: {stripe.png}",
        "'aspect': retain makes a 288x", "run", OWNED),
]

#: The rows the real server is sent (test_cog_server.py), and the budget rows only a server has.
SERVER_ROWS = ["alias-bomb", "deep-nesting", "huge-size-text", "huge-prompt", "duplicate-key", "python-tag",
               "nan-learning-rate", "nan-smoothness", "nan-prompt-weight", "seed-10k-digits",
               "many-clip-models", "size-huge", "bad-palette", "vqgan-files-etc-passwd", "init-etc-passwd",
               "init-png-bomb", "retain-stripe-image",
               "device-tpu"]


def row_text(row: Row, images: dict[str, Path]) -> str:
    """The row's text with ``{name}`` replaced by the path of that bad image."""
    text = row.text
    for name, path in images.items():
        text = text.replace("{" + name + "}", str(path))
    return text


def assert_one_short_line(message: str, pattern: str) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message, message[:2000]
    assert len(message) <= MAX_MESSAGE + 40, (len(message), message[:300])
    assert re.search(pattern, message), message


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    return bad_images(tmp_path_factory.mktemp("images"))


@pytest.mark.parametrize("row", [r for r in ROWS if r.layer == "settings"], ids=lambda r: r.id)
def test_settings_layer_refuses(row):
    with pytest.raises(SettingsError) as info:
        settings = build_settings(parse_settings_text(row.text))
        resolve(settings)
        parse_prompts(settings.prompts)
    assert_one_short_line(str(info.value), row.pattern)


BASE = "prompts: a red circle\ndrawer: pixel\nclip_models: [shapes-demo]\nsize: [16, 16]\niterations: 2\n" \
       "num_cuts: 2\ndevice: cpu\n"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_cli_refuses_in_one_line_and_touches_no_file(row, images, tmp_path, capsys):
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "row.yaml").write_text(row_text(row, images), encoding="utf-8")
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "keep.txt").write_text("the user's file")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = main(["--config", str(tmp_path / "base.yaml"), "--config", str(tmp_path / "row.yaml"),
                 "--outdir", str(outdir), "--overwrite", "true", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("pixray: error: ")
    assert_one_short_line(err, row.pattern)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (outdir / "keep.txt").read_text() == "the user's file"


@pytest.mark.parametrize("args, pattern", [
    (["--outdir", "{tmp}/a-file"], "is a file"),
    (["--outdir", "{tmp}/a-file/below"], "outdir"),
    (["--config", "{tmp}/missing.yaml"], "cannot read settings file"),
    (["--config", "{tmp}"], "cannot read settings file"),
    (["--iterations", "nan"], "'iterations'"),
    (["--size", "nan nan"], "'size'"),
    (["--learning_rate", "nan"], "'learning_rate'"),
    (["--prompts", "x:inf"], "weight"),
    (["--seed", "1" * 5000], "'seed'"),
])
def test_cli_refuses_bad_outdirs_and_flags_in_one_line(args, pattern, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    code = main(["--prompts", "x", "--quiet", *[a.replace("{tmp}", str(tmp_path)) for a in args]])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert_one_short_line(err, pattern)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    assert (tmp_path / "a-file").read_text() == "x"


def test_cli_config_that_is_not_utf8(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_bytes(b"prompts: \xff\xfe\n")
    assert main(["--config", str(tmp_path / "bad.yaml"), "--quiet"]) == 2
    assert_one_short_line(capsys.readouterr().err, "not UTF-8")


def test_budget_refuses_what_each_bound_allows_together():
    settings = build_settings({"num_cuts": 1024, "batches": 64, "iterations": 100000})
    with pytest.raises(SettingsError, match=r"PIXRAY_MAX_ITERATIONS"):
        Budget().check(settings, resolve(settings))
    settings = build_settings({"num_cuts": 100, "batches": 64, "iterations": 1000})
    with pytest.raises(SettingsError, match=r"1000 x 100 x 64 x 2 = 12800000 .*PIXRAY_MAX_WORK"):
        Budget().check(settings, resolve(settings))
    small = build_settings({"prompts": "|".join(["a"] * 65)})
    with pytest.raises(SettingsError, match=r"prompts: 65 .*PIXRAY_MAX_PROMPTS"):
        Budget().check(small, resolve(small))


@pytest.mark.parametrize("quality", ["draft", "normal", "better", "best", "supreme"])
@pytest.mark.parametrize("aspect", ["widescreen", "square", "portrait"])
def test_default_budget_allows_every_preset(quality, aspect):
    settings = build_settings({"quality": quality, "aspect": aspect})
    Budget().check(settings, resolve(settings))


def test_budget_from_environment():
    budget = Budget.from_environment({"PIXRAY_MAX_ITERATIONS": "50", "PIXRAY_MAX_WORK": "0"})
    assert budget.iterations == 50 and budget.work == 0
    settings = build_settings({"iterations": 100000, "num_cuts": 128, "batches": 64})
    with pytest.raises(SettingsError, match="50"):
        budget.check(settings, resolve(settings))
    Budget.from_environment({"PIXRAY_MAX_ITERATIONS": "0", "PIXRAY_MAX_WORK": "0"}).check(
        settings, resolve(settings))
    with pytest.raises(SettingsError, match=r"\$PIXRAY_MAX_CUTS.*whole number"):
        Budget.from_environment({"PIXRAY_MAX_CUTS": "-5"})
