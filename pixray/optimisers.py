"""The optimisers Pixray offers, by Pixray's names: torch's, DiffGrad and AdamP (from the maintained
``pytorch-optimizer`` package; Pixray took them from ``torch-optimizer``), plus normalised gradient
descent."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from .registry import Registry


class NormalisedGradientDescent(torch.optim.Optimizer):
    """Steps each parameter tensor along its gradient, scaled to a root-mean-square step of ``lr``.

    Adam equalises the step of every element, so elements the loss barely cares about move as far
    as the ones it does: with CLIP guidance that turns faint gradient noise into speckle. This keeps
    the gradient's own shape (an L2 steepest-descent step, as when attacking or visualising robust
    models) and only fixes its length, so ``lr`` means the same as for Adam (a typical per-element
    step) whatever the scale of the loss.

    A parameter group may carry ``bounds`` (low, high: numbers or tensors broadcasting against its
    parameters), the box the drawer clamps them to after each step. Components that would push a
    parameter at a bound further out are dropped before the step is sized, so its length goes to
    the parameters that can still move rather than to ones the clamp will put back (projected
    gradient descent).
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float = 0.1) -> None:
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            bounds = group.get("bounds")
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if bounds is None else movable(p, p.grad, *bounds)
                # A tensor scale rather than a Python number: no device sync per step.
                scale = group["lr"] * math.sqrt(p.numel()) / grad.norm().clamp_min(1e-30)
                p.sub_(grad * scale)


def movable(param: torch.Tensor, grad: torch.Tensor, low: float | torch.Tensor,
            high: float | torch.Tensor) -> torch.Tensor:
    """``grad`` without the components that would move ``param`` (a descent step goes against the
    gradient) beyond ``low`` or ``high`` where it already sits at that bound."""
    pushing_out = ((param <= low) & (grad > 0)) | ((param >= high) & (grad < 0))
    return grad.masked_fill(pushing_out, 0)


Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


def _from_pytorch_optimizer(name: str) -> Callable[[Params, float], torch.optim.Optimizer]:
    """``pytorch_optimizer``'s optimiser ``name`` at Pixray's settings (its defaults, the step size
    given), imported when one is made: the package takes over a second to import."""
    def make(params: Params, lr: float) -> torch.optim.Optimizer:
        import pytorch_optimizer

        return getattr(pytorch_optimizer, name)(params, lr=lr)

    return make


OPTIMISERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimiser", {
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
    "Adagrad": torch.optim.Adagrad,
    "Adamax": torch.optim.Adamax,
    "DiffGrad": _from_pytorch_optimizer("DiffGrad"),
    "AdamP": _from_pytorch_optimizer("AdamP"),
    "RAdam": torch.optim.RAdam,
    "RMSprop": torch.optim.RMSprop,
    "NGD": NormalisedGradientDescent,
})
