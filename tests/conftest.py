"""Shared fixtures: tiny random CLIP models (milliseconds) and checkpoint files in OpenAI's layout."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from torch import nn

from pixray.cli import _values, build_parser
from pixray.perceptors import Perceptor, openai_state_dict
from pixray.runtime import autocast
from pixray.settings import Settings, build_settings

#: Tests of oneDNN's primitives, skipped where torch was built without it or its bfloat16 kernels.
needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="needs oneDNN")
needs_onednn_bf16 = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    reason="oneDNN's bfloat16 kernels need AVX512 (BW, VL, DQ) or AVX-NE-CONVERT")


def flag_settings(argv: list[str]) -> Settings:
    """The settings the ``pixray`` command builds from these command-line words (no config files)."""
    args = vars(build_parser().parse_args(argv))
    args.pop("config"), args.pop("quiet")
    return build_settings(_values(args))


def tiny_clip(image_size: int = 32, context_length: int = 77, resnet: bool = False,
              seed: int = 0) -> open_clip.CLIP:
    """A random CLIP with real structure and tiny widths (widths are multiples of 64 so that the
    head count follows OpenAI's width // 64 convention the loader infers)."""
    torch.manual_seed(seed)
    if resnet:
        vision = CLIPVisionCfg(layers=(1, 1, 1, 1), width=8, image_size=image_size)
    else:
        vision = CLIPVisionCfg(layers=1, width=64, patch_size=8, image_size=image_size)
    text = CLIPTextCfg(context_length=context_length, vocab_size=49408, width=64, heads=1, layers=1)
    return open_clip.CLIP(32, vision, text, quick_gelu=True).eval()


def image_pass(perceptor: Perceptor, images: torch.Tensor,
               dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings (B,D) of ``images`` computed in ``dtype`` and the gradient of a fixed function of them
    with respect to the images."""
    images = images.clone().requires_grad_(True)
    with autocast(images.device, dtype):
        embeds = perceptor.encode_image(images)
    (embeds * torch.linspace(-1, 1, embeds.shape[-1])).sum().backward()
    return embeds.detach(), images.grad


def trained_batch_norms(model: nn.Module, seed: int = 9) -> nn.Module:
    """``model`` with random running statistics and affine parameters in its batch norms, as a
    trained model has (a fresh one's are the identity)."""
    generator = torch.Generator().manual_seed(seed)
    for norm in model.modules():
        if isinstance(norm, nn.BatchNorm2d):
            size = norm.num_features
            norm.running_mean.copy_(torch.randn(size, generator=generator) * 0.3)
            norm.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            norm.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            norm.bias.data.copy_(torch.randn(size, generator=generator) * 0.2)
    return model


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: thread hand-offs cost more than they save on 2 cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch: pytest.MonkeyPatch):
    # The commands fetch missing weight files; the tests that want that say so (and serve them locally).
    monkeypatch.setenv("PIXRAY_DOWNLOAD", "0")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLIP saved as a plain OpenAI-layout state dict, half precision like OpenAI's files."""
    path = tmp_path_factory.mktemp("clip") / "tiny-vit.pt"
    torch.save(openai_state_dict(tiny_clip(), half=True), path)
    return path


@pytest.fixture(scope="session")
def tiny_perceptor() -> Perceptor:
    return Perceptor("tiny", tiny_clip())


@pytest.fixture
def small_settings(tmp_path: Path) -> dict:
    """Settings for a fast run on a tiny canvas, writing under tmp_path."""
    return {"prompts": "a red circle", "drawer": "pixel", "size": [32, 24], "iterations": 4, "num_cuts": 4,
            "seed": 1, "outdir": str(tmp_path / "out"), "device": "cpu"}
