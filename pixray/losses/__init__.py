"""Custom losses on the canvas by name. A new loss is one file plus one line here."""

from __future__ import annotations

from ..registry import Registry
from .base import CanvasLoss
from .edge import EdgeLoss
from .palette import PaletteLoss
from .smoothness import SmoothnessLoss

LOSSES: Registry[type[CanvasLoss]] = Registry("loss", {
    "smoothness": SmoothnessLoss,
    "palette": PaletteLoss,
    "edge": EdgeLoss,
})

__all__ = ["LOSSES", "CanvasLoss"]
