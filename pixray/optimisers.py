"""The optimisers Pixray offers, by Pixray's names: torch's, plus normalised gradient descent."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from .registry import Registry


class NormalisedGradientDescent(torch.optim.Optimizer):
    """Steps each parameter tensor along its gradient, scaled to a root-mean-square step of ``lr``.

    Adam equalises the step of every element, so elements the loss barely cares about move as far
    as the ones it does: with CLIP guidance that turns faint gradient noise into speckle. This keeps
    the gradient's own shape (an L2 steepest-descent step, as when attacking or visualising robust
    models) and only fixes its length, so ``lr`` means the same as for Adam (a typical per-element
    step) whatever the scale of the loss.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 0.1) -> None:
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                # A tensor scale rather than a Python number: no device sync per step.
                scale = group["lr"] * math.sqrt(p.numel()) / p.grad.norm().clamp_min(1e-30)
                p.sub_(p.grad * scale)


OPTIMISERS: Registry[type[torch.optim.Optimizer]] = Registry("optimiser", {
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
    "Adagrad": torch.optim.Adagrad,
    "Adamax": torch.optim.Adamax,
    "RAdam": torch.optim.RAdam,
    "RMSprop": torch.optim.RMSprop,
    "NGD": NormalisedGradientDescent,
})
