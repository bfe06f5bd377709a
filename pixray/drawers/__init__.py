"""Drawers by name. A new drawer is one file plus one line here."""

from __future__ import annotations

from ..registry import Registry
from .base import Drawer
from .fast_pixel import FastPixelDrawer
from .fft import FftDrawer
from .pixel import PixelDrawer
from .vqgan import VqganDrawer

DRAWERS: Registry[type[Drawer]] = Registry("drawer", {
    "vqgan": VqganDrawer,
    "pixel": PixelDrawer,
    "fast_pixel": FastPixelDrawer,
    "fft": FftDrawer,
})

__all__ = ["DRAWERS", "Drawer"]
