"""A ViT's last transformer block computed for the class token alone, with the same weights and results.

A CLIP ViT that pools its class token (OpenAI's and LAION's: ``pool_type='tok'``, no attentional
pooler) reads nothing of its last block's output but position 0. That block still needs every token's
keys and values, but the query, attention output, out-projection and MLP of the other tokens are
wasted: about 10/12 of that block's matmuls (some 7 % of a 12-block ViT-B tower's), in the forward
pass and again in the backward to the canvas. :class:`ClassTokenBlock` computes them for the
class token only and returns a sequence of length 1, which ``ln_post`` and the class-token pool read as
before.
"""

from __future__ import annotations

import torch
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import nn

from .attention import attend, packed_projection
from .fused_bias_linear import linear


class ClassTokenBlock(ResidualAttentionBlock):
    """open_clip's ``ResidualAttentionBlock`` whose output is the class token's row only:
    (B,L,D) in, (B,1,D) out (sequence-first (L,B,D) → (1,B,D) when the attention is not batch-first).
    Other calls (cross-attention, a mask) are the stock block's."""

    def forward(self, q_x: torch.Tensor, k_x: torch.Tensor | None = None, v_x: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if k_x is not None or v_x is not None or attn_mask is not None:
            return super().forward(q_x, k_x, v_x, attn_mask)
        attn = self.attn
        x = q_x if attn.batch_first else q_x.transpose(0, 1)
        width = x.shape[-1]
        normed = self.ln_1(x)
        weight, bias = attn.in_proj_weight, attn.in_proj_bias
        q = linear(normed[:, :1], weight[:width], bias[:width])
        k, v = linear(normed, weight[width:], bias[width:]).unflatten(-1, (2, -1)).unbind(-2)
        first = x[:, :1] + self.ls_1(attend(attn, q, k, v))
        first = first + self.ls_2(self.mlp(self.ln_2(first)))
        return first if attn.batch_first else first.transpose(0, 1)


def use_class_token_block(visual: nn.Module) -> bool:
    """Switch ``visual``'s last block to :class:`ClassTokenBlock` in place when nothing reads the
    other tokens' outputs (a ViT pooling its class token, without an attentional pooler or token
    outputs); returns whether it was switched."""
    if not isinstance(visual, VisionTransformer):
        return False
    if visual.attn_pool is not None or visual.pool_type != "tok" or visual.output_tokens:
        return False
    blocks = visual.transformer.resblocks
    last = blocks[-1] if len(blocks) else None
    if type(last) is not ResidualAttentionBlock or hasattr(last, "ln_1_kv"):
        return False
    if not packed_projection(last.attn):
        return False
    last.__class__ = ClassTokenBlock
    return True
