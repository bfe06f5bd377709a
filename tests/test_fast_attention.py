"""The fast perceptor path (attention, QuickGELU, the class-token last block) gives the stock open_clip
model's results: embeddings and canvas gradients."""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
import torch.nn.functional as F
from conftest import image_pass, tiny_clip, trained_batch_norms
from open_clip import CLIPTextCfg, CLIPVisionCfg
from open_clip.modified_resnet import AttentionPool2d
from open_clip.transformer import QuickGELU, ResidualAttentionBlock
from torch import nn

from pixray.perceptors import CLIP_MODELS, Perceptor, onednn_fusion
from pixray.perceptors import attention as attention_module
from pixray.perceptors.activation import quick_gelu, use_lean_activations
from pixray.perceptors.attention import (
    FastSelfAttention,
    PackedHeadsAttention,
    matmul_attention,
    use_fast_attention,
)
from pixray.perceptors.class_token_block import ClassTokenBlock, use_class_token_block
from pixray.perceptors.class_token_pool import ClassTokenPool, use_class_token_pool
from pixray.perceptors.patch_embedding import PatchMatmulConv, use_patch_matmul
from pixray.runtime import autocast


def _pair(model: open_clip.CLIP) -> tuple[Perceptor, Perceptor]:
    return Perceptor("stock", copy.deepcopy(model), fast=False), Perceptor("fast", model)


@pytest.mark.parametrize("onednn", [False, True], ids=["torch's float32 products", "oneDNN's"])
@pytest.mark.parametrize("resnet", [False, True], ids=["vit", "resnet"])
def test_fast_path_matches_stock_on_tiny_models(monkeypatch, resnet, onednn):
    if onednn and not torch.backends.mkldnn.is_available():
        pytest.skip("needs oneDNN")
    # The float32 linear layers either way (oneDNN's on AMD's AVX-512 CPUs, torch's elsewhere).
    monkeypatch.setattr(onednn_fusion, "onednn_multiplies_float32", lambda device: onednn)
    stock, fast = _pair(trained_batch_norms(tiny_clip(resnet=resnet)))
    switched = sum(type(m) is FastSelfAttention for m in fast.modules())
    assert switched == (2 if not resnet else 1)  # every transformer block (a ResNet has text blocks only)
    assert not any(type(m) is FastSelfAttention for m in stock.modules())
    if resnet:  # its batch norms folded into the convolutions: their biases instead of the norms' tensors
        norms = sum(isinstance(m, nn.BatchNorm2d) for m in stock.modules())
        assert fast.folded_batch_norms == norms > 0 and not stock.folded_batch_norms
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    else:
        assert fast.state_dict().keys() == stock.state_dict().keys()
    assert fast.channels_last == resnet and not stock.channels_last
    assert fast.class_token_block == (not resnet) and not stock.class_token_block
    assert sum(type(m) is ClassTokenBlock for m in fast.modules()) == (not resnet)
    assert fast.class_token_pool == resnet and not stock.class_token_pool
    assert sum(type(m) is ClassTokenPool for m in fast.modules()) == resnet
    if resnet:
        assert fast.model.visual.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    (e1, g1), (e2, g2) = image_pass(stock, images), image_pass(fast, images)
    assert (e1 - e2).abs().max() <= 1e-5 and (g1 - g2).abs().max() <= 1e-5 * g1.abs().max()
    texts = ["a red circle", "a blue square on a green background"]
    assert (stock.encode_text(texts) - fast.encode_text(texts)).abs().max() <= 1e-5  # causal mask


def test_bfloat16_fast_path_is_close_to_float32_stock():
    stock, fast = _pair(tiny_clip())
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    (e32, g32), (e16, g16) = image_pass(stock, images), image_pass(fast, images, torch.bfloat16)
    assert F.cosine_similarity(e32, e16).min() >= 0.999
    assert F.cosine_similarity(g32.flatten(1), g16.flatten(1)).min() >= 0.99


def test_fast_path_matches_stock_on_a_real_size_vit():
    torch.manual_seed(0)
    stock, fast = _pair(open_clip.create_model("ViT-B-32-quickgelu"))
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    (e1, g1), (e2, g2) = image_pass(stock, images), image_pass(fast, images)
    assert (e1 - e2).abs().max() <= 1e-5 and (g1 - g2).abs().max() <= 1e-5 * g1.abs().max()


