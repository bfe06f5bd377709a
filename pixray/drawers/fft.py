"""``fft``: the image as a decaying frequency spectrum (Aphantasia's parametrisation), no weights needed.

``fft_use: fft`` learns a 2-D real spectrum scaled by 1/frequency^fft_decay, so low frequencies
move first and images stay smooth; an inverse FFT, a colour decorrelation and a sigmoid give the
image. ``fft_use: dwt`` learns wavelet coefficients (``fft_wave``, up to 3 levels via ptwt) with the
detail bands of each finer level damped by another factor ``fft_sharp``. ``fft_use: pixel`` learns
the pixels directly in the same colour space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..options import SettingsError, option
from .base import Drawer

# Square root of the colour correlation of natural images (ImageNet), from Lucid/Aphantasia.
_COLOUR_SVD_SQRT = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))
_EPS = 1e-4  # keeps logit() finite when initialising from pure black or white


@dataclass(frozen=True)
class FftOptions:
    fft_use: str = option("fft", "Parametrisation: a decaying spectrum, wavelets or plain pixels",
                          choices=["fft", "dwt", "pixel"])
    fft_decay: float = option(1.5, "Spectrum scale 1/frequency^decay: higher is smoother",
                              minimum=0, maximum=5)
    fft_colors: float = option(1.5, "Colour saturation of the decorrelated colour space",
                               minimum=0.1, maximum=10)
    fft_wave: str = option("coif2", "Wavelet of fft_use: dwt (any discrete PyWavelets name)")
    fft_sharp: float = option(0.3, "fft_use: dwt: each finer level's details are scaled by this once more",
                              minimum=0, maximum=10)
    fft_lrate: float = option(0.3, "Learning rate of this drawer when learning_rate is unset",
                              minimum=1e-6, maximum=10)


def colour_matrix(colors: float) -> torch.Tensor:
    """(3,3) map from decorrelated colour space to RGB; ``colors`` > 1 saturates."""
    m = torch.tensor(_COLOUR_SVD_SQRT, dtype=torch.float64)
    m = m / torch.tensor([colors, 1.0, 1.0], dtype=torch.float64)
    return (m / m.norm(dim=0).max()).float()


def spectrum_scale(height: int, width: int, decay: float) -> torch.Tensor:
    """(H, W//2+1) amplitude scale of an rfft2 spectrum: sqrt(H*W) * (f0 / max(f, f0))^decay, f0 = 1/max(H,W).

    The sqrt(H*W) undoes the orthonormal inverse FFT's 1/sqrt(H*W), so a unit change of the
    smoothest coefficients moves the image's logits by about one whatever the canvas size and
    decay: the step size (fft_lrate) means the same on every canvas.
    """
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    lowest = 1.0 / max(height, width)
    freq = (fx**2 + fy**2).sqrt().clamp(min=lowest)
    return (lowest / freq).pow(decay) * (height * width) ** 0.5


class FftDrawer(Drawer):
    """Image = sigmoid(colour_matrix @ signal), signal = irfft2(spectrum * scale) or the pixels."""

    Options = FftOptions

    def __init__(self, options: FftOptions, width: int, height: int) -> None:
        super().__init__(options, width, height)
        self.register_buffer("colours", colour_matrix(options.fft_colors))
        self.register_buffer("scale", spectrum_scale(height, width, options.fft_decay))
        if options.fft_use == "dwt":
            self.wavelets = Wavelets(options.fft_wave, options.fft_sharp, height, width)
            self.params = nn.ParameterList(torch.zeros_like(c) for c in self.wavelets.layout())
        else:
            shape = (1, 3, *self.scale.shape, 2) if options.fft_use == "fft" else (1, 3, height, width)
            self.params = nn.Parameter(torch.zeros(shape))

    def learning_rate(self, from_image: bool = False) -> float:
        return self.options.fft_lrate

    def _signal(self) -> torch.Tensor:
        if self.options.fft_use == "pixel":
            return self.params
        if self.options.fft_use == "dwt":
            return self.wavelets.compose(list(self.params))
        spectrum = torch.view_as_complex(self.params) * self.scale
        return torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho")

    def synth(self) -> torch.Tensor:
        rgb = torch.einsum("ij,bjhw->bihw", self.colours, self._signal())
        return torch.sigmoid(rgb)

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor, generator: torch.Generator) -> None:
        """Exact inverse of :meth:`synth` (up to the logit's clamp at 1e-4 from 0 and 1)."""
        logits = torch.logit(image.to(self.colours).clamp(_EPS, 1 - _EPS))
        signal = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.colours), logits)
        if self.options.fft_use == "dwt":
            for param, coeff in zip(self.params, self.wavelets.decompose(signal), strict=True):
                param.copy_(coeff)
            return
        if self.options.fft_use == "pixel":
            self.params.copy_(signal)
            return
        spectrum = torch.fft.rfft2(signal, norm="ortho") / self.scale
        self.params.copy_(torch.view_as_real(spectrum))


