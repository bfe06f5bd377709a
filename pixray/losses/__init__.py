"""Custom losses on the canvas by name. A new loss is one file plus one line here."""

from __future__ import annotations

from ..registry import Registry
from .aesthetic import AestheticLoss
from .base import Loss, LossContext
from .edge import EdgeLoss
from .gaussian import GaussianLoss
from .palette import PaletteLoss
from .saturation import SaturationLoss
from .smoothness import SmoothnessLoss
from .style import StyleLoss
from .symmetry import SymmetryLoss

LOSSES: Registry[type[Loss]] = Registry("loss", {
    "smoothness": SmoothnessLoss,
    "palette": PaletteLoss,
    "edge": EdgeLoss,
    "saturation": SaturationLoss,
    "symmetry": SymmetryLoss,
    "gaussian": GaussianLoss,
    "style": StyleLoss,
    "aesthetic": AestheticLoss,
})

__all__ = ["LOSSES", "Loss", "LossContext"]
