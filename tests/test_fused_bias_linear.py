"""Linear layers with oneDNN's fused bias give F.linear's results and input gradients, and are taken only
where they apply."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import image_pass, needs_onednn, needs_onednn_bf16, tiny_clip
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from pixray.perceptors import Perceptor, onednn_fusion
from pixray.perceptors.fused_bias_linear import (
    FusedBiasLinear,
    _FusedBiasLinear,
    linear,
    use_fused_bias_linears,
)
from pixray.runtime import autocast


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[torch.Size]:
    calls: list[torch.Size] = []
    apply = _FusedBiasLinear.apply

    def counted(x, weight, bias):
        calls.append(x.shape)
        return apply(x, weight, bias)

    monkeypatch.setattr(_FusedBiasLinear, "apply", counted)
    return calls


class _Recorded(TorchDispatchMode):
    """Appends the name of each aten op run inside it to ``ops``."""

    def __init__(self, ops: list[str]) -> None:
        super().__init__()
        self.ops = ops

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def _layer(generator: torch.Generator, inputs: int = 96,
           outputs: int = 160) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.randn(outputs, inputs, generator=generator) * inputs ** -0.5
    return weight.bfloat16(), torch.randn(outputs, generator=generator).bfloat16()


@needs_onednn_bf16
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "a strided view"])
def test_fused_bias_linear_is_f_linear_with_its_input_gradient(monkeypatch, strided):
    calls = _counting(monkeypatch)
    generator = torch.Generator().manual_seed(0)
    weight, bias = _layer(generator)
    leaf = torch.randn(3, 17, 96, generator=generator).bfloat16().requires_grad_(True)
    # The class-token block projects its first row alone, a view of the normed tokens.
    x = leaf[:, :1] if strided else leaf
    out = linear(x, weight, bias)
    assert calls == [x.shape] and out.dtype == torch.bfloat16 and out.shape == (*x.shape[:-1], 160)
    exact = F.linear(x.double(), weight.double(), bias.double())
    # Only the output's rounding to bfloat16 differs (both accumulate in float32).
    assert (out.double() - exact).abs().max() <= 2 ** -7 * exact.abs().max()
    assert (out.double() - F.linear(x, weight, bias).double()).abs().max() <= 2 ** -7 * exact.abs().max()
    grad = torch.randn(out.shape, generator=generator).bfloat16()
    out.backward(grad)
    expected = torch.zeros_like(leaf, dtype=torch.float64)
    expected[:, : x.shape[1]] = grad.double() @ weight.double()
    assert leaf.grad.dtype == torch.bfloat16
    assert (leaf.grad.double() - expected).abs().max() <= 2 ** -7 * expected.abs().max()


@needs_onednn_bf16
def test_fused_bias_linear_under_autocast_takes_a_float32_input_and_returns_its_gradient(monkeypatch):
    calls = _counting(monkeypatch)
    generator = torch.Generator().manual_seed(1)
    weight, bias = _layer(generator)
    x = torch.randn(5, 96, generator=generator).requires_grad_(True)
    with autocast(x.device, torch.bfloat16):
        out = linear(x, weight, bias)
        stock = F.linear(x, weight, bias)
    assert len(calls) == 1 and out.dtype == stock.dtype == torch.bfloat16
    assert (out.float() - stock.float()).abs().max() <= 2 ** -7 * stock.float().abs().max()
    out.float().sum().backward()
    assert x.grad.dtype == torch.float32
    expected = torch.ones(5, 160, dtype=torch.float64) @ weight.double()
    assert (x.grad.double() - expected).abs().max() <= 2 ** -7 * expected.abs().max()


@pytest.mark.parametrize("case", ["float32 weight", "trainable weight", "no bias", "float32 input",
                                  "no oneDNN bfloat16"])
def test_other_linears_take_f_linear(monkeypatch, case):
    calls = _counting(monkeypatch)
    generator = torch.Generator().manual_seed(2)
    weight, bias = _layer(generator)
    x = torch.randn(4, 96, generator=generator).bfloat16()
    if case == "float32 weight":  # on a CPU whose float32 products are faster in torch's kernels
        monkeypatch.setattr(onednn_fusion, "onednn_multiplies_float32", lambda device: False)
        weight, bias, x = weight.float(), bias.float(), x.float()
    elif case == "trainable weight":
        weight.requires_grad_(True)
    elif case == "no bias":
        bias = None
    elif case == "float32 input":  # outside autocast: F.linear's own dtype error, not a silent cast
        x = x.float()
    else:
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    if case == "float32 input":
        with pytest.raises(RuntimeError):
            linear(x, weight, bias)
    else:
        out = linear(x, weight, bias)
        assert torch.equal(out, F.linear(x, weight, bias))
        if case == "trainable weight":
            out.float().sum().backward()
            assert weight.grad is not None
    assert calls == []


@needs_onednn
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "a strided view"])
def test_a_float32_linear_is_onednns_where_it_multiplies_float32_faster(monkeypatch, strided):
    monkeypatch.setattr(onednn_fusion, "onednn_multiplies_float32", lambda device: True)
    calls = _counting(monkeypatch)
    generator = torch.Generator().manual_seed(5)
    weight, bias = (t.float() for t in _layer(generator))
    leaf = torch.randn(3, 17, 96, generator=generator).requires_grad_(True)
    x = leaf[:, :1] if strided else leaf
    out = linear(x, weight, bias)
    assert calls == [x.shape] and out.dtype == torch.float32
    exact = F.linear(x.double(), weight.double(), bias.double())
    assert (out.double() - exact).abs().max() <= 1e-6 * exact.abs().max()
    grad = torch.randn(out.shape, generator=generator)
    ops: list[str] = []
    with _Recorded(ops):
        out.backward(grad)
    assert "mkldnn._linear_pointwise" in ops and "aten.mm" not in ops  # torch's mm is MKL's in float32
    expected = torch.zeros_like(leaf, dtype=torch.float64)
    expected[:, : x.shape[1]] = grad.double() @ weight.double()
    assert leaf.grad.dtype == torch.float32
    assert (leaf.grad.double() - expected).abs().max() <= 1e-6 * expected.abs().max()


@pytest.mark.parametrize(("device", "capability", "vendor", "expected"), [
    ("cpu", "AVX512", "AuthenticAMD", True),
    ("cpu", "AVX512", "HygonGenuine", True),
    ("cpu", "AVX512_BF16", "AuthenticAMD", True),  # should torch name its AVX-512 levels apart
    ("cpu", "AVX512", "GenuineIntel", False),  # MKL's own AVX-512 kernels
    ("cpu", "AVX2", "AuthenticAMD", False),  # an AVX2 CPU, or torch's kernels held to AVX2
    ("cpu", "AVX512", "", False),  # a maker nobody names: torch's kernels, as ever
    ("meta", "AVX512", "AuthenticAMD", False),
])
def test_float32_products_go_to_onednn_on_avx512_cpus_not_intels(monkeypatch, device, capability, vendor,
                                                                 expected):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(onednn_fusion, "cpu_vendor", lambda: vendor)
    assert onednn_fusion.onednn_multiplies_float32(torch.device(device)) is expected
    assert onednn_fusion.linear_fuses(torch.device(device), torch.float32) is expected
    assert onednn_fusion.fuses(torch.device(device), torch.float32) is False  # not the convolutions


def test_linear_layers_are_switched_in_place():
    model = nn.Sequential(nn.Linear(4, 5), nn.MultiheadAttention(5, 1), nn.Conv2d(1, 1, 1))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert use_fused_bias_linears(model) == 2  # the linear and the attention's out-projection
    assert type(model[0]) is FusedBiasLinear and type(model[1].out_proj) is FusedBiasLinear
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    x = torch.randn(3, 4)
    assert torch.equal(model[0](x), F.linear(x, model[0].weight, model[0].bias))


@needs_onednn_bf16
def test_a_perceptor_with_bfloat16_weights_uses_the_fused_linears_and_stays_close_to_float32(monkeypatch):
    calls = _counting(monkeypatch)
    model = tiny_clip()
    stock = Perceptor("stock", copy.deepcopy(model), fast=False)
    fast = Perceptor("fast", model).store_weights_in(torch.bfloat16)
    assert fast.fused_bias_linears == sum(type(m) is FusedBiasLinear for m in fast.modules()) > 0
    assert stock.fused_bias_linears == 0
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    (e32, g32), (e16, g16) = (image_pass(p, images, p.weights_dtype) for p in (stock, fast))
    assert calls  # the image tower's in-projections, out-projections and MLPs
    assert F.cosine_similarity(e32, e16).min() >= 0.999
    assert F.cosine_similarity(g32.flatten(1), g16.float().flatten(1)).min() >= 0.99


@needs_onednn_bf16
def test_the_input_gradient_of_a_strided_gradient_is_one_matmul_without_expanding_the_weight():
    generator = torch.Generator().manual_seed(4)
    weight, bias = _layer(generator)
    x = torch.randn(3, 5, 96, generator=generator).bfloat16().requires_grad_(True)
    out = linear(x, weight, bias)
    upstream = torch.randn(5, 3, 160, generator=generator).bfloat16()
    ops: list[str] = []
    with _Recorded(ops):
        # The attention pool's heads hand their projections a transposed gradient like this one.
        out.transpose(0, 1).backward(upstream)
    assert "aten.mm" in ops and "aten.bmm" not in ops and "aten.expand" not in ops
    expected = upstream.transpose(0, 1).double() @ weight.double()
    assert (x.grad.double() - expected).abs().max() <= 2 ** -7 * expected.abs().max()
