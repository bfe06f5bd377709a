"""Pixray's init losses: keep the run near where it started.

``init_weight_pix`` is the mean absolute difference of the canvas from the init image (halved, as
Pixray); ``init_weight_dist`` the mean squared difference of the drawer's parameters from their
starting values (halved), and ``init_weight_cos`` their cosine distance, as Pixray computes both on
its drawers' latent. (``init_weight``, the spherical distance of the cutouts' embeddings to the init
image's, is a prompt source: ``pixray/prompt_sources/init_image.py``.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .drawers import Drawer
from .init_images import fitted
from .options import SettingsError
from .settings import Settings

#: The settings that need an init image.
NAMES = ("init_weight", "init_weight_dist", "init_weight_cos", "init_weight_pix")


def check_init_weights(settings: Settings) -> None:
    """Refuse init weights without an init image (a clear error rather than a crash later)."""
    given = [name for name in NAMES if getattr(settings, name)]
    if given and not settings.init_image:
        raise SettingsError(f"setting {given[0]!r} pulls towards the init image, and there is none; give "
                            "init_image or set it to 0")


class InitLosses:
    """The init losses a run asks for, against the drawer's starting state and the init image."""

    def __init__(self, settings: Settings, drawer: Drawer, init_image: torch.Tensor | None) -> None:
        self.pix, self.dist, self.cos = (settings.init_weight_pix, settings.init_weight_dist,
                                         settings.init_weight_cos)
        self.init_image = init_image
        self.drawer = drawer
        # The init image fitted to the canvas, on its device: made once (moving it there makes a GPU wait).
        self._fitted: tuple[tuple, torch.Tensor] | None = None
        self.start = drawer.parameter_vector().detach().clone() if self.dist or self.cos else None

    def __call__(self, canvas: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named losses (already weighted): of ``canvas`` (1,C,H,W) and the drawer's parameters."""
        losses = {}
        if self.pix and self.init_image is not None:
            target = self._target(canvas)
            losses["init_weight_pix"] = self.pix * F.l1_loss(canvas[:, :3], target) / 2
        if self.start is not None:
            now = self.drawer.parameter_vector()
            if self.dist:
                losses["init_weight_dist"] = self.dist * F.mse_loss(now, self.start) / 2
            if self.cos:
                losses["init_weight_cos"] = self.cos * (1 - F.cosine_similarity(now, self.start, dim=0))
        return losses

    def _target(self, canvas: torch.Tensor) -> torch.Tensor:
        """The init image (1,3,H,W) fitted to ``canvas``'s size, dtype and device."""
        key = (tuple(canvas.shape[-2:]), canvas.dtype, canvas.device)
        if self._fitted is None or self._fitted[0] != key:
            self._fitted = (key, fitted(self.init_image.to(canvas), *key[0]))
        return self._fitted[1]
