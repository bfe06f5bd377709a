"""Pixray's own example settings files (its cogs/*.yaml and examples/loot_settings.yaml, as of
pixray 1.9.1) load here: those naming only settings this project has run (with a tiny CLIP and,
for vqgan, a tiny VQGAN), and the others fail with one line naming what is not supported yet."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_vdiff import install_toys
from test_vqgan import write_checkpoint

from pixray.cli import main

# The files' lines as Pixray ships them.
EXAMPLES = {name: "\n".join(lines) + "\n" for name, lines in {
    "hello_pixray": ['quality: "draft"', "drawer: vqgan", "iterations: 100", 'prompts: "sunset in the city"',
                     "output: outputs/hello_pixray.png"],
    "pixrayraw": ["output: outputs/raw.png"],
    "text2pixel": ["drawer: pixel", "display_every: 10", "output: outputs/text2pixel.png", "scale: 2.5",
                   "quality: better"],
    "pixray_pixel": ["display_every: 10", "output: outputs/pixray_pixel.png", "quality: better", "scale: 2.5",
                     "vector_prompts: textoff"],
    "pixray_vqgan": ["drawer: vqgan", "display_every: 10", "output: outputs/pixray_vqgan.png",
                     "vector_prompts: textoff"],
    "pixray_vdiff": ["drawer: vdiff", "quality: better", "display_every: 10", "outdir: outputs/vdiff"],
    "pixrayapi": ["outdir: outputs/api", "save_intermediates: False"],
    "text2image": ["display_every: 10", "outdir: outputs/text2image", "save_intermediates: False"],
    "tiler_fft": ["drawer: vqgan", "display_every: 10", "output: outputs/tiler_fft.png", "quality: better",
                  "filters: wallpaper", "wallpaper_edge_match: 4", "custom_loss: smoothness:0.5",
                  "smoothness_type: clipped", "size: [416, 416]"],
    "tiler_fft_shift": ["drawer: fft", "fft_use: dwt", "fft_wave: dmey", "display_every: 10",
                        "output: outputs/tiler_fft.png", "quality: better", "filters: wallpaper",
                        "size: [720, 360]", "wallpaper_shift: True"],
    "tiler_pixel": ["drawer: pixel", "display_every: 10", "output: outputs/tiler_pixel.png",
                    "quality: better", "filters: wallpaper", "pixel_size: [64, 64]", "size: [256, 256]"],
    "tiler_pixel_shift": ["drawer: pixel", "display_every: 10", "output: outputs/tiler_pixel.png",
                          "quality: better", "filters: wallpaper", "pixel_size: [64, 32]", "size: [256, 128]",
                          "wallpaper_shift: True"],
    "loot_settings": ['quality: "better"', "use_pixeldraw: True", 'init_noise: "pixels"',
                      "pixel_size: [64, 64]", "size: [320,320]", "num_cuts: 96", "iterations: 120",
                      "learning_rate_drops: [80]", "save_every: 10"],
}.items()}
RUNS = {"hello_pixray": "outputs/hello_pixray.png", "pixrayraw": "outputs/raw.png",
        "text2pixel": "outputs/text2pixel.png", "pixray_pixel": "outputs/pixray_pixel.png",
        "pixray_vqgan": "outputs/pixray_vqgan.png", "tiler_fft": "outputs/tiler_fft.png",
        "tiler_fft_shift": "outputs/tiler_fft.png", "tiler_pixel": "outputs/tiler_pixel.png",
        "tiler_pixel_shift": "outputs/tiler_pixel.png", "pixrayapi": "output.png", "text2image": "output.png",
        "pixray_vdiff": "output.png"}
REFUSED = {
    "loot_settings": "unknown setting 'use_pixeldraw'",
}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, tiny_checkpoint) -> Path:
    """Settings that swap in a tiny CLIP and a tiny VQGAN and keep the run short and small (the tiny
    VQGAN attends over all its latent positions: at 384x216 that is 20000^2 products)."""
    directory = tmp_path_factory.mktemp("tiny")
    config, checkpoint = write_checkpoint(directory, "vqgan_tiny")
    path = directory / "tiny.yaml"
    path.write_text(f"clip_models: [{tiny_checkpoint}]\nvqgan_config: {config}\n"
                    f"vqgan_checkpoint: {checkpoint}\niterations: 2\nnum_cuts: 2\nsize: [48, 32]\n"
                    "device: cpu\nprompts: a lighthouse\n")
    return path


def test_every_example_is_covered():
    assert set(RUNS) | set(REFUSED) == set(EXAMPLES) and not set(RUNS) & set(REFUSED)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_examples_with_settings_this_project_has_run(name, tiny_models, tmp_path, capsys, monkeypatch):
    example = tmp_path / f"{name}.yaml"
    example.write_text(EXAMPLES[name])
    overrides = tiny_models.read_text()
    if any(line.startswith("prompts:") for line in EXAMPLES[name].splitlines()):
        overrides = overrides.replace("prompts: a lighthouse\n", "")
    if name == "tiler_fft_shift":  # its wavelet, dmey, is 62 taps long: at least 61 pixels a side
        overrides = overrides.replace("size: [48, 32]", "size: [64, 64]")
    if name == "pixray_vdiff":  # a toy network under the default model's name
        (weights := tmp_path / "weights").mkdir()
        overrides += f"weights_dir: {install_toys(monkeypatch, weights)}\n"
    (tmp_path / "tiny.yaml").write_text(overrides)
    code = main(["--config", str(example), "--config", str(tmp_path / "tiny.yaml"),
                 "--outdir", str(tmp_path / "out"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert Path(capsys.readouterr().out.strip()) == tmp_path / "out" / RUNS[name]
    intermediates = "save_intermediates: False" not in EXAMPLES[name]
    assert (tmp_path / "out" / "steps" / "output.mp4").exists() == intermediates


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_examples_naming_what_is_not_built_yet_say_what(name, tmp_path, capsys):
    example = tmp_path / f"{name}.yaml"
    example.write_text(EXAMPLES[name])
    assert main(["--config", str(example), "--outdir", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and REFUSED[name] in err, err
    assert not (tmp_path / "out").exists()
