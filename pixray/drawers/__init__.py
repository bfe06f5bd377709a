"""Drawers by name. A new drawer is one file plus one line here."""

from __future__ import annotations

from ..errors import SettingsError
from ..registry import Registry
from .base import Drawer, VectorImage
from .clipdraw import ClipdrawDrawer
from .fast_pixel import FastPixelDrawer
from .fft import FftDrawer
from .line_sketch import LineSketchDrawer
from .pixel import PixelDrawer
from .super_resolution import SuperResolutionDrawer
from .vdiff import VdiffDrawer
from .vqgan import VqganDrawer

DRAWERS: Registry[type[Drawer]] = Registry("drawer", {
    "vqgan": VqganDrawer,
    "pixel": PixelDrawer,
    "fast_pixel": FastPixelDrawer,
    "fft": FftDrawer,
    "line_sketch": LineSketchDrawer,
    "clipdraw": ClipdrawDrawer,
    "super_resolution": SuperResolutionDrawer,
    "vdiff": VdiffDrawer,
})



def require_image_encoding(drawer: str, setting: str) -> None:
    """Refuse ``setting`` for a drawer that cannot take its parameters from an image, naming those
    that can (see :attr:`Drawer.encodes_images`)."""
    drawer_cls = DRAWERS.lookup(drawer)
    if not drawer_cls.encodes_images:
        able = ", ".join(name for name, cls in DRAWERS.items() if cls.encodes_images)
        raise SettingsError(f"setting {setting!r} needs a drawer that takes its parameters from an image, "
                            f"and {drawer!r} {drawer_cls.image_encoding_refusal}; choose one of {able}")


__all__ = ["DRAWERS", "Drawer", "VectorImage", "require_image_encoding"]