class Wavelets:
    """A 2-D wavelet decomposition as a flat list of tensors, details damped level by level.

    ``decompose`` and ``compose`` are exact inverses; the list holds the approximation, then the
    three detail bands of each level from coarsest to finest.
    """

    def __init__(self, wave: str, sharp: float, height: int, width: int) -> None:
        import pywt  # imported here: only this parametrisation needs it

        if wave not in pywt.wavelist(kind="discrete"):
            raise SettingsError(f"setting 'fft_wave': {wave!r} is not allowed; expected a discrete "
                                f"wavelet: {', '.join(pywt.wavelist(kind='discrete'))}")
        self.wavelet = pywt.Wavelet(wave)
        self.height, self.width = height, width
        max_level = pywt.dwt_max_level(min(height, width), self.wavelet.dec_len)
        if min(height, width) < self.wavelet.dec_len:  # its reflection padding would outgrow the canvas
            taps = self.wavelet.dec_len
            raise SettingsError(f"setting 'fft_wave': {wave!r} (filter length {taps}) needs a canvas at "
                                f"least {taps} pixels a side, and this one is {width}x{height}; choose "
                                "a shorter wavelet (haar, db2, sym4) or a larger size")
        self.levels = max(1, min(3, max_level))
        self.sharp = sharp

    def _weights(self) -> list[float]:
        """Scale of each coefficient band: approximation, then details from coarsest to finest.

        A level-j basis function of the orthonormal transform spreads over ~2^j x 2^j pixels with
        amplitude 2^-j, so each band is scaled by 2^j: a unit step of any coefficient moves its
        pixels' logits by about one (as fft's spectrum scale does). Details are damped by
        ``sharp`` once more per finer level.
        """
        weights = [2.0 ** self.levels]
        for depth in range(self.levels):  # depth 0 = the coarsest detail level, j = levels
            weights += [2.0 ** (self.levels - depth) * self.sharp ** (depth + 1)] * 3
        return weights

    def layout(self) -> list[torch.Tensor]:
        """Zero tensors shaped like the coefficients of a (1,3,H,W) image."""
        return self.decompose(torch.zeros(1, 3, self.height, self.width))

    def decompose(self, signal: torch.Tensor) -> list[torch.Tensor]:
        import ptwt

        coeffs = ptwt.wavedec2(signal, self.wavelet, level=self.levels, mode="reflect")
        flat = [coeffs[0], *(band for detail in coeffs[1:] for band in detail)]
        return [c / w if w else torch.zeros_like(c) for c, w in zip(flat, self._weights(), strict=True)]

    def compose(self, flat: list[torch.Tensor]) -> torch.Tensor:
        import ptwt
        from ptwt.constants import WaveletDetailTuple2d

        scaled = [c * w for c, w in zip(flat, self._weights(), strict=True)]
        details = [WaveletDetailTuple2d(*scaled[i:i + 3]) for i in range(1, len(scaled), 3)]
        image = ptwt.waverec2((scaled[0], *details), self.wavelet)
        return image[..., : self.height, : self.width]
