"""Init images: reading an image file, a glob or a URL onto the canvas, within limits."""

from __future__ import annotations

import glob
import io
import os
import re
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .options import SettingsError

_T = TypeVar("_T")

#: Largest image file read, in pixels (a 50-megapixel photo is fine; a crafted 50000x50000 PNG of a few
#: hundred bytes would take 10 GB to decode). Images are resized to the canvas, so nothing is lost.
MAX_IMAGE_PIXELS = 64_000_000


def load_image(path: str | Path | BinaryIO, width: int, height: int, setting: str = "init_image",
               shown_as: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS,
               mode: str = "RGB") -> torch.Tensor:
    """The image file at ``path`` (or in an open binary file) as (1,C,height,width) in [0,1],
    stretched to the canvas as Pixray does: C is 3 for ``mode`` RGB, 4 for RGBA (straight opacity
    last; opaque where the file has none), 1 for L (grey).

    ``setting`` names the setting the path came from and ``shown_as`` how errors name the file
    (default: the path). Images over ``max_pixels`` are refused before they are decoded.
    """

    def decode(img: Image.Image) -> Image.Image:
        # JPEG decodes at a reduced scale when the canvas is much smaller (4x faster, 16x less memory);
        # the stored picture is turned afterwards, so a turned one asks for the sides swapped.
        img.draft("RGB", (2 * height, 2 * width) if _turned(img) else (2 * width, 2 * height))
        return as_shown(img, mode)

    img = _checked(path, setting, shown_as or repr(str(path)), max_pixels, decode)
    img = img.resize((width, height), Image.Resampling.LANCZOS)
    array = np.asarray(img, dtype=np.float32).reshape(height, width, -1) / 255
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def image_size(path: str | Path | BinaryIO, setting: str = "init_image", shown_as: str | None = None,
               max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """(width, height) of the image file at ``path``, from its header (nothing is decoded)."""
    return _checked(path, setting, shown_as or repr(str(path)), max_pixels,
                    lambda img: img.size[::-1] if _turned(img) else img.size)


def as_shown(img: Image.Image, mode: str = "RGB") -> Image.Image:
    """``img`` as image viewers show it: upright by its EXIF orientation, 8 bits a channel, in ``mode``."""
    upright = ImageOps.exif_transpose(img) if _orientation(img) != 1 else img
    return _eight_bit(upright).convert(mode)


def _turned(img: Image.Image) -> bool:
    """Whether the file's EXIF orientation (phone cameras set it) shows its stored picture turned a
    quarter: every viewer shows such a photo upright, so the canvas takes it upright too."""
    return _orientation(img) in (5, 6, 7, 8)


#: Formats whose EXIF Pillow reads with the header (a PNG's may follow the pixels: reading it decodes them).
_EXIF_IN_HEADER = ("JPEG", "MPO", "WEBP", "TIFF")


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1: as stored) of a file in one of :data:`_EXIF_IN_HEADER`; 1 otherwise, or
    when the EXIF is unreadable (the pixels may still be fine)."""
    if img.format not in _EXIF_IN_HEADER:
        return 1
    try:
        return int(img.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a damaged EXIF block of an untrusted file: show it as stored
        return 1


def _eight_bit(img: Image.Image) -> Image.Image:
    """``img`` with 16-bit or floating-point grey values scaled to 8 bits: Pillow's own conversion
    clips them at 255 (a 16-bit PNG came out nearly white). Floating point is read as [0, 1]."""
    if img.mode.startswith("I;16") or img.mode == "I":
        scale = 255 / 65535
    elif img.mode == "F":
        scale = 255
    else:
        return img
    grey = np.asarray(img, dtype=np.float64) * scale
    return Image.fromarray(grey.clip(0, 255).round().astype(np.uint8), mode="L")


def _checked(path: str | Path | BinaryIO, setting: str, name: str, max_pixels: int,
             use: Callable[[Image.Image], _T]) -> _T:
    """``use(image)`` of the opened image file, once its size is known to be within ``max_pixels``;
    every failure of an untrusted file becomes one :class:`SettingsError` naming ``setting``."""
    try:
        with warnings.catch_warnings():
            # Our own limit below is lower than Pillow's warning threshold and says what to do.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            if img.width * img.height > max_pixels:
                raise SettingsError(f"setting {setting!r}: image {name} is {img.width}x{img.height}, over "
                                    f"the limit of {max_pixels / 1e6:g} megapixels; scale it down first")
            return use(img)
    except SettingsError:
        raise
    except Image.DecompressionBombError:
        raise SettingsError(f"setting {setting!r}: image {name} is over the limit of {max_pixels / 1e6:g} "
                            "megapixels; scale it down first") from None
    except (OSError, UnidentifiedImageError) as exc:
        if isinstance(exc, UnidentifiedImageError):
            reason = "not an image format Pillow recognises"
        else:
            reason = exc.strerror or str(exc).replace(str(path), name)
        raise SettingsError(f"setting {setting!r}: cannot read image {name} (expected a PNG, JPEG, "
                            f"WebP or other image Pillow opens): {reason}") from None
    except Exception as exc:  # decoders of untrusted files raise many types (bombs, ValueError, EOFError)
        raise SettingsError(f"setting {setting!r}: image {name} is damaged or not supported "
                            f"({type(exc).__name__})") from None


#: Largest image a URL may deliver.
MAX_DOWNLOAD_BYTES = 50 << 20


def fetch_url(url: str, setting: str, max_bytes: int) -> bytes:
    """The bytes at ``url`` (at most ``max_bytes``), or a :class:`SettingsError` naming the setting."""
    request = urllib.request.Request(url, headers={"User-Agent": "pixray"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read(max_bytes + 1)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SettingsError(f"setting {setting!r}: cannot fetch {url!r}: {reason}") from None
    if len(data) > max_bytes:
        raise SettingsError(f"setting {setting!r}: {url!r} is over {max_bytes >> 20} MB")
    return data


def _one_file(value: str, setting: str) -> str:
    """``value`` itself (``~`` expanded, as a shell would: settings files are not read by one), or
    the one file a glob pattern in it matches."""
    value = os.path.expanduser(value)
    if not glob.has_magic(value) or Path(value).exists():
        return value
    matches = sorted(glob.glob(value))
    if len(matches) != 1:
        found = f"{len(matches)} files ({', '.join(matches[:3])}{', ...' if len(matches) > 3 else ''})"
        raise SettingsError(f"setting {setting!r}: the pattern {value!r} matches "
                            f"{found if matches else 'no file'}; name one image")
    return matches[0]


@dataclass(frozen=True)
class ImageReader:
    """How a run reads the image files its settings name (the CLI's: any readable file).

    ``uploads``: when set, only files directly inside this directory are read, and errors call
    them "the uploaded file": a server passes the directory its HTTP layer saves a request's
    files to, so a request can never read the server's own files nor learn whether a path exists.
    """

    max_pixels: int = MAX_IMAGE_PIXELS
    uploads: Path | None = None
    # URL -> its bytes: a run that asks an image's size first fetches it once.
    _fetched: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def read(self, value: str, width: int, height: int, setting: str, mode: str = "RGB") -> torch.Tensor:
        """The image named by setting ``setting`` as (1,C,height,width) in [0,1] (C as
        :func:`load_image`'s ``mode``): a file, a glob matching one file, or (without ``uploads``)
        an http(s) URL, as Pixray reads it."""
        source, shown_as = self._source(value, setting)
        return load_image(source, width, height, setting, shown_as, self.max_pixels, mode)

    def read_scaled(self, value: str, setting: str, scale: Callable[[int, int], float],
                    mode: str = "RGB") -> torch.Tensor:
        """The image :meth:`read` would read, at its own aspect: its (width, height) times
        ``scale(width, height)`` (from the header), rounded, at least one pixel a side."""
        width, height = self.size(value, setting)
        factor = scale(width, height)
        return self.read(value, max(1, round(width * factor)), max(1, round(height * factor)), setting, mode)

    def size(self, value: str, setting: str) -> tuple[int, int]:
        """(width, height) of the image :meth:`read` would read, from its header."""
        source, shown_as = self._source(value, setting)
        return image_size(source, setting, shown_as, self.max_pixels)

    def read_bytes(self, value: str, setting: str, max_bytes: int) -> bytes:
        """The bytes of the file (or, without ``uploads``, URL) setting ``setting`` names, under the
        same rules as images; at most ``max_bytes``."""
        source, shown_as = self._source(value, setting)
        name = shown_as or repr(value)
        try:
            if isinstance(source, (str, Path)):
                with open(source, "rb") as f:
                    data = f.read(max_bytes + 1)
            else:
                data = source.read(max_bytes + 1)
        except OSError as exc:
            raise SettingsError(f"setting {setting!r}: cannot read {name}: {exc.strerror or exc}") from None
        if len(data) > max_bytes:
            raise SettingsError(f"setting {setting!r}: {name} is over {max_bytes} bytes")
        return data

    def read_text(self, value: str, setting: str, max_bytes: int) -> str:
        """The UTF-8 text of the file (or URL) setting ``setting`` names, as :meth:`read_bytes`."""
        data = self.read_bytes(value, setting, max_bytes)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            name = "the uploaded file" if self.uploads is not None else repr(value)
            raise SettingsError(f"setting {setting!r}: {name} is not UTF-8 text") from None

    def _source(self, value: str, setting: str) -> tuple[str | Path | BinaryIO, str | None]:
        """What to open for ``value``, and how errors name it (None: by its path)."""
        if self.uploads is None:
            if re.match(r"https?://", value):
                if value not in self._fetched:
                    self._fetched[value] = fetch_url(value, setting, MAX_DOWNLOAD_BYTES)
                return io.BytesIO(self._fetched[value]), repr(value)
            return _one_file(value, setting), None
        path = Path(value)
        if path.resolve().parent != self.uploads.resolve():
            raise SettingsError(f"setting {setting!r}: a request may only use files it sends (a URL or a "
                                "data URI in a file input), not paths on the server")
        return path, "the uploaded file"


#: Longest side at which an image that a part resizes itself (to each canvas) is read.
NATIVE_SIDE = 2048


def read_native(images: ImageReader, value: str, setting: str, mode: str = "RGB") -> torch.Tensor:
    """The image setting ``setting`` names at its own size (at most :data:`NATIVE_SIDE` a side), as
    :meth:`ImageReader.read` gives it, for parts that resize it themselves."""
    return images.read_scaled(value, setting, lambda w, h: min(1.0, NATIVE_SIDE / max(w, h)), mode)


def fitted(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``image`` (1,C,h,w) stretched to (1,C,height,width) (bilinear, antialiased), itself when it
    is that size already: for images read at the planned canvas when a drawer rounds it."""
    if image.shape[-2:] == (height, width):
        return image
    return torch.nn.functional.interpolate(image, size=(height, width), mode="bilinear", antialias=True)


def to_pil(image: torch.Tensor) -> Image.Image:
    """A PIL image of ``image`` (1,3,H,W) or (3,H,W) in [0,1]."""
    array = image.detach().float().squeeze(0).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0)
    return Image.fromarray(array.cpu().numpy())
