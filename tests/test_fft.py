import math

import pytest
import torch

from pixray.drawers import DRAWERS
from pixray.drawers.fft import spectrum_scale
from pixray.settings import build_settings


def _fft(fft_use: str, width: int = 40, height: int = 30, **options):
    settings = build_settings({"fft_use": fft_use, **options})
    return DRAWERS.lookup("fft")(settings.section("fft"), width, height)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float(((a.detach() - b) ** 2).mean()))


@pytest.mark.parametrize("fft_use", ["fft", "dwt", "pixel"])
def test_init_image_round_trip(fft_use):
    image = torch.rand(1, 3, 30, 40, generator=torch.Generator().manual_seed(0))
    image[..., :5, :5] = 0.0  # pure black and white survive too (Pixray lost half the range here)
    image[..., -5:, -5:] = 1.0
    drawer = _fft(fft_use)
    drawer.init_from_image(image, torch.Generator())
    assert _psnr(drawer.synth(), image) > 60


@pytest.mark.parametrize("fft_use", ["fft", "dwt", "pixel"])
def test_output_range_and_gradients(fft_use):
    drawer = _fft(fft_use)
    with torch.no_grad():
        for p in drawer.parameters():
            p.normal_(0, 5)
    image = drawer.synth()
    assert image.shape == (1, 3, 30, 40) and image.min() >= 0 and image.max() <= 1
    image[:, 0].mean().backward()
    assert all(p.grad.abs().sum() > 0 for p in drawer.parameters())


def test_spectrum_scale_decays_with_frequency():
    scale = spectrum_scale(30, 40, 1.5)
    assert scale.shape == (30, 21) and scale.max() == pytest.approx(1200**0.5)
    assert scale[0, 1] > scale[0, 10] > scale[15, 20]
    assert torch.allclose(spectrum_scale(30, 40, 0.0), torch.full((30, 21), 1200**0.5))


def test_fft_lrate_is_the_default_learning_rate(small_settings, tiny_perceptor):
    import pixray

    run = pixray.generate(small_settings, perceptors=[tiny_perceptor], drawer="fft", fft_lrate=0.05)
    assert run.learning_rate == 0.05
    steps = list(run)
    assert steps[-1].is_final and steps[-1].image.shape == (1, 3, 24, 32)
    assert pixray.generate(small_settings, perceptors=[tiny_perceptor], drawer="fft",
                           learning_rate=0.2).learning_rate == 0.2


def test_cli_runs_the_fft_drawer(tmp_path, tiny_checkpoint, capsys):
    from pixray.cli import main

    code = main(["--drawer", "fft", "--prompts", "a red circle", "--clip_models", str(tiny_checkpoint),
                 "--size", "32 24", "--iterations", "2", "--num_cuts", "2", "--device", "cpu",
                 "--outdir", str(tmp_path / "o"), "--quiet"])
    assert code == 0 and (tmp_path / "o" / "output.png").is_file()


def test_dwt_rejects_unknown_wavelets_and_damps_fine_details():
    from pixray.drawers.fft import Wavelets
    from pixray.settings import SettingsError

    with pytest.raises(SettingsError, match=r"'fft_wave'.*'coif99'.*coif2"):
        _fft("dwt", fft_wave="coif99")
    # A wavelet longer than the canvas is refused (it once crashed in the reflection padding).
    with pytest.raises(SettingsError, match=r"'fft_wave': 'dmey' \(filter length 62\) needs a canvas at "
                                            r"least 62 pixels a side, and this one is 48x32"):
        _fft("dwt", 48, 32, fft_wave="dmey")
    assert _fft("dwt", 62, 62, fft_wave="dmey").synth().shape == (1, 3, 62, 62)
    wavelets = Wavelets("coif2", 0.3, 64, 64)
    assert wavelets.levels == 2  # the most coif2 allows on 64 pixels
    # 2^j per level (a unit step moves its pixels by about one), details damped 0.3x per finer level.
    assert wavelets._weights() == pytest.approx([4.0, 1.2, 1.2, 1.2, 0.18, 0.18, 0.18])
