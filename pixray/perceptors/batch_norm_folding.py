"""A ResNet CLIP's batch norms folded into the convolutions before them, with the same results.

A frozen perceptor's batch norms use their running statistics: each is a fixed per-channel scale and
shift of the convolution's output, so the scale can multiply the convolution's weights and the shift
become its bias (``torch.nn.utils.fusion.fuse_conv_bn_weights``), once, in float32. The pass then
skips every batch norm's forward and backward over the feature maps (docs/performance.md has the figures)
and keeps no input for them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from open_clip.modified_resnet import Bottleneck, ModifiedResNet
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def _fold(conv: nn.Module | None, norm: nn.Module | None) -> bool:
    """Fold ``norm`` into ``conv`` when they are a plain convolution and a batch norm with running
    statistics over its output channels; returns whether it did (``norm`` then to be replaced)."""
    if type(conv) is not nn.Conv2d or type(norm) is not nn.BatchNorm2d:
        return False
    if norm.running_mean is None or norm.num_features != conv.out_channels:
        return False
    dtype, trainable = conv.weight.dtype, conv.weight.requires_grad
    weight, bias = fuse_conv_bn_weights(
        conv.weight.float(), None if conv.bias is None else conv.bias.float(), norm.running_mean.float(),
        norm.running_var.float(), norm.eps, None if norm.weight is None else norm.weight.float(),
        None if norm.bias is None else norm.bias.float())
    conv.weight = nn.Parameter(weight.detach().to(dtype), requires_grad=trainable)
    conv.bias = nn.Parameter(bias.detach().to(dtype), requires_grad=trainable)
    return True


def _conv_norm_pairs(visual: ModifiedResNet) -> Iterator[tuple[nn.Module, str, str]]:
    """(parent, convolution's name, norm's name) for each pair the tower's forward applies in turn:
    ``bnN(convN(x))`` in the stem and the bottlenecks, and neighbours in a ``nn.Sequential``."""
    for module in visual.modules():
        if isinstance(module, (ModifiedResNet, Bottleneck)):
            yield from ((module, f"conv{index}", f"bn{index}") for index in (1, 2, 3))
        elif isinstance(module, nn.Sequential):
            names = [name for name, _ in module.named_children()]
            yield from ((module, first, second) for first, second in itertools.pairwise(names))


def fold_batch_norms(visual: nn.Module) -> int:
    """Fold the batch norms of an open_clip modified ResNet (``visual``) into their convolutions in
    place, each norm becoming ``nn.Identity``; returns how many were folded (0 for other towers).
    Pairs are the ones its forward passes apply in turn: ``bnN(convN(x))`` in the stem and the
    bottlenecks, and a convolution followed by a batch norm inside a ``nn.Sequential`` (downsampling).
    For frozen, evaluating models only: the fold uses the running statistics."""
    if not isinstance(visual, ModifiedResNet):
        return 0
    folded = 0
    with torch.no_grad():
        for parent, conv, norm in list(_conv_norm_pairs(visual)):
            if _fold(getattr(parent, conv, None), getattr(parent, norm, None)):
                setattr(parent, norm, nn.Identity())
                folded += 1
    return folded
