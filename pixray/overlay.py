"""Pixray's overlays (``overlay_image``, ``overlay_every``, ``overlay_offset``, ``overlay_until``,
``overlay_alpha``): an image pasted over the canvas at regular steps and redrawn into the drawer.

At each step where ``step % overlay_every == overlay_offset`` (and before ``overlay_until``), before
the step's image is drawn, the overlay is composited over the current image by its opacity (or
``overlay_alpha`` everywhere) and the drawer takes its parameters from the result; the optimiser
keeps its state, as Pixray's. Only drawers that take their parameters from an image can
(:attr:`Drawer.encodes_images`).
"""

from __future__ import annotations

import torch

from .drawers import Drawer, require_image_encoding
from .init_images import ImageReader, fitted
from .options import SettingsError
from .settings import Plan, Settings
from .value_forms import iterations_of


class Overlay:
    """When and what to paste: ``image`` (1,4,H,W) straight RGBA in [0,1]."""

    def __init__(self, image: torch.Tensor, every: int, offset: int, until: int | None) -> None:
        self.image, self.every, self.offset, self.until = image, every, offset, until

    @classmethod
    def from_settings(cls, settings: Settings, plan: Plan, images: ImageReader) -> Overlay | None:
        """The overlay the settings ask for, checked and read; None without ``overlay_image``."""
        if not settings.overlay_image:
            return None
        require_image_encoding(settings.drawer, "overlay_image")
        every = iterations_of(settings.overlay_every, plan.iterations)
        offset = iterations_of(settings.overlay_offset, plan.iterations)
        if every < 1:
            raise SettingsError(f"setting 'overlay_every': {settings.overlay_every} is less than one step; "
                                "give at least 1 iteration")
        if offset >= every:
            raise SettingsError(f"setting 'overlay_offset': {offset} iterations is not less than "
                                f"overlay_every ({every}), so no step would take the overlay; give "
                                f"0 to {every - 1}")
        until = (iterations_of(settings.overlay_until, plan.iterations)
                 if settings.overlay_until is not None else None)
        image = images.read(settings.overlay_image, plan.width, plan.height, "overlay_image", mode="RGBA")
        if settings.overlay_alpha is not None:
            image[:, 3:] = settings.overlay_alpha / 255
        return cls(image, every, offset, until)

    def due(self, index: int) -> bool:
        """Whether step ``index`` starts with the overlay."""
        return index % self.every == self.offset and (self.until is None or index < self.until)

    @torch.no_grad()
    def apply(self, drawer: Drawer) -> None:
        """Paste the overlay over the drawer's current image and redraw the drawer from the result."""
        current = drawer.synth()[:, :3]  # an RGBA drawer's colours, as Pixray's RGB conversion
        overlay = fitted(self.image.to(current), *current.shape[-2:])  # the drawer may round the canvas
        alpha = overlay[:, 3:]
        drawer.reapply_image(overlay[:, :3] * alpha + current * (1 - alpha))
