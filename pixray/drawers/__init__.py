"""Drawers by name. A new drawer is one file plus one line here."""

from __future__ import annotations

from ..registry import Registry
from .base import Drawer, VectorImage
from .clipdraw import ClipdrawDrawer
from .fast_pixel import FastPixelDrawer
from .fft import FftDrawer
from .line_sketch import LineSketchDrawer
from .pixel import PixelDrawer
from .vqgan import VqganDrawer

DRAWERS: Registry[type[Drawer]] = Registry("drawer", {
    "vqgan": VqganDrawer,
    "pixel": PixelDrawer,
    "fast_pixel": FastPixelDrawer,
    "fft": FftDrawer,
    "line_sketch": LineSketchDrawer,
    "clipdraw": ClipdrawDrawer,
})

__all__ = ["DRAWERS", "Drawer", "VectorImage"]