def test_class_token_block_is_used_only_where_nothing_reads_the_other_tokens():
    text = CLIPTextCfg(width=64, heads=1, layers=1)
    for pool in ("avg", "none"):
        torch.manual_seed(0)
        vision = CLIPVisionCfg(layers=2, width=64, patch_size=8, image_size=32, pool_type=pool)
        model = open_clip.CLIP(32, vision, text, quick_gelu=True).eval()
        assert not use_class_token_block(model.visual)
    vision = CLIPVisionCfg(layers=2, width=64, patch_size=8, image_size=32, output_tokens=True)
    assert not use_class_token_block(open_clip.CLIP(32, vision, text).visual)
    vision = CLIPVisionCfg(layers=2, width=64, patch_size=8, image_size=32, attentional_pool=True,
                           attn_pooler_queries=4, attn_pooler_heads=1)
    assert not use_class_token_block(open_clip.CLIP(32, vision, text).visual)
    assert not use_class_token_block(tiny_clip(resnet=True).visual)
    model = tiny_clip()
    assert use_class_token_block(model.visual)
    assert type(model.visual.transformer.resblocks[-1]) is ClassTokenBlock


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "sequence-first"])
def test_class_token_block_gives_the_stock_blocks_first_row(batch_first):
    torch.manual_seed(0)
    block = ResidualAttentionBlock(64, 4, ls_init_value=0.5, batch_first=batch_first).eval()
    stock = copy.deepcopy(block)
    block.__class__ = ClassTokenBlock
    x = torch.randn(3, 9, 64) if batch_first else torch.randn(9, 3, 64)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    first = stock(x1)[:, :1] if batch_first else stock(x1)[:1]
    out = block(x2)
    assert out.shape == first.shape and (out - first).abs().max() <= 1e-5
    weights = torch.randn(first.shape)
    (first * weights).sum().backward()
    (out * weights).sum().backward()
    assert (x1.grad - x2.grad).abs().max() <= 1e-5
    mask = torch.zeros(9, 9)
    mask[:, 4:] = float("-inf")  # a mask takes the stock block's path: every row comes back
    assert torch.allclose(block(x, attn_mask=mask), stock(x, attn_mask=mask), atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels-last"])
def test_class_token_pool_gives_the_stock_pools_output(channels_last):
    torch.manual_seed(0)
    pool = AttentionPool2d(3, 64, 4, output_dim=32).double().eval()
    stock = copy.deepcopy(pool)
    pool.__class__ = ClassTokenPool
    x = torch.randn(2, 64, 3, 3, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    expected, out = stock(x1), pool(x2)
    assert out.shape == expected.shape == (2, 32) and torch.allclose(out, expected, atol=1e-12)
    weights = torch.randn(expected.shape, dtype=torch.float64)
    (expected * weights).sum().backward()
    (out * weights).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-12)


def test_class_token_pool_is_used_only_for_a_resnets_attention_pool():
    assert not use_class_token_pool(tiny_clip().visual)
    visual = tiny_clip(resnet=True).visual
    assert use_class_token_pool(visual) and type(visual.attnpool) is ClassTokenPool
    assert not use_class_token_pool(visual)  # already switched: nothing more to do


def test_anything_but_plain_self_attention_takes_torchs_path():
    attention = nn.MultiheadAttention(16, 2, batch_first=True).eval()
    reference = copy.deepcopy(attention)
    assert use_fast_attention(attention) == 1 and type(attention) is FastSelfAttention
    x, y = torch.rand(2, 5, 16), torch.rand(2, 7, 16)
    out, weights = attention(x, y, y, need_weights=True)  # cross-attention, weights asked for
    expected, expected_weights = reference(x, y, y, need_weights=True)
    assert torch.equal(out, expected) and torch.equal(weights, expected_weights)
    mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)  # True: excluded, as torch reads it
    fast_out, none = attention(x, x, x, need_weights=False, attn_mask=mask)
    assert none is None
    assert torch.allclose(fast_out, reference(x, x, x, need_weights=False, attn_mask=mask)[0], atol=1e-6)


def test_lean_quick_gelu_is_quick_gelu_with_its_exact_gradient():
    x = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(quick_gelu(x), x * torch.sigmoid(1.702 * x))
    assert torch.autograd.gradcheck(quick_gelu, (x,))
    model = tiny_clip()
    gelus = sum(type(m) is QuickGELU for m in model.modules())
    assert gelus > 0 and use_lean_activations(model) == gelus
    assert not any(type(m) is QuickGELU for m in model.modules())


