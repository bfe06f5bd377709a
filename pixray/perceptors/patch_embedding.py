"""A ViT's patch embedding as one matmul over its patches, with the same weights and results.

A ViT embeds its image with a convolution whose kernel tiles the image (stride = kernel size, no
padding): each output position is one patch's pixels times the kernel. On the CPU, torch's
convolution runs this shape slowly, and its backward to the image (which the engine needs: the
gradient goes on to the canvas) more slowly still (ViT-B/32's 32x32 kernel over 30 cutouts: about
0.19 s forward and backward against 0.02 s as a matmul; docs/performance.md has the figures).
:class:`PatchMatmulConv` cuts the image into patches with a reshape and multiplies them by the kernel
as a (out, in x kh x kw) matrix; GPUs keep the convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn


def tiles(conv: nn.Conv2d) -> bool:
    """Whether ``conv``'s kernel tiles its input: stride = kernel, no padding, dilation or groups."""
    return (tuple(conv.stride) == tuple(conv.kernel_size) and conv.padding in ("valid", (0, 0))
            and tuple(conv.dilation) == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")


class PatchMatmulConv(nn.Conv2d):
    """``nn.Conv2d`` with a tiling kernel computed on the CPU as a matmul over patches: (B,C,H,W) in,
    (B,out,H//kh,W//kw) out (a permuted view, as the convolution's values), like the convolution
    ignoring the rows and columns past the last whole patch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or not tiles(self):
            return super().forward(x)
        batch, channels, height, width = x.shape
        kh, kw = self.kernel_size
        rows, cols = height // kh, width // kw
        patches = (x[:, :, :rows * kh, :cols * kw].reshape(batch, channels, rows, kh, cols, kw)
                   .permute(0, 2, 4, 1, 3, 5).reshape(batch * rows * cols, channels * kh * kw))
        out = F.linear(patches, self.weight.reshape(self.out_channels, -1), self.bias)
        return out.reshape(batch, rows, cols, self.out_channels).permute(0, 3, 1, 2)


def use_patch_matmul(visual: nn.Module) -> bool:
    """Switch a ViT tower's patch embedding (``conv1``) to :class:`PatchMatmulConv` in place when its
    kernel tiles the image; returns whether it was switched (False for a ResNet tower)."""
    conv = getattr(visual, "conv1", None)
    if not isinstance(visual, VisionTransformer) or type(conv) is not nn.Conv2d or not tiles(conv):
        return False
    conv.__class__ = PatchMatmulConv
    return True
