"""A faster self-attention for CLIP's transformer blocks, with the same weights and results.

open_clip's blocks call ``nn.MultiheadAttention``. With gradients on (the engine backpropagates
through the perceptor to the canvas), torch runs its general path: the batch is turned
sequence-first, the packed q/k/v projection runs on that non-contiguous view, and its backward
materialises the projection weight once per sequence position (a [197, 768, 2304] copy per ViT-B/16
block), then attention is plain matmuls. :class:`FastSelfAttention` projects the contiguous
batch-first input once, splits heads with a view, and calls ``scaled_dot_product_attention`` (a
fused kernel on CPU and GPU). It is the same module with the same parameters and state dict (only
its class changes), and falls back to torch's path for anything but plain self-attention.

In bfloat16 or float16 on a CPU, :func:`attend` computes the heads as two batched matmuls around a
softmax instead: torch's fused CPU kernel is written for long sequences, and at CLIP's (50-577
tokens) its backward ran at a small fraction of the matmul units' speed (docs/performance.md has the figures).
The matmul form keeps each head's attention probabilities for the backward pass, which at these
lengths is small beside a block's other activations. A block's self-attention (no mask) goes further:
:class:`PackedHeadsAttention` lays the packed q/k/v projection out head by head once, so every batched
matmul, forward and backward, reads contiguous operands, and writes the three gradients straight into
one packed gradient (autograd's views would copy strided heads for each matmul and stack the three).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ..module_classes import switch_class
from .fused_bias_linear import linear


def packed_projection(attn: nn.MultiheadAttention) -> bool:
    """Whether ``attn`` projects queries, keys and values with one packed, biased weight (rows q, k,
    v), with nothing added to the keys: what :func:`attend`'s callers slice."""
    return (attn._qkv_same_embed_dim and attn.in_proj_bias is not None and attn.bias_k is None
            and not attn.add_zero_attn)


def _matmul_form(t: torch.Tensor) -> bool:
    """Whether attention over ``t`` runs as batched matmuls (bfloat16 or float16 on the CPU) rather
    than torch's fused kernel."""
    return t.device.type == "cpu" and t.dtype in (torch.bfloat16, torch.float16)


