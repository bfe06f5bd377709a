"""Convolutions with frozen weights keeping only their weights for the backward pass
(pixray/frozen_convolution.py): torch's results, less kept."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pixray.frozen_convolution import FrozenConv2d, use_frozen_convolutions

GEOMETRIES = [{"kernel_size": 3, "padding": 1}, {"kernel_size": 3, "stride": 2, "padding": 1},
              {"kernel_size": 3, "padding": 2, "dilation": 2, "groups": 2}, {"kernel_size": 1, "bias": False}]


def _conv(layout: torch.memory_format, **geometry: object) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(4, 6, **geometry).requires_grad_(False).to(memory_format=layout)


def _pass(forward, x: torch.Tensor, dtype: torch.dtype = torch.float32,
          sliced: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """``forward(x)``, the gradient of a fixed function of it with respect to ``x``, and the tensors the
    forward kept for the backward pass; ``sliced``: the gradient arrives as a slice of a concatenation's
    (a view of neither layout), as in a densely connected block."""
    x = x.detach().clone().requires_grad_(True)
    kept: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype, enabled=dtype != torch.float32):
        out = forward(x)
    used = torch.cat([out, out.detach()], 1)[:, :out.shape[1]] if sliced else out
    (used.float() * torch.linspace(-1, 1, used.numel()).view(used.shape)).sum().backward()
    return out.detach(), x.grad, kept


@pytest.mark.parametrize("sliced", [False, True], ids=["whole", "sliced"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: ",".join(f"{k}={v}" for k, v in g.items()))
def test_the_same_output_and_input_gradient_as_torch_bit_for_bit(geometry, layout, dtype, sliced):
    stock = _conv(layout, **geometry)
    frozen = copy.deepcopy(stock)
    assert use_frozen_convolutions(frozen) == 1 and type(frozen) is FrozenConv2d
    x = torch.randn(2, 4, 11, 13).contiguous(memory_format=layout)  # odd sides: a stride-2 input's shape kept
    out, grad, _ = _pass(frozen, x, dtype, sliced)
    stock_out, stock_grad, _ = _pass(stock, x, dtype, sliced)
    assert out.dtype == stock_out.dtype == dtype and grad.shape == x.shape
    assert torch.equal(out, stock_out) and torch.equal(grad, stock_grad)
    assert grad.is_contiguous(memory_format=layout)


def _saved(conv: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in _pass(conv, x)[2]]


def test_only_the_weights_are_kept_for_the_backward_pass():
    stock = _conv(torch.contiguous_format, kernel_size=3, padding=1)
    frozen = copy.deepcopy(stock)
    use_frozen_convolutions(frozen)
    x = torch.randn(1, 4, 16, 16, requires_grad=True)
    assert _saved(stock, x) == [(1, 4, 16, 16), (6, 4, 3, 3)]  # torch keeps the input though it is frozen
    assert _saved(frozen, x) == [(6, 4, 3, 3)]


def test_learning_weights_other_padding_and_no_gradient_take_torchs_path():
    x = torch.randn(1, 4, 9, 9, requires_grad=True)
    learning = FrozenConv2d(4, 6, 3, padding=1)  # a new module's weights learn
    learning(x).sum().backward()
    assert learning.weight.grad is not None and learning.bias.grad is not None
    reflecting = _conv(torch.contiguous_format, kernel_size=3, padding=1, padding_mode="reflect")
    use_frozen_convolutions(reflecting)
    assert type(reflecting(x).grad_fn).__name__ == "ConvolutionBackward0"
    assert reflecting(x.detach()).grad_fn is None
    with torch.no_grad():
        assert reflecting(x).grad_fn is None


def test_a_network_keeps_its_weights_and_its_other_modules():
    network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 4, 1), nn.Linear(2, 2)))
    before = {k: v.clone() for k, v in network.state_dict().items()}
    assert use_frozen_convolutions(network) == 2
    assert [type(m) for m in network.modules()][1:] == [FrozenConv2d, nn.ReLU, nn.Sequential, FrozenConv2d,
                                                         nn.Linear]
    assert network.state_dict().keys() == before.keys()
    assert all(torch.equal(network.state_dict()[k], v) for k, v in before.items())


def _kept_bytes(forward, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Output, input gradient, and the bytes of the distinct storages kept for the backward pass."""
    out, grad, kept = _pass(forward, x)
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in kept}
    return out, grad, sum(storages.values())


def check_frozen_network(network: nn.Module, forward, x: torch.Tensor) -> None:
    """``network``'s convolutions are all :class:`FrozenConv2d`, giving ``forward(x)`` and its input
    gradient bit for bit as torch's convolutions do while keeping fewer bytes for the backward pass."""
    convolutions = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
    assert convolutions and all(type(m) is FrozenConv2d for m in convolutions)
    out, grad, kept = _kept_bytes(forward, x)
    try:
        for conv in convolutions:
            conv.__class__ = nn.Conv2d
        stock_out, stock_grad, stock_kept = _kept_bytes(forward, x)
    finally:
        for conv in convolutions:
            conv.__class__ = FrozenConv2d
    assert torch.equal(out, stock_out) and torch.equal(grad, stock_grad)
    assert kept < stock_kept, (kept, stock_kept)
