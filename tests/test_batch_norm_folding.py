"""A ResNet CLIP's batch norms folded into its convolutions give the stock tower's results."""

from __future__ import annotations

import copy

import torch
from conftest import tiny_clip, trained_batch_norms
from torch import nn

from pixray.perceptors.batch_norm_folding import fold_batch_norms


def test_a_folded_resnet_tower_gives_the_stock_towers_output_and_gradient():
    stock = trained_batch_norms(tiny_clip(resnet=True).visual).double().eval()
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in stock.modules())
    folded = copy.deepcopy(stock)
    assert fold_batch_norms(folded) == norms > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    images = torch.rand(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x1, x2 = images.clone().requires_grad_(True), images.clone().requires_grad_(True)
    expected, out = stock(x1), folded(x2)
    assert torch.allclose(out, expected, atol=1e-10)
    weights = torch.randn(expected.shape, dtype=torch.float64)
    (expected * weights).sum().backward()
    (out * weights).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-10)
    assert fold_batch_norms(folded) == 0  # nothing left to fold


def test_only_a_resnet_towers_convolution_and_norm_pairs_are_folded():
    assert fold_batch_norms(tiny_clip().visual) == 0  # a ViT
    mismatched = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(4))
    assert fold_batch_norms(mismatched) == 0  # not a ResNet tower: untouched
    visual = tiny_clip(resnet=True).visual
    block = visual.layer1[0]
    block.downsample = nn.Sequential(nn.AvgPool2d(1), nn.BatchNorm2d(block.conv3.out_channels),
                                     nn.Conv2d(block.conv1.in_channels, block.conv3.out_channels, 1))
    fold_batch_norms(visual)
    assert isinstance(block.downsample[1], nn.BatchNorm2d)  # a norm before its convolution stays
    assert isinstance(block.bn1, nn.Identity) and block.conv1.bias is not None