def heads_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                    attn_mask: torch.Tensor | None = None, dropout: float = 0.0) -> torch.Tensor:
    """Multi-head attention of projected, batch-first queries (B,Lq,D) over keys and values (B,L,D)
    (views are fine) in ``heads`` heads of width D / heads, before any out-projection: (B,Lq,D).
    ``scaled_dot_product_attention``, or :func:`matmul_attention` in bfloat16 or float16 on the CPU.
    ``attn_mask`` as SDPA reads it (True or 0 keeps)."""
    batch, length, width = q.shape

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (heads, width // heads)).transpose(1, 2)

    attention = matmul_attention if _matmul_form(q) else F.scaled_dot_product_attention
    out = attention(split(q), split(k), split(v), attn_mask=attn_mask, dropout_p=dropout)
    return out.transpose(1, 2).reshape(batch, length, width)


def attend(attn: nn.MultiheadAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``attn``'s heads over projected, batch-first queries (B,Lq,D) and keys and values (B,L,D)
    through :func:`heads_attention` and the out-projection: (B,Lq,D)."""
    dropout = attn.dropout if attn.training else 0.0
    return attn.out_proj(heads_attention(q, k, v, attn.num_heads, attn_mask, dropout))


def matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
                     dropout_p: float = 0.0) -> torch.Tensor:
    """``scaled_dot_product_attention``'s result for queries (..., Lq, E), keys (..., L, E) and values
    (..., L, Ev) as ``softmax(q kᵀ / √E + mask) v`` in two batched matmuls: (..., Lq, Ev). ``attn_mask``
    as SDPA reads it (a bool mask keeps where True; a float one is added)."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if attn_mask is not None:
        scores = (scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool
                  else scores + attn_mask)
    weights = scores.softmax(-1)
    if dropout_p:
        weights = F.dropout(weights, dropout_p)
    return weights.to(v.dtype) @ v


class PackedHeadsAttention(torch.autograd.Function):
    """Unmasked multi-head self-attention over a packed, batch-first q/k/v projection (B, L, 3·D), rows
    q, k, v as ``nn.MultiheadAttention`` packs them: the heads' outputs (B, L, D) before the
    out-projection, ``softmax(q kᵀ / √E) v`` for each head of width E = D / heads.

    The forward lays the projection out once as (3, B·heads, L, E), contiguous, and keeps it with the
    attention probabilities (B·heads, L, L); the backward computes the gradients of q, k and v as
    batched matmuls on those contiguous heads, into one (3, B·heads, L, E) tensor that it lays back out
    as the packed projection's gradient. Used on the CPU in bfloat16 and float16, where the batched
    matmuls' speed depends on their operands' layout; any dtype computes the same values."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, packed: torch.Tensor, heads: int) -> torch.Tensor:
        batch, length, width = packed.shape[0], packed.shape[1], packed.shape[2] // 3
        head_width = width // heads
        laid_out = (packed.reshape(batch, length, 3, heads, head_width).permute(2, 0, 3, 1, 4)
                    .reshape(3, batch * heads, length, head_width))
        q, k, v = laid_out.unbind(0)
        scale = head_width ** -0.5
        # beta=0: baddbmm ignores its (uninitialised) input and writes the scaled product.
        scores = torch.baddbmm(q.new_empty(batch * heads, length, length), q, k.transpose(1, 2),
                               beta=0, alpha=scale)
        probs = scores.softmax(-1)
        del scores
        out = torch.bmm(probs, v)
        ctx.save_for_backward(laid_out, probs)
        ctx.scale = scale
        return out.view(batch, heads, length, head_width).transpose(1, 2).reshape(batch, length, width)

    @staticmethod
    @once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        laid_out, probs = ctx.saved_tensors
        q, k, v = laid_out.unbind(0)
        batch_heads, length, head_width = q.shape
        batch, width = grad.shape[0], grad.shape[-1]
        heads = batch_heads // batch
        grad_heads = grad.reshape(batch, length, heads, head_width).transpose(1, 2).reshape(q.shape)
        grads = torch.empty_like(laid_out)
        torch.bmm(probs.transpose(1, 2), grad_heads, out=grads[2])
        # The scale folded into the probabilities' gradient serves both q's and k's.
        grad_probs = torch.baddbmm(probs.new_empty(probs.shape), grad_heads, v.transpose(1, 2),
                                   beta=0, alpha=ctx.scale)
        grad_scores = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
        del grad_probs
        torch.bmm(grad_scores, k, out=grads[0])
        torch.bmm(grad_scores.transpose(1, 2), q, out=grads[1])
        packed = grads.view(3, batch, heads, length, head_width).permute(1, 3, 0, 2, 4)
        return packed.reshape(batch, length, 3 * width), None


class FastSelfAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose self-attention (query, key and value the same tensor) runs as
    one batch-first projection and ``scaled_dot_product_attention`` (unmasked in bfloat16 or float16 on
    the CPU: :class:`PackedHeadsAttention`); other calls are torch's."""

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        plain = (query is key and key is value and key_padding_mask is None and not need_weights
                 and packed_projection(self) and query.dim() == 3 and not is_causal)
        if not plain:
            return super().forward(query, key, value, key_padding_mask, need_weights, attn_mask,
                                   average_attn_weights, is_causal)
        x = query if self.batch_first else query.transpose(0, 1)
        packed = linear(x, self.in_proj_weight, self.in_proj_bias)
        if attn_mask is None and not self.training and _matmul_form(packed):
            out = self.out_proj(PackedHeadsAttention.apply(packed, self.num_heads))
        else:
            q, k, v = packed.unflatten(-1, (3, -1)).unbind(-2)
            if attn_mask is not None:
                # torch's path adds a float mask and excludes where a bool mask is True; SDPA adds a
                # float mask of the query's dtype and keeps where a bool mask is True.
                attn_mask = ~attn_mask if attn_mask.dtype == torch.bool else attn_mask.to(q.dtype)
            out = attend(self, q, k, v, attn_mask)
        return (out if self.batch_first else out.transpose(0, 1)), None


def use_fast_attention(model: nn.Module) -> int:
    """Switch every ``nn.MultiheadAttention`` in ``model`` to :class:`FastSelfAttention` in place;
    returns how many were switched (0 for a model without them, e.g. a ResNet's attention pool)."""
    return switch_class(model, nn.MultiheadAttention, FastSelfAttention)
