"""CLIP's QuickGELU, ``x * sigmoid(1.702 x)``, as torch's fused SiLU kernels, keeping one tensor for
its backward instead of two.

open_clip computes it as three autograd ops, which keep both ``x`` and ``sigmoid(1.702 x)`` (each
as large as the MLP's hidden activations: 30 cutouts x 197 tokens x 3072 floats, 72 MB, per ViT-B/16
block) until the backward pass, whose elementwise products then take several passes over them. Since
``x * sigmoid(a x) = silu(a x) / a``, :func:`quick_gelu` keeps only ``a x``, and its gradient is
``silu'(a x)`` exactly (the two factors of ``a`` cancel): one fused kernel of torch's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from torch import nn

from ..module_classes import switch_class

_SLOPE = 1.702


class _QuickGELU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        scaled = x * _SLOPE
        ctx.save_for_backward(scaled)
        return F.silu(scaled).div_(_SLOPE)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (scaled,) = ctx.saved_tensors
        return torch.ops.aten.silu_backward(grad, scaled)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """``x * sigmoid(1.702 x)``, elementwise, any shape; its backward keeps only ``1.702 x``."""
    return _QuickGELU.apply(x)


class LeanQuickGELU(QuickGELU):
    """open_clip's QuickGELU module computed by :func:`quick_gelu` (no parameters, same results)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quick_gelu(x)


class FoldedQuickGELU(QuickGELU):
    """QuickGELU whose slope :func:`fold_quick_gelu` moved into the linear layers around it: ``silu``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


def fold_quick_gelu(model: nn.Module) -> int:
    """In each of ``model``'s MLPs (``c_fc``, QuickGELU, ``c_proj``), scale ``c_fc``'s weight and bias by
    1.702 and ``c_proj``'s weight by 1/1.702, and make the activation :class:`FoldedQuickGELU`:
    ``c_proj(silu(1.702 c_fc(x)) / 1.702)`` is the same MLP without the two elementwise passes over its
    hidden activations. Changes those parameters' values in place; returns how many MLPs were folded."""
    folded = 0
    for module in model.modules():
        fc, gelu, proj = (getattr(module, name, None) for name in ("c_fc", "gelu", "c_proj"))
        if (type(gelu) not in (QuickGELU, LeanQuickGELU) or not isinstance(fc, nn.Linear)
                or not isinstance(proj, nn.Linear)):
            continue
        with torch.no_grad():
            fc.weight.mul_(_SLOPE)
            if fc.bias is not None:
                fc.bias.mul_(_SLOPE)
            proj.weight.div_(_SLOPE)
        gelu.__class__ = FoldedQuickGELU
        folded += 1
    return folded


def use_lean_activations(model: nn.Module) -> int:
    """Switch every QuickGELU in ``model`` to :class:`LeanQuickGELU` in place; returns how many."""
    return switch_class(model, QuickGELU, LeanQuickGELU)
