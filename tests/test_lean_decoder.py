"""The VQGAN decoder's lean forward (pixray/drawers/lean_decoder.py) against taming's own: the same
values and gradients, with less kept for the backward pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from live_storages import LiveStorages
from taming.modules.diffusionmodules.model import Decoder

from pixray.drawers.lean_decoder import decode
from pixray.frozen_convolution import use_frozen_convolutions

# Two levels (so an upsampling and a block whose channels change: its 1x1 shortcut), attention at the
# lower one, GroupNorm(32)'s multiple-of-32 channels.
CONFIG = {"ch": 32, "out_ch": 3, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [8],
          "dropout": 0.0, "in_channels": 3, "resolution": 16, "z_channels": 4}


def _decoder(**extra: object) -> Decoder:
    torch.manual_seed(0)
    decoder = Decoder(**{**CONFIG, **extra}).eval().requires_grad_(False)
    for module in decoder.modules():  # non-trivial norm weights, so a mixed-up norm would show
        if isinstance(module, torch.nn.GroupNorm):
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.5, 0.5)
    return decoder


def _output_and_gradient(forward, z: torch.Tensor, dtype: torch.dtype = torch.float32):
    z = z.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype, enabled=dtype != torch.float32):
        out = forward(z).float()
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    return out.detach(), z.grad


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_same_image_and_gradient_as_taming_in_float32(layout):
    decoder = _decoder().to(memory_format=layout)
    z = torch.randn(2, 4, 5, 7).contiguous(memory_format=layout)
    out, grad = _output_and_gradient(lambda t: decode(decoder, t), z)
    stock_out, stock_grad = _output_and_gradient(decoder, z)
    assert out.shape == (2, 3, 10, 14)
    torch.testing.assert_close(out, stock_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad, stock_grad, atol=1e-5, rtol=1e-5)


def test_give_pre_end_returns_the_last_levels_features_as_taming():
    decoder = _decoder(give_pre_end=True)
    z = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(decode(decoder, z), decoder(z), atol=1e-5, rtol=1e-5)


def test_in_bfloat16_it_follows_float32_as_taming_does():
    decoder = _decoder().to(memory_format=torch.channels_last)
    z = torch.randn(1, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    reference, reference_grad = _output_and_gradient(decoder, z)
    out, grad = _output_and_gradient(lambda t: decode(decoder, t), z, torch.bfloat16)
    stock_out, stock_grad = _output_and_gradient(decoder, z, torch.bfloat16)
    for mine, stock, exact in ((out, stock_out, reference), (grad, stock_grad, reference_grad)):
        mine_cosine = F.cosine_similarity(mine.flatten(), exact.flatten(), dim=0)
        stock_cosine = F.cosine_similarity(stock.flatten(), exact.flatten(), dim=0)
        assert mine_cosine >= 0.999 and mine_cosine >= stock_cosine - 1e-3


def _kept_for_backward(forward, z: torch.Tensor) -> int:
    z = z.clone().requires_grad_(True)
    counter = LiveStorages()
    with counter, torch.autocast("cpu", torch.bfloat16):
        out = forward(z)
    kept = counter.alive() - out.untyped_storage().nbytes()
    out.float().sum().backward()  # the graph held what was counted, and still works
    assert torch.isfinite(z.grad).all()
    return kept


def test_it_keeps_less_for_the_backward_pass_than_taming():
    """No norm's output or sigmoid is kept: measured by the storages the forward made that are still
    held once it returns (the graph's), in bfloat16 as a run on the CPU computes. The SiLU alone,
    without recomputing the norms, keeps more than the bound. (No attention, whose token-by-token maps
    would outweigh this tiny decoder's feature maps; a real decoder attends at its lowest resolution.)"""
    decoder = _decoder(attn_resolutions=[]).to(memory_format=torch.channels_last)
    z = torch.randn(1, 4, 24, 24).contiguous(memory_format=torch.channels_last)
    lean, stock = _kept_for_backward(lambda t: decode(decoder, t), z), _kept_for_backward(decoder, z)
    assert lean <= 0.7 * stock, (lean, stock)


def test_with_frozen_convolutions_it_keeps_less_still_for_the_same_image_and_gradient():
    """As the VQGAN drawer runs it (pixray/drawers/vqgan_model.py): its convolutions keep no input."""
    decoder = _decoder(attn_resolutions=[]).to(memory_format=torch.channels_last)
    frozen = _decoder(attn_resolutions=[]).to(memory_format=torch.channels_last)
    assert use_frozen_convolutions(frozen) == 20
    z = torch.randn(1, 4, 24, 24).contiguous(memory_format=torch.channels_last)
    for dtype in (torch.float32, torch.bfloat16):
        out, grad = _output_and_gradient(lambda t: decode(frozen, t), z, dtype)
        stock_out, stock_grad = _output_and_gradient(lambda t: decode(decoder, t), z, dtype)
        assert torch.equal(out, stock_out) and torch.equal(grad, stock_grad)
    lean = _kept_for_backward(lambda t: decode(decoder, t), z)
    assert _kept_for_backward(lambda t: decode(frozen, t), z) <= 0.7 * lean
    assert _kept_for_backward(lambda t: decode(frozen, t), z) <= 0.45 * _kept_for_backward(decoder, z)
