"""A ResNet CLIP's attention pool computed for its pooled query alone, with the same weights and results.

open_clip's ``AttentionPool2d`` (OpenAI's modified ResNet) puts the mean of the last feature map's
positions before them, runs multi-head self-attention over all HW + 1, and keeps only the output at
the mean's position. The other HW queries, their attention and their out-projection are never read:
for RN50 at 224, 49 of 50 rows of the query and out-projections (2048 × 2048 each) and of the
attention, in the forward pass and again in the backward to the canvas. :class:`ClassTokenPool`
computes every position's keys and values and the first position's query alone.
"""

from __future__ import annotations

import torch
from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet
from torch import nn

from .attention import heads_attention


class ClassTokenPool(AttentionPool2d):
    """open_clip's ``AttentionPool2d`` computing only the pooled query's output: a feature map
    (N,C,H,W) in (any memory format), (N,output_dim) out, the stock module's result."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.permute(0, 2, 3, 1).flatten(1, 2)  # (N,HW,C): a view of a channels-last map
        seq = torch.cat([tokens.mean(1, keepdim=True), tokens], 1)
        seq = seq + self.positional_embedding.to(seq.dtype)
        q = self.q_proj(seq[:, :1])
        out = heads_attention(q, self.k_proj(seq), self.v_proj(seq), self.num_heads)
        return self.c_proj(out)[:, 0]


def use_class_token_pool(visual: nn.Module) -> bool:
    """Switch a modified ResNet's attention pool to :class:`ClassTokenPool` in place; returns whether
    it was switched (False for any other tower or pool)."""
    pool = getattr(visual, "attnpool", None)
    if not isinstance(visual, ModifiedResNet) or type(pool) is not AttentionPool2d:
        return False
    pool.__class__ = ClassTokenPool
    return True