def _shrunk(config: dict) -> dict:
    """An open_clip model config with its structure (tower kind, activation, pooling, head width) and
    toy sizes."""
    config = copy.deepcopy(config)
    vision = config["vision_cfg"]
    if isinstance(vision["layers"], (list, tuple)):  # a ResNet tower
        vision.update(layers=[1, 1, 1, 1], width=8, image_size=32)
    else:
        vision.update(layers=2, width=64, patch_size=8, image_size=32)
        if "head_width" in vision:
            vision["head_width"] = 32
    config["text_cfg"].update(width=64, heads=1, layers=1)
    config["embed_dim"] = 32
    return config


#: Every architecture the CLIP catalog names.
CATALOG_ARCHITECTURES = sorted({entry.architecture for entry in CLIP_MODELS.values()
                                if entry.architecture is not None})


def shrunk_catalog_model(monkeypatch: pytest.MonkeyPatch, architecture: str) -> tuple[open_clip.CLIP, bool]:
    """A random model of ``architecture``'s structure at toy sizes (seed 0), and whether it is a ResNet."""
    config = _shrunk(open_clip.get_model_config(architecture))
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, architecture, config)
    torch.manual_seed(0)
    return open_clip.create_model(architecture), isinstance(config["vision_cfg"]["layers"], list)


@pytest.mark.parametrize("architecture", CATALOG_ARCHITECTURES)
def test_fast_path_matches_stock_for_every_catalog_architecture(monkeypatch, architecture):
    model, resnet = shrunk_catalog_model(monkeypatch, architecture)
    stock, fast = _pair(model)
    assert fast.class_token_block == (not resnet) and fast.channels_last == resnet
    assert fast.patch_matmul == (not resnet) and not stock.patch_matmul
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    (e1, g1), (e2, g2) = image_pass(stock, images), image_pass(fast, images)
    assert (e1 - e2).abs().max() <= 1e-5 and (g1 - g2).abs().max() <= 1e-5 * g1.abs().max()


@pytest.mark.parametrize("mask", [None, "bool", "float"])
def test_matmul_attention_is_scaled_dot_product_attention(mask):
    generator = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=generator, dtype=torch.float64) for _ in range(3))
    attn_mask = None
    if mask == "bool":
        attn_mask = torch.tril(torch.ones(7, 7, dtype=torch.bool))  # True keeps, as SDPA reads it
    elif mask == "float":
        attn_mask = torch.randn(7, 7, generator=generator, dtype=torch.float64)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    assert torch.allclose(matmul_attention(q, k, v, attn_mask), expected, atol=1e-12)


def _packed_reference(packed: torch.Tensor, heads: int) -> torch.Tensor:
    """The heads' outputs (B,L,D) of a packed projection (B,L,3D), through SDPA."""
    batch, length, width = packed.shape[0], packed.shape[1], packed.shape[2] // 3
    q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in packed.split(width, -1))
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, width)


def test_packed_heads_attention_is_scaled_dot_product_attention():
    generator = torch.Generator().manual_seed(6)
    packed = torch.randn(2, 7, 3 * 12, generator=generator, dtype=torch.float64, requires_grad=True)
    out, expected = PackedHeadsAttention.apply(packed, 3), _packed_reference(packed, 3)
    assert out.shape == (2, 7, 12) and torch.allclose(out, expected, atol=1e-12)
    weights = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    (grad,) = torch.autograd.grad((out * weights).sum(), packed)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), packed)
    assert torch.allclose(grad, expected_grad, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: PackedHeadsAttention.apply(x, 3), (packed[:1, :4],))


