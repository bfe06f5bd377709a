"""Linear layers whose bias is added inside oneDNN's matmul on the CPU, with the same results.

torch's ``addmm`` on the CPU first copies the bias into every row of the output and then accumulates
the product on top of it: one more pass over the whole output (a ViT-B/16 MLP's hidden activations
are 197 x 3072 values per cutout). Inside a step, with the caches full of other activations, that
copy ran at a few GB/s and took about as long as a sixth of the matmul itself (docs/performance.md has
the profile). oneDNN's linear primitive adds the bias while it writes each output tile.
:func:`linear` takes that path for a frozen bfloat16 weight on a CPU with oneDNN's bfloat16 kernels,
and for a frozen float32 weight where oneDNN multiplies float32 faster than torch's own kernels (MKL's,
which take none of their AVX-512 kernels on AMD's CPUs:
:func:`~pixray.perceptors.onednn_fusion.onednn_multiplies_float32`), and computes its input's gradient
itself (``grad @ weight``, what ``addmm``'s backward computes; in float32 by oneDNN too); elsewhere it is
``F.linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from ..module_classes import switch_class
from .onednn_fusion import fused_dtype, linear_fuses


class _FusedBiasLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")

    @staticmethod
    @once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (weight,) = ctx.saved_tensors
        # One matmul over the flattened rows: ``matmul`` on a non-contiguous (B, L, N) gradient (the
        # attention pool's heads) would expand the weight to (B, N, K) and copy it for a bmm.
        rows = grad.reshape(-1, grad.shape[-1])
        if weight.dtype == torch.float32:  # torch's mm is MKL's in float32: oneDNN's, as the forward
            rows = torch.ops.mkldnn._linear_pointwise(rows, weight.t(), None, "none", [], "")
        else:
            rows = rows.mm(weight)
        return rows.view(*grad.shape[:-1], weight.shape[1]), None, None


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``: x (..., K), weight (N, K), bias (N,) → (..., N); with a frozen
    weight and bias on the CPU where :func:`~pixray.perceptors.onednn_fusion.linear_fuses` holds for
    their dtype (bfloat16; float32 on some CPUs), one oneDNN matmul that adds the bias as it writes the
    output (its input's gradient is ``grad @ weight``, in that dtype, cast back to ``x``'s)."""
    dtype = fused_dtype(x, weight, bias, linear_fuses)
    if dtype is None:
        return F.linear(x, weight, bias)
    return _FusedBiasLinear.apply(x.to(dtype), weight, bias)


class FusedBiasLinear(nn.Linear):
    """``nn.Linear`` computed by :func:`linear` (same parameters and state dict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def use_fused_bias_linears(model: nn.Module) -> int:
    """Switch every plain ``nn.Linear`` in ``model`` (and ``nn.MultiheadAttention``'s out-projection)
    to :class:`FusedBiasLinear` in place; returns how many were switched."""
    return switch_class(model, (nn.Linear, NonDynamicallyQuantizableLinear), FusedBiasLinear)
