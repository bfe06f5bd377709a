"""A clamp to [0,1] whose gradient still points back into range (for drawers whose renders overshoot)."""

from __future__ import annotations

import torch


class _ClampWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        outside = x - x.clamp(0, 1)  # descent moves x by -grad: keep grad when it points inwards
        return grad * (grad * outside >= 0)


def clamp_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``x.clamp(0, 1)``; where ``x`` is out of range its gradient is kept when following it moves
    ``x`` back into range (a plain clamp would stop it there for good)."""
    return _ClampWithGrad.apply(x)
