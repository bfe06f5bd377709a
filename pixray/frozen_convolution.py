"""Convolutions with frozen weights that keep only their weights for the backward pass.

torch's convolution keeps its input for the backward pass even when its weights take no gradient,
though the input's own gradient needs only the weights (and the input's shape): a decoder whose
weights are frozen but whose input learns (the VQGAN drawer's latent) holds a copy of every
convolution's input, full-resolution feature maps included, from its forward until its backward.
:class:`FrozenConv2d` computes the same convolution and the same input gradient, keeping only the
weights: the memory of a frozen network's backward pass is then what its other layers keep. Weights
that learn, a padding mode other than zeros, or no gradient wanted take ``nn.Conv2d``'s own path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .module_classes import switch_class


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels-last where ``x`` (N,C,H,W) is laid out so, else contiguous."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


def input_gradient(grad: torch.Tensor, shape: torch.Size, layout: torch.memory_format, weight: torch.Tensor,
                   stride: list[int], padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    """The gradient of a convolution's input (of ``shape``, laid out as ``layout``), from the gradient of
    its output and its weight alone. An unfilled tensor stands in for the input, which gives only its
    shape and layout: the layout the forward's input had, for the same kernel as torch's backward
    (a gradient arriving as a view, a slice of a concatenation's, reads as contiguous; so does
    ``torch.nn.grad.conv2d_input``'s expanded stand-in)."""
    stand_in = torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=layout)
    grad_x, _, _ = torch.ops.aten.convolution_backward(grad, stand_in, weight, None, stride, padding,
                                                       dilation, False, [0, 0], groups, (True, False, False))
    return grad_x


class _FrozenConvolution(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, stride: list[int], padding: list[int], dilation: list[int],
                groups: int) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.geometry = (x.shape, memory_format(x), stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    @once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (weight,) = ctx.saved_tensors
        grad_x = input_gradient(grad, *ctx.geometry[:2], weight, *ctx.geometry[2:])
        return grad_x, None, None, None, None, None, None


class FrozenConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose backward pass keeps only its weights while they are frozen (the module
    docstring); the same output and input gradient. Under an autocast it computes in the autocast's
    dtype, as the autocast would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.weight.requires_grad or (self.bias is not None and self.bias.requires_grad)
                or self.padding_mode != "zeros" or isinstance(self.padding, str)
                or not (torch.is_grad_enabled() and x.requires_grad)):
            return super().forward(x)
        weight, bias, device = self.weight, self.bias, x.device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        with torch.autocast(device, enabled=False):
            return _FrozenConvolution.apply(x, weight, bias, list(self.stride), list(self.padding),
                                            list(self.dilation), self.groups)


def use_frozen_convolutions(module: nn.Module) -> int:
    """Switch every plain ``nn.Conv2d`` in ``module`` to :class:`FrozenConv2d` in place (the same
    weights; modules whose weights learn keep torch's path at each call); returns how many."""
    return switch_class(module, nn.Conv2d, FrozenConv2d)
