"""Pixray's ``auto_stop``: drop the learning rate when the loss stops improving, stop after the last drop.

Pixray counts a drop each time the loss has not beaten its best for 12 steps (and at each of
``learning_rate_drops``), dividing the rate by 10 and starting the count afresh; when that would
happen once more than there are drop points, the run stops. Pixray keeps the last image (going back
to the best one is commented out there); here the run ends on the best image it scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .drawers import Drawer

#: Steps without a new best loss before a drop (Pixray's ``iter_drop_delay``).
PATIENCE = 12


@dataclass
class AutoStop:
    """Watches each step's total loss; ``drops_allowed`` is how many drops come before the stop."""

    drops_allowed: int
    drops: int = 0
    since: int = 0  # the step the current count started from
    best: float = math.inf  # best loss since the last drop
    best_ever: float = math.inf
    best_index: int = -1
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    best_losses: dict[str, torch.Tensor] = field(default_factory=dict)

    def dropped(self, index: int) -> None:
        """A scheduled drop happened at step ``index``: it counts, and the count starts afresh."""
        self.drops += 1
        self.since, self.best = index, math.inf

    def observe(self, index: int, losses: dict[str, torch.Tensor], drawer: Drawer) -> str | None:
        """Note step ``index``'s losses (call before the update, so a best state is the one that
        scored them); returns ``"drop"``, ``"stop"`` or None. Reads the loss on the host."""
        loss = float(losses["total"])
        if loss < self.best_ever:
            self.best_ever, self.best_index, self.best_losses = loss, index, losses
            self.best_state = {k: v.detach().clone() for k, v in drawer.state_dict().items()}
        if loss < self.best:
            self.best, self.since = loss, index
            return None
        if index - self.since < PATIENCE:
            return None
        if self.drops >= self.drops_allowed:
            return "stop"
        self.dropped(index)
        return "drop"

    def restore_best(self, drawer: Drawer) -> None:
        """Put the drawer back in the state that scored the best loss."""
        drawer.load_state_dict(self.best_state)
