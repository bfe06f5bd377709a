"""A ResNet's convolutions with oneDNN's ReLU and residual-add post-ops give torch's results and gradients,
and are taken only where they apply."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import image_pass, needs_onednn, needs_onednn_bf16, tiny_clip, trained_batch_norms
from open_clip.modified_resnet import Bottleneck, ModifiedResNet
from torch import nn

from pixray.perceptors import Perceptor, onednn_fusion
from pixray.perceptors.batch_norm_folding import fold_batch_norms
from pixray.perceptors.fused_convolution import (
    FusedBottleneck,
    FusedStemResNet,
    _ConvolutionReLU,
    convolution_relu,
    use_fused_convolutions,
)
from pixray.runtime import autocast


@pytest.fixture
def float32_fused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused primitive in float32 too (bfloat16 only in the product), to check its arithmetic."""
    monkeypatch.setattr(onednn_fusion, "FUSED_DTYPES", (torch.float32, torch.bfloat16))


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    calls: list[bool] = []
    apply = _ConvolutionReLU.apply

    def counted(x, residual, *rest):
        calls.append(residual is not None)
        return apply(x, residual, *rest)

    monkeypatch.setattr(_ConvolutionReLU, "apply", counted)
    return calls


def _frozen_conv(generator: torch.Generator, channels: int, out: int, kernel: int, **kwargs) -> nn.Conv2d:
    conv = nn.Conv2d(channels, out, kernel, **kwargs)
    with torch.no_grad():
        scale = (channels * kernel ** 2) ** -0.5
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * scale)
        conv.bias.copy_(torch.randn(out, generator=generator) * 0.3)
    return conv.requires_grad_(False)


@needs_onednn
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels-last"])
@pytest.mark.parametrize(("kernel", "stride", "residual"),
                         [(1, 1, True), (3, 1, False), (3, 2, False), (3, 1, True)])
