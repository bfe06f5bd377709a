"""Spot prompts (``spot_prompts``, ``spot_prompts_off``, ``spot_file``): text prompts that see only
part of the canvas.

``spot_file`` is a mask stretched to the canvas: its light part (grey at least half) is the spot,
seen by ``spot_prompts``; its dark part is seen by ``spot_prompts_off``. Each sees the canvas black
elsewhere, through the same cutouts as the whole canvas's prompts, so its gradient never reaches
pixels outside its part. Without ``spot_file`` the spot is a centred disc, the size of Pixray's
shipped masks: 0.47 of the side on a square canvas, 0.6 of the short side on others. (Pixray's
masks mark the spot in black: invert such a file to use it here.) Prompts take the text prompts'
forms, phases included.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..init_images import ImageReader, fitted
from ..options import SettingsError
from ..prompts import Phase, parse_schedule
from ..settings import Plan, Settings
from .text import TextPrompts

#: Diameter of the default spot as a fraction of the canvas's short side: (square, other shapes).
SPOT_DIAMETER = (0.47, 0.6)


def default_spot(width: int, height: int) -> torch.Tensor:
    """The default mask, (1,1,height,width): 1 inside the centred disc, 0 elsewhere."""
    diameter = min(width, height) * SPOT_DIAMETER[0 if width == height else 1]
    y = torch.arange(height, dtype=torch.float32) + 0.5 - height / 2
    x = torch.arange(width, dtype=torch.float32) + 0.5 - width / 2
    inside = y[:, None] ** 2 + x[None, :] ** 2 <= (diameter / 2) ** 2
    return inside.float()[None, None]


class SpotPrompts(TextPrompts):
    """Prompts seeing the light part of the mask (``spot_prompts``)."""

    setting: ClassVar[str] = "spot_prompts"
    light: ClassVar[bool] = True

    def __init__(self, phases: list[Phase], mask: torch.Tensor) -> None:
        super().__init__(phases)
        self.mask = mask  # (1,1,H,W) grey in [0,1] at the planned canvas

    @classmethod
    def from_settings(cls, settings: Settings, plan: Plan, images: ImageReader) -> SpotPrompts | None:
        if settings.spot_file and not (settings.spot_prompts.strip() or settings.spot_prompts_off.strip()):
            raise SettingsError("setting 'spot_file' shapes spot prompts, and there are none; give "
                                "spot_prompts or spot_prompts_off")
        text: str = getattr(settings, cls.setting)
        phases = [phase for phase in parse_schedule(text, plan.iterations, cls.setting) if phase.prompts]
        if not phases:
            return None
        if settings.spot_file:
            mask = images.read(settings.spot_file, plan.width, plan.height, "spot_file", mode="L")
        else:
            mask = default_spot(plan.width, plan.height)
        part = (mask >= 0.5) if cls.light else (mask < 0.5)
        if not part.any():
            raise SettingsError(f"setting 'spot_file': the mask has no {'light' if cls.light else 'dark'} "
                                f"part, so {cls.setting} would see nothing")
        return cls(phases, mask)

    def region(self, height: int, width: int) -> torch.Tensor:
        grey = fitted(self.mask, height, width)
        return (grey >= 0.5 if self.light else grey < 0.5).float()

    def in_force(self, index: int) -> str | None:
        text = super().in_force(index)
        return None if text is None else f"{self.setting}: {text}"


class SpotOffPrompts(SpotPrompts):
    """Prompts seeing the dark part of the mask (``spot_prompts_off``)."""

    setting = "spot_prompts_off"
    light = False