def test_packed_heads_attention_in_bfloat16_is_close_to_float64_sdpa():
    # A real block's proportions (50 tokens, heads of 64): oneDNN's bfloat16 matmuls, whose
    # uninitialised outputs (beta=0) must not leak into the results.
    generator = torch.Generator().manual_seed(7)
    packed = torch.randn(4, 50, 3 * 256, generator=generator, dtype=torch.float64)
    weights = torch.randn(4, 50, 256, generator=generator, dtype=torch.float64)
    results = []
    cases = ((torch.float64, _packed_reference), (torch.bfloat16, PackedHeadsAttention.apply))
    for dtype, attention in cases:
        x = packed.to(dtype).requires_grad_(True)
        out = attention(x, 4)
        (grad,) = torch.autograd.grad((out * weights.to(dtype)).sum(), x)
        # Each cutout's q, k and v gradients apart: (4*3, 50*256).
        parts = grad.double().unflatten(-1, (3, -1)).transpose(1, 2).flatten(2)
        results.append((out.double().flatten(1), parts))
    (out64, grad64), (out16, grad16) = results
    assert out16.isfinite().all() and grad16.isfinite().all()
    assert F.cosine_similarity(out64, out16).min() >= 0.999
    assert F.cosine_similarity(grad64.flatten(0, 1), grad16.flatten(0, 1)).min() >= 0.99
    assert torch.allclose(grad16.norm(dim=-1), grad64.norm(dim=-1), rtol=0.02)


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "sequence-first"])
def test_packed_self_attention_in_bfloat16_is_torchs_in_float32(batch_first):
    torch.manual_seed(8)
    stock = nn.MultiheadAttention(128, 2, batch_first=batch_first).eval()
    fast = copy.deepcopy(stock)
    fast.__class__ = FastSelfAttention
    x = torch.randn(3, 20, 128) if batch_first else torch.randn(20, 3, 128)
    weights = torch.randn(x.shape)
    results = []
    for module, dtype in ((stock, torch.float32), (fast, torch.bfloat16)):
        inputs = x.clone().requires_grad_(True)
        with autocast(x.device, dtype):
            out = module(inputs, inputs, inputs, need_weights=False)[0]
        (out.float() * weights).sum().backward()
        results.append((out.float().flatten(1), inputs.grad.flatten(1)))
    (out32, grad32), (out16, grad16) = results
    assert F.cosine_similarity(out32, out16).min() >= 0.999
    assert F.cosine_similarity(grad32, grad16).min() >= 0.99


def test_bfloat16_attention_on_the_cpu_takes_the_matmul_form(monkeypatch):
    calls, packed_calls = [], []

    def counted(*args, **kwargs):
        calls.append(args[0].dtype)
        return matmul_attention(*args, **kwargs)

    def counted_packed(packed, heads):
        packed_calls.append(packed.dtype)
        return apply(packed, heads)

    apply = PackedHeadsAttention.apply
    monkeypatch.setattr(attention_module, "matmul_attention", counted)
    monkeypatch.setattr(PackedHeadsAttention, "apply", counted_packed)
    torch.manual_seed(0)
    vision = CLIPVisionCfg(layers=3, width=128, patch_size=8, image_size=32)  # two heads of 64
    text = CLIPTextCfg(width=64, heads=1, layers=1)
    stock, fast = _pair(open_clip.CLIP(32, vision, text, quick_gelu=True).eval())
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    image_pass(fast, images)
    assert calls == [] and packed_calls == []  # float32 keeps torch's fused kernel
    (e32, g32), (e16, g16) = image_pass(stock, images), image_pass(fast, images, torch.bfloat16)
    # The first two blocks' self-attention is packed; the class-token block's query is its token alone.
    assert packed_calls == [torch.bfloat16] * 2 and calls == [torch.bfloat16]
    assert F.cosine_similarity(e32, e16).min() >= 0.999
    assert F.cosine_similarity(g32.flatten(1), g16.float().flatten(1)).min() >= 0.99
    with torch.no_grad(), autocast(images.device, torch.bfloat16):  # the text tower's causal mask
        texts = ["a red circle", "a blue square"]
        assert F.cosine_similarity(stock.encode_text(texts), fast.encode_text(texts)).min() >= 0.999


@pytest.mark.parametrize("size", [(32, 32), (37, 45)], ids=["whole patches", "a remainder"])
def test_patch_matmul_is_the_tiling_convolution(size):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 16, kernel_size=8, stride=8, bias=True)
    stock = copy.deepcopy(conv)
    conv.__class__ = PatchMatmulConv
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    conv, stock = conv.double(), stock.double()
    out, expected = conv(x2), stock(x1)
    assert out.shape == expected.shape and torch.allclose(out, expected, atol=1e-12)
    weights = torch.randn(expected.shape, dtype=torch.float64)
    (expected * weights).sum().backward()
    (out * weights).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-12)


def test_patch_matmul_is_used_only_for_a_vits_tiling_patch_embedding():
    overlapping = nn.Conv2d(3, 8, kernel_size=8, stride=4)
    model = tiny_clip()
    model.visual.conv1 = overlapping
    assert not use_patch_matmul(model.visual) and type(overlapping) is nn.Conv2d
    assert not use_patch_matmul(tiny_clip(resnet=True).visual)
    model = tiny_clip()
    assert use_patch_matmul(model.visual) and type(model.visual.conv1) is PatchMatmulConv