def test_convolution_relu_is_torchs_convolution_add_and_relu(monkeypatch, float32_fused, channels_last,
                                                             kernel, stride, residual):
    calls = _counting(monkeypatch)
    generator = torch.Generator().manual_seed(0)
    conv = _frozen_conv(generator, 16, 24, kernel, stride=stride, padding=kernel // 2)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 16, 12, 12, generator=generator).contiguous(memory_format=fmt).requires_grad_(True)
    size = 12 // stride
    other = None
    if residual:
        other = torch.randn(3, 24, size, size, generator=generator).contiguous(memory_format=fmt)
        other.requires_grad_(True)
    weights = torch.randn(3, 24, size, size, generator=generator)
    out = convolution_relu(conv, x, other)
    assert calls == [residual]
    assert (out > 0).float().mean() > 0.2 and (out == 0).float().mean() > 0.2  # both sides of the ReLU
    (out * weights).sum().backward()
    fused = (out.detach(), x.grad, other.grad if residual else None)
    x.grad = None
    if residual:
        other.grad = None
    stock = F.relu(conv(x) + (other if residual else 0))
    (stock * weights).sum().backward()
    assert (fused[0] - stock.detach()).abs().max() <= 1e-5
    assert (fused[1] - x.grad).abs().max() <= 1e-5 * x.grad.abs().max()
    assert fused[1].is_contiguous(memory_format=fmt)
    if residual:
        assert torch.equal(fused[2], other.grad)  # the residual's gradient is the ReLU's, exactly


@needs_onednn_bf16
def test_convolution_relu_in_bfloat16_under_autocast_is_close_to_float32(monkeypatch):
    calls = _counting(monkeypatch)
    generator = torch.Generator().manual_seed(1)
    conv = _frozen_conv(generator, 16, 32, 3, padding=1)
    x = torch.randn(2, 16, 10, 10, generator=generator).contiguous(memory_format=torch.channels_last)
    other = torch.randn(2, 32, 10, 10, generator=generator)
    expected = F.relu(conv(x) + other)
    half = copy.deepcopy(conv).bfloat16()
    leaf = x.clone().requires_grad_(True)
    with autocast(x.device, torch.bfloat16):
        out = convolution_relu(half, leaf, other)
    assert calls == [True] and out.dtype == torch.bfloat16
    assert F.cosine_similarity(out.float().flatten(), expected.flatten(), dim=0) >= 0.999
    out.float().sum().backward()
    assert leaf.grad.dtype == torch.float32


@pytest.mark.parametrize("case", ["float32", "float64", "trainable weight", "no bias", "reflect padding",
                                  "no oneDNN bfloat16"])
def test_other_convolutions_take_torchs_modules(monkeypatch, case):
    calls = _counting(monkeypatch)
    generator = torch.Generator().manual_seed(2)
    conv = _frozen_conv(generator, 8, 8, 3, padding=1)
    x = torch.randn(2, 8, 6, 6, generator=generator).bfloat16()
    conv.bfloat16()
    if case == "float32":
        conv, x = conv.float(), x.float()
    elif case == "float64":
        conv, x = conv.double(), x.double()
    elif case == "trainable weight":
        conv.requires_grad_(True)
    elif case == "no bias":
        conv.bias = None
    elif case == "reflect padding":
        conv.padding_mode = "reflect"
    else:
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert torch.equal(convolution_relu(conv, x, x), F.relu(conv(x) + x))
    assert calls == []


def _folded_tower(seed: int = 0) -> ModifiedResNet:
    visual = trained_batch_norms(tiny_clip(resnet=True, seed=seed)).visual.requires_grad_(False)
    fold_batch_norms(visual)
    return visual


def test_the_stem_and_the_folded_bottlenecks_are_switched():
    visual = _folded_tower()
    bottlenecks = sum(type(m) is Bottleneck for m in visual.modules())
    assert use_fused_convolutions(visual) == 1 + bottlenecks and bottlenecks == 4
    assert type(visual) is FusedStemResNet
    assert sum(type(m) is FusedBottleneck for m in visual.modules()) == 4
    unfolded = tiny_clip(resnet=True).visual  # its batch norms still there: nothing to fuse
    assert use_fused_convolutions(unfolded) == 0 and type(unfolded) is ModifiedResNet
    assert use_fused_convolutions(tiny_clip().visual) == 0  # a ViT


@needs_onednn
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels-last"])
def test_a_fused_resnet_tower_gives_the_folded_towers_output_and_gradient(monkeypatch, float32_fused,
                                                                          channels_last):
    calls = _counting(monkeypatch)
    folded = _folded_tower()
    fused = copy.deepcopy(folded)
    use_fused_convolutions(fused)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        folded.to(memory_format=fmt)
        fused.to(memory_format=fmt)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    images = images.contiguous(memory_format=fmt)
    results = []
    for tower in (folded, fused):
        leaf = images.clone().requires_grad_(True)
        out = tower(leaf)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        results.append((out.detach(), leaf.grad))
    (out1, grad1), (out2, grad2) = results
    assert calls.count(True) == 4 and calls.count(False) == 3 + 2 * 4  # stem 3, each bottleneck 3
    assert (out1 - out2).abs().max() <= 1e-5 * out1.abs().max()
    assert (grad1 - grad2).abs().max() <= 1e-5 * grad1.abs().max()


@needs_onednn_bf16
def test_a_resnet_perceptor_with_bfloat16_weights_stays_close_to_float32_stock(monkeypatch):
    calls = _counting(monkeypatch)
    model = trained_batch_norms(tiny_clip(resnet=True))
    stock = Perceptor("stock", copy.deepcopy(model), fast=False)
    fast = Perceptor("fast", model).store_weights_in(torch.bfloat16)
    assert fast.fused_convolutions == 5 and stock.fused_convolutions == 0
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    (e32, g32), (e16, g16) = (image_pass(p, images, p.weights_dtype) for p in (stock, fast))
    assert len(calls) == 15
    assert F.cosine_similarity(e32, e16).min() >= 0.999
    # bfloat16 through this tower's 8-channel widths: 0.976 with the fused convolutions turned off.
    assert F.cosine_similarity(g32.flatten(1), g16.float().flatten(1)).min() >= 0.97
