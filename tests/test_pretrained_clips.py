"""LAION's and DataComp's CLIPs by open_clip's names (``ViT-B-32:laion2b_s34b_b79k``).

The real files are hundreds of megabytes and cannot be downloaded here: the tests shrink open_clip's
config of the named architecture to a toy (in open_clip's own table, for the test only), save a
model of it as open_clip saves its checkpoints, and load it through the catalog, the manifest and
open_clip's loader exactly as the real file would be.
"""

from __future__ import annotations

import copy
from pathlib import Path

import open_clip
import open_clip.factory
import pytest
import torch

from pixray.model_cache import ModelCache, weight_files
from pixray.perceptors import CLIP_MODELS, Perceptor
from pixray.settings import build_settings
from pixray.weights import MANIFEST, CheckpointError, MissingWeightsError

TOY = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
       "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}}
PRETRAINED = [name for name, entry in CLIP_MODELS.items() if entry.pretrained]


def _toy_architecture(monkeypatch: pytest.MonkeyPatch, architecture: str) -> None:
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, architecture, copy.deepcopy(TOY))


def _save_toy(path: Path, architecture: str, quick_gelu: bool = False, seed: int = 0) -> open_clip.CLIP:
    torch.manual_seed(seed)
    model = open_clip.create_model(architecture, force_quick_gelu=quick_gelu)
    torch.save(model.state_dict(), path)  # what open_clip_pytorch_model.bin holds
    return model


@pytest.mark.parametrize("name", PRETRAINED)
def test_each_name_is_open_clips_checkpoint_with_its_file_in_the_manifest(name):
    architecture, tag = name.split(":")
    entry = CLIP_MODELS[name]
    assert (entry.architecture, entry.pretrained) == (architecture, tag)
    config = open_clip.get_pretrained_cfg(architecture, tag)
    weight_file = MANIFEST[entry.filename]
    url = config["url"] or f"https://huggingface.co/{config['hf_hub']}resolve/main/open_clip_pytorch_model.bin"
    assert weight_file.urls == (url,)  # the file open_clip itself downloads
    if "mlfoundations" in url:  # open_clip's release files are named with their sha256's first digits
        assert url.endswith(f"-{weight_file.sha256}.pt") and len(weight_file.sha256) == 8
    assert isinstance(open_clip.get_tokenizer(architecture), open_clip.SimpleTokenizer)


def test_a_laion_clip_loads_with_its_architecture_normalisation_and_tokenizer(monkeypatch, tmp_path):
    _toy_architecture(monkeypatch, "ViT-L-14")
    expected = _save_toy(tmp_path / "ViT-L-14-laion2b_s32b_b82k.pt", "ViT-L-14").eval()
    before = torch.get_rng_state()
    perceptor = ModelCache(torch.device("cpu"), tmp_path).perceptors(["ViT-L-14:laion2b_s32b_b82k"])[0]
    assert torch.equal(torch.get_rng_state(), before)  # no random weights drawn to be overwritten
    assert isinstance(perceptor, Perceptor) and perceptor.name == "ViT-L-14:laion2b_s32b_b82k"
    # This checkpoint was trained on images scaled to [-1, 1], not with OpenAI's statistics.
    assert perceptor.mean.flatten().tolist() == [0.5] * 3 and perceptor.std.flatten().tolist() == [0.5] * 3
    activation = perceptor.model.visual.transformer.resblocks[0].mlp.gelu
    assert isinstance(activation, torch.nn.GELU)  # LAION trained these with GELU, OpenAI with QuickGELU
    images = torch.rand(2, 3, 32, 32)
    texts = ["a lighthouse", "a storm at sea"]
    with torch.no_grad():
        tokens = open_clip.get_tokenizer("ViT-L-14")(texts)
        want_text = torch.nn.functional.normalize(expected.encode_text(tokens), dim=-1)
        want_image = torch.nn.functional.normalize(expected.encode_image((images - 0.5) / 0.5), dim=-1)
        assert torch.allclose(perceptor.encode_text(texts), want_text, atol=1e-5)
        assert torch.allclose(perceptor.encode_image(images), want_image, atol=1e-5)


def test_a_quickgelu_checkpoint_is_built_with_quickgelu(monkeypatch, tmp_path):
    _toy_architecture(monkeypatch, "ViT-B-32")
    expected = _save_toy(tmp_path / "ViT-B-32-laion400m_e32.pt", "ViT-B-32", quick_gelu=True).eval()
    import pixray.weights

    monkeypatch.setattr(pixray.weights, "verify", lambda path, entry: None)  # a toy has another sha256
    perceptor = ModelCache(torch.device("cpu"), tmp_path).perceptors(["ViT-B-32:laion400m_e32"])[0]
    images = torch.rand(2, 3, 32, 32)
    mean, std = torch.tensor(open_clip.OPENAI_DATASET_MEAN), torch.tensor(open_clip.OPENAI_DATASET_STD)
    with torch.no_grad():
        want = torch.nn.functional.normalize(expected.encode_image((images - mean[:, None, None])
                                                                   / std[:, None, None]), dim=-1)
        assert torch.allclose(perceptor.encode_image(images), want, atol=1e-5)


def test_the_fast_path_gives_the_stock_modules_embeddings_for_a_gelu_clip(monkeypatch, tmp_path):
    _toy_architecture(monkeypatch, "ViT-B-16")
    model = _save_toy(tmp_path / "m.pt", "ViT-B-16")
    fast = Perceptor("f", copy.deepcopy(model), fast=True)
    stock = Perceptor("s", copy.deepcopy(model), fast=False)
    images = torch.rand(3, 3, 32, 32, requires_grad=True)
    fast_embeds = fast.encode_image(images)
    grad_fast, = torch.autograd.grad(fast_embeds.sum(), images)
    stock_embeds = stock.encode_image(images)
    grad_stock, = torch.autograd.grad(stock_embeds.sum(), images)
    assert torch.allclose(fast_embeds, stock_embeds, atol=1e-5)
    assert torch.allclose(grad_fast, grad_stock, atol=1e-5)


def test_a_missing_or_wrong_file_says_which_and_how_to_fetch_it(monkeypatch, tmp_path):
    models = ModelCache(torch.device("cpu"), tmp_path)
    missing = r"ViT-B-16-datacomp_xl_s13b_b90k\.pt.*pixray\.weights download"
    with pytest.raises(MissingWeightsError, match=missing):
        models.perceptors(["ViT-B-16:datacomp_xl_s13b_b90k"])
    _toy_architecture(monkeypatch, "ViT-B-16")
    torch.save({"visual.proj": torch.zeros(2, 2)}, tmp_path / "ViT-B-16-datacomp_xl_s13b_b90k.pt")
    with pytest.raises(CheckpointError, match=r"does not hold ViT-B-16 datacomp_xl_s13b_b90k's weights"):
        models.perceptors(["ViT-B-16:datacomp_xl_s13b_b90k"])


def test_the_names_are_settings_like_any_clip_model():
    settings = build_settings({"clip_models": "ViT-B/32,ViT-B-32:laion2b_s34b_b79k"})
    assert settings.clip_models == ["ViT-B/32", "ViT-B-32:laion2b_s34b_b79k"]
    assert weight_files("ViT-B-32:laion2b_s34b_b79k") == ["ViT-B-32-laion2b_s34b_b79k.pt"]
