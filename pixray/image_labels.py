"""Pixray's image labels (``image_labels``, ``image_label_weight``): a pull in the drawer's own
parameter space.

The images (``|``-separated entries, each a file or a glob, ``{a,b}`` braces included, matching any
number; Pixray takes one glob) are stretched to the canvas and each turned into the parameters the
drawer would take from it; those vectors, each normalised, are averaged and normalised again, and
the loss is the spherical distance of the drawer's current parameters to that mean, times
``image_label_weight``, as Pixray computes it on its latent. Only drawers that take their
parameters from an image have such a space (:attr:`Drawer.encodes_images`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .drawers import Drawer, require_image_encoding
from .init_images import ImageReader, fitted
from .prompt_sources.image_prompts import matched_files
from .prompts import spherical_distance
from .settings import Plan, Settings


class ImageLabels:
    """The label images, (1,3,H,W) each in [0,1], and the loss's weight."""

    def __init__(self, images: list[torch.Tensor], weight: float) -> None:
        self.images, self.weight = images, weight
        self.drawer: Drawer | None = None
        self.target: torch.Tensor | None = None

    @classmethod
    def from_settings(cls, settings: Settings, plan: Plan, images: ImageReader) -> ImageLabels | None:
        """The labels the settings ask for, checked and read; None without ``image_labels``."""
        if not settings.image_labels or not settings.image_label_weight:
            return None
        require_image_encoding(settings.drawer, "image_labels")
        entries = [part.strip() for part in settings.image_labels.split("|") if part.strip()]
        if not entries:
            return None
        files = [name for matched in matched_files(entries, "image_labels") for name in matched]
        return cls([images.read(name, plan.width, plan.height, "image_labels") for name in files],
                   settings.image_label_weight)

    @torch.no_grad()
    def bind(self, drawer: Drawer) -> None:
        """Compute the target in ``drawer``'s parameter space (its state is left as it was)."""
        reference = drawer.trainable()[0]  # the device and dtype
        vectors = []
        for image in self.images:
            vector = drawer.parameter_vector_for(fitted(image.to(reference), drawer.height, drawer.width))
            vectors.append(F.normalize(vector, dim=0))
        self.drawer, self.target = drawer, F.normalize(torch.stack(vectors).mean(0), dim=0)

    def __call__(self) -> dict[str, torch.Tensor]:
        """The weighted loss (0-d) of the drawer's current parameters, named ``image_labels``."""
        if self.drawer is None or self.target is None:
            raise RuntimeError("ImageLabels.bind(drawer) comes first")
        now = F.normalize(self.drawer.parameter_vector(), dim=0)
        return {"image_labels": self.weight * spherical_distance(now[None], self.target[None])[0, 0]}
