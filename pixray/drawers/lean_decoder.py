"""taming's VQGAN decoder run over its own modules, keeping less for the backward pass.

taming's ``Decoder`` and ``ResnetBlock`` follow each group norm outside attention with
``x * sigmoid(x)``: three kernels, and the backward keeps both the norm's output and its sigmoid,
besides the copy the next convolution keeps. :func:`decode` runs the same modules with the same
weights, but each norm and its swish as one step whose output is recomputed from the norm's input in
the backward pass (a group norm and a SiLU are cheap next to the 3x3 convolutions between them), so
per norm only its input is kept. The convolutions keep no input either where they are
:class:`~pixray.frozen_convolution.FrozenConv2d`, as the VQGAN drawer's are.
Under a CUDA autocast the norm's output is float32, the largest tensor the decoder would keep. The
output is the stock forward's (the tests compare both, values and gradients); docs/performance.md has
the memory and time measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

if TYPE_CHECKING:
    from taming.modules.diffusionmodules.model import Decoder, ResnetBlock


def _norm_swish(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """``swish(norm(x))``; where a gradient will flow, only ``x`` is kept for the backward pass."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return F.silu(norm(x))
    return checkpoint(lambda t: F.silu(norm(t)), x, use_reentrant=False, preserve_rng_state=False)


def _resnet_block(block: ResnetBlock, x: torch.Tensor) -> torch.Tensor:
    """taming's ``ResnetBlock`` without a timestep embedding (a decoder has none)."""
    h = block.conv1(_norm_swish(block.norm1, x))
    h = block.conv2(block.dropout(_norm_swish(block.norm2, h)))
    if block.in_channels != block.out_channels:
        x = block.conv_shortcut(x) if block.use_conv_shortcut else block.nin_shortcut(x)
    return x + h


def decode(decoder: Decoder, z: torch.Tensor) -> torch.Tensor:
    """taming's ``Decoder.forward``: z (B, z_channels, h, w) → (B, out_ch, h·f, w·f), f = 2^(levels-1),
    roughly in [-1, 1] (or the last level's features where the decoder has ``give_pre_end``)."""
    h = decoder.conv_in(z)
    h = _resnet_block(decoder.mid.block_1, h)
    h = decoder.mid.attn_1(h)
    h = _resnet_block(decoder.mid.block_2, h)
    for level in reversed(range(decoder.num_resolutions)):
        up = decoder.up[level]
        for i, block in enumerate(up.block):
            h = _resnet_block(block, h)
            if len(up.attn) > 0:
                h = up.attn[i](h)
        if level != 0:
            h = up.upsample(h)
    if decoder.give_pre_end:
        return h
    return decoder.conv_out(_norm_swish(decoder.norm_out, h))
