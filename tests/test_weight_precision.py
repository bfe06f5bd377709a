"""Perceptors whose matmul weights are stored in bfloat16 (the CPU's bfloat16 runs): the values autocast
would cast them to, QuickGELU's slope folded into the MLPs, norms and embeddings left in float32."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import image_pass, tiny_clip
from test_fast_attention import CATALOG_ARCHITECTURES, shrunk_catalog_model

from pixray.engine import Run
from pixray.model_cache import ModelCache
from pixray.perceptors import Perceptor
from pixray.perceptors.activation import FoldedQuickGELU, fold_quick_gelu
from pixray.runtime import weights_precision
from pixray.settings import build_settings


def test_folding_quick_gelus_slope_keeps_the_models_results():
    model = tiny_clip()
    stock = Perceptor("stock", copy.deepcopy(model), fast=False)
    folded_model = copy.deepcopy(model)
    mlps = sum(1 for m in folded_model.modules() if hasattr(m, "c_fc"))
    assert fold_quick_gelu(folded_model) == mlps > 0
    assert fold_quick_gelu(folded_model) == 0  # once only: the slope is not folded in twice
    assert sum(type(m) is FoldedQuickGELU for m in folded_model.modules()) == mlps
    folded = Perceptor("folded", folded_model, fast=False)
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    (e1, g1), (e2, g2) = image_pass(stock, images), image_pass(folded, images)
    assert (e1 - e2).abs().max() <= 1e-5 and (g1 - g2).abs().max() <= 1e-5 * g1.abs().max()
    texts = ["a red circle", "a green square"]
    assert (stock.encode_text(texts) - folded.encode_text(texts)).abs().max() <= 1e-5


@pytest.mark.parametrize("architecture", CATALOG_ARCHITECTURES)
def test_bfloat16_weights_give_float32s_results_for_every_catalog_architecture(monkeypatch, architecture):
    model, _ = shrunk_catalog_model(monkeypatch, architecture)
    stock = Perceptor("stock", copy.deepcopy(model), fast=False)
    autocast_only = Perceptor("autocast", copy.deepcopy(model))
    stored = Perceptor("stored", model).store_weights_in(torch.bfloat16)
    assert stored.weights_dtype == torch.bfloat16
    dtypes = {name: param.dtype for name, param in stored.model.named_parameters()}
    projection = "visual.proj" if "visual.proj" in dtypes else "visual.attnpool.c_proj.weight"
    assert dtypes[projection] == dtypes["text_projection"] == torch.bfloat16
    assert dtypes["ln_final.weight"] == dtypes["token_embedding.weight"] == torch.float32
    assert all(dtype == torch.float32 for name, dtype in dtypes.items() if ".ln_" in name or ".bn" in name)
    layers = [m for m in stored.model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert layers and all(layer.weight.dtype == torch.bfloat16 for layer in layers)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    e32, g32 = image_pass(stock, images)
    for perceptor in (autocast_only, stored):
        e16, g16 = image_pass(perceptor, images, torch.bfloat16)
        assert F.cosine_similarity(e32, e16).min() >= 0.999, perceptor.name
        assert F.cosine_similarity(g32.flatten(1), g16.flatten(1)).min() >= 0.99, perceptor.name
    texts = ["a red circle", "a blue square on a green background"]
    # Outside an autocast the perceptor makes its own: bfloat16 weights never meet float32 inputs.
    assert F.cosine_similarity(stock.encode_text(texts), stored.encode_text(texts)).min() >= 0.999
    assert F.cosine_similarity(e32, stored.encode_image(images)).min() >= 0.999


def test_weights_are_stored_once_and_only_in_half_precision():
    perceptor = Perceptor("tiny", tiny_clip())
    assert perceptor.store_weights_in(torch.float32) is perceptor and perceptor.weights_dtype == torch.float32
    weight = perceptor.model.visual.transformer.resblocks[0].mlp.c_fc.weight
    before = weight.detach().clone()
    perceptor.store_weights_in(torch.bfloat16).store_weights_in(torch.bfloat16)  # the second does nothing
    assert torch.equal(weight.detach(), (before * 1.702).bfloat16())
    with pytest.raises(ValueError, match=r"already torch\.bfloat16; load it again"):
        perceptor.store_weights_in(torch.float32)


def test_the_cache_keeps_a_perceptor_per_weights_precision(tiny_checkpoint, tmp_path):
    cache = ModelCache(torch.device("cpu"), tmp_path)
    full = cache.perceptors([str(tiny_checkpoint)])[0]
    half = cache.perceptors([str(tiny_checkpoint)], torch.bfloat16)[0]
    assert full is not half and cache.loads == 2
    assert full.weights_dtype == torch.float32 and half.weights_dtype == torch.bfloat16
    assert cache.perceptors([str(tiny_checkpoint)], torch.bfloat16)[0] is half and cache.loads == 2
    assert cache.held_bytes() < 2 * sum(p.numel() * 4 for p in full.model.parameters())
    cache.preload([str(tiny_checkpoint)], torch.bfloat16)
    assert cache.loads == 2


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_cpu_run_asks_for_its_perceptors_weights_in_its_precision(tiny_checkpoint, tmp_path, precision):
    assert weights_precision(torch.device("cpu"), torch.bfloat16) == torch.bfloat16
    assert weights_precision(torch.device("cuda"), torch.bfloat16) == torch.float32
    settings = build_settings({"prompts": "a red circle", "clip_models": str(tiny_checkpoint),
                               "size": "32 32", "iterations": 2, "num_cuts": 4, "drawer": "pixel",
                               "device": "cpu", "precision": precision, "seed": 0})
    run = Run(settings, models=ModelCache(torch.device("cpu"), tmp_path))
    assert run.perceptors[0].weights_dtype == getattr(torch, precision)
    steps = list(run)
    assert all(torch.isfinite(step.losses["total"]) for step in steps)
