"""A ResNet's ReLUs and residual adds computed inside oneDNN's convolutions on the CPU, with the same results.

Once its batch norms are folded (:mod:`~pixray.perceptors.batch_norm_folding`), open_clip's modified
ResNet is convolutions each followed by a ReLU, and in each bottleneck a residual add before the
last one. Each ReLU and add is a pass of its own over a feature map (RN50's first stage: 256 x 56 x
56 values per cutout), and a ResNet pass spent about a third of its time in them (docs/performance.md
has the profile). oneDNN's convolution primitive applies the ReLU, and adds the residual, as it writes
its output (``torch.ops.mkldnn._convolution_pointwise``). Their backward is computed here: the
ReLU's gradient from the kept output (``output > 0``, what ``relu``'s backward reads too), the
input's from the weights alone (``convolution_backward`` for the input only), the residual's the
same as the convolution's output's. Frozen bfloat16 weights on a CPU with oneDNN's bfloat16
kernels only; anything else (float32 included) takes torch's modules as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import Bottleneck, ModifiedResNet
from torch import nn
from torch.autograd.function import once_differentiable

from ..frozen_convolution import input_gradient, memory_format
from .onednn_fusion import fused_dtype


class _ConvolutionReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, residual: torch.Tensor | None,
                weight: torch.Tensor, bias: torch.Tensor, stride: list[int], padding: list[int],
                dilation: list[int], groups: int) -> torch.Tensor:
        if residual is None:
            out = torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, stride, dilation, groups,
                                                          "relu", [], "")
        else:
            out = torch.ops.mkldnn._convolution_pointwise.binary(
                x, residual, weight, bias, padding, stride, dilation, groups, "add", 1.0, "relu", [], "")
        ctx.save_for_backward(weight, out)
        ctx.geometry = (x.shape, memory_format(x), stride, padding, dilation, groups)
        ctx.has_residual = residual is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight, out = ctx.saved_tensors
        grad_sum = torch.ops.aten.threshold_backward(grad, out, 0)
        grad_x = input_gradient(grad_sum, *ctx.geometry[:2], weight, *ctx.geometry[2:])
        return grad_x, (grad_sum if ctx.has_residual else None), None, None, None, None, None, None


def _computes_in(conv: nn.Conv2d, x: torch.Tensor) -> torch.dtype | None:
    """The dtype ``conv`` computes ``x`` in when oneDNN's fused primitive takes it (zero padding given
    as numbers, a 4-d input, :func:`~pixray.perceptors.onednn_fusion.fused_dtype`); None otherwise."""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str) or x.dim() != 4:
        return None
    return fused_dtype(x, conv.weight, conv.bias)


def convolution_relu(conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    """``relu(conv(x) + residual)`` (``relu(conv(x))`` without one): x (N,C,H,W) → (N,C',H',W'), the
    residual that shape. One oneDNN convolution with the ReLU and the add as post-ops where
    :func:`_computes_in` allows (its gradients computed here), torch's modules otherwise."""
    dtype = _computes_in(conv, x)
    if dtype is None:  # open_clip's own order, in place on the convolution's output as its modules do
        out = conv(x)
        if residual is not None:
            out += residual
        return F.relu(out, inplace=True)
    if residual is not None:
        residual = residual.to(dtype).contiguous(memory_format=memory_format(x))
    return _ConvolutionReLU.apply(x.to(dtype), residual, conv.weight, conv.bias, list(conv.stride),
                                  list(conv.padding), list(conv.dilation), conv.groups)


class FusedBottleneck(Bottleneck):
    """open_clip's ``Bottleneck`` with its batch norms folded: each convolution and its ReLU, and the
    last one with the residual add, through :func:`convolution_relu`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = convolution_relu(self.conv2, convolution_relu(self.conv1, x))
        identity = x if self.downsample is None else self.downsample(x)
        return convolution_relu(self.conv3, self.avgpool(out), identity)


class FusedStemResNet(ModifiedResNet):
    """open_clip's ``ModifiedResNet`` whose stem (three convolutions, each with its folded norm and a
    ReLU, then an average pool) runs through :func:`convolution_relu`."""

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        for conv in (self.conv1, self.conv2, self.conv3):
            x = convolution_relu(conv, x)
        return self.avgpool(x)


def _folded(module: nn.Module) -> bool:
    """Whether ``module``'s three convolutions have their norms folded (Identity) and ReLUs after them."""
    return all(type(getattr(module, f"bn{i}", None)) is nn.Identity
               and type(getattr(module, f"act{i}", None)) is nn.ReLU
               and type(getattr(module, f"conv{i}", None)) is nn.Conv2d for i in (1, 2, 3))


def use_fused_convolutions(visual: nn.Module) -> int:
    """Switch a modified ResNet's stem and bottlenecks whose batch norms were folded to
    :class:`FusedStemResNet` and :class:`FusedBottleneck` in place; returns how many of them
    (stem included) were switched (0 for any other tower)."""
    if type(visual) is not ModifiedResNet:
        return 0
    switched = 0
    if _folded(visual):
        visual.__class__ = FusedStemResNet
        switched += 1
    for module in visual.modules():
        if type(module) is Bottleneck and _folded(module):
            module.__class__ = FusedBottleneck
            switched += 1
    return switched
