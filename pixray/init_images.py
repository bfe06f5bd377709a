"""Starting canvases: an init image from a file, or one of Pixray's noise images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .options import SettingsError

NOISE_KINDS = ("pixels", "gradient", "snow", "none")


def noise_image(kind: str, width: int, height: int, generator: torch.Generator) -> torch.Tensor:
    """A starting canvas (1,3,height,width) in [0,1].

    pixels: a random colour per pixel; gradient: a blend between two
    random colours along a random direction; snow: per-pixel grey noise; none: flat mid grey.
    """
    device = generator.device
    if kind == "pixels":
        return torch.rand(1, 3, height, width, generator=generator, device=device)
    if kind == "gradient":
        a, b = torch.rand(2, 3, 1, 1, generator=generator, device=device)
        angle = torch.rand((), generator=generator, device=device) * 2 * torch.pi
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height, device=device),
                                torch.linspace(-1, 1, width, device=device), indexing="ij")
        t = ((xs * angle.cos() + ys * angle.sin()) / 2**0.5 + 1) / 2
        return (a * (1 - t) + b * t).unsqueeze(0)
    if kind == "snow":
        grey = torch.rand(1, 1, height, width, generator=generator, device=device)
        return grey.expand(1, 3, height, width).contiguous()
    if kind == "none":
        return torch.full((1, 3, height, width), 0.5, device=device)
    raise SettingsError(f"init_noise {kind!r} is not allowed; expected one of {', '.join(NOISE_KINDS)}")


def load_image(path: str | Path, width: int, height: int, setting: str = "init_image") -> torch.Tensor:
    """The image file at ``path`` as (1,3,height,width) in [0,1] (resized to fill, cropped to fit).

    ``setting`` names the setting the path came from, for the error message.
    """
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise SettingsError(f"setting {setting!r}: cannot read image {str(path)!r} (expected a PNG, JPEG, "
                            f"WebP or other image Pillow opens): {exc}") from exc
    scale = max(width / img.width, height / img.height)
    size = (max(width, round(img.width * scale)), max(height, round(img.height * scale)))
    img = img.resize(size, Image.Resampling.LANCZOS)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    img = img.crop((left, top, left + width, top + height))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1).unsqueeze(0)


def to_pil(image: torch.Tensor) -> Image.Image:
    """A PIL image of ``image`` (1,3,H,W) or (3,H,W) in [0,1]."""
    array = image.detach().float().squeeze(0).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0)
    return Image.fromarray(array.cpu().numpy())
