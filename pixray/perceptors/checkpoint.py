"""Reading a CLIP checkpoint in OpenAI's layout into an open_clip ``CLIP`` module.

Accepted files: OpenAI's TorchScript archives, plain state dicts saved with ``torch.save``, and
either wrapped as ``{"state_dict": ...}`` (optionally with ``module.`` prefixes). The architecture
is inferred from tensor shapes, so non-standard sizes load too (e.g. a context length other than
77 or an input resolution other than 224). Attention heads are taken as width // 64 (OpenAI's
convention), at least one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import open_clip
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from ..weights import CheckpointError
from ..weights.torch_file import read_torch_file
from ..weights.without_initialisation import built_without_initialisation

# Non-tensor metadata that OpenAI's archives carry alongside the weights.
_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a CLIP checkpoint file (TorchScript archive or ``torch.save`` dict)."""
    try:
        with warnings.catch_warnings():
            # OpenAI ships TorchScript archives; torch's deprecation notice is not actionable here.
            warnings.simplefilter("ignore", FutureWarning)
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
    except RuntimeError:
        state = read_torch_file(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{str(path)!r} holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items() if k not in _METADATA_KEYS}


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    """Number of numbered blocks under ``prefix`` (e.g. ``transformer.resblocks.``)."""
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def _vision_config(state: dict[str, torch.Tensor]) -> CLIPVisionCfg:
    if "visual.proj" in state:
        width, _, patch, _ = state["visual.conv1.weight"].shape
        grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        return CLIPVisionCfg(layers=_count(state, "visual.transformer.resblocks."), width=width,
                             head_width=min(64, width), patch_size=patch, image_size=patch * grid)
    if "visual.layer1.0.conv1.weight" in state:
        layers = tuple(_count(state, f"visual.layer{i}.") for i in (1, 2, 3, 4))
        width = state["visual.layer1.0.conv1.weight"].shape[0]
        grid = round((state["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        return CLIPVisionCfg(layers=layers, width=width, head_width=64,
                             patch_size=None, image_size=grid * 32)
    raise CheckpointError("no vision tower found (expected 'visual.proj' or 'visual.layer1.*' keys)")


def _text_config(state: dict[str, torch.Tensor]) -> CLIPTextCfg:
    width = state["ln_final.weight"].shape[0]
    return CLIPTextCfg(
        context_length=state["positional_embedding"].shape[0],
        vocab_size=state["token_embedding.weight"].shape[0],
        width=width,
        heads=max(1, width // 64),
        layers=_count(state, "transformer.resblocks."),
    )


def build_clip(state: dict[str, torch.Tensor]) -> open_clip.CLIP:
    """An open_clip ``CLIP`` (float32, eval mode) holding the weights of an OpenAI-layout state dict:
    its float32 tensors themselves (not copies), float32 copies of the others."""
    try:
        vision, text = _vision_config(state), _text_config(state)
        # The strict load below replaces every weight: none need drawing at random first, and the
        # float32 tensors loaded take the places of the layers' own (assign), never copied into them.
        model = built_without_initialisation(lambda: open_clip.CLIP(
            embed_dim=state["text_projection"].shape[1],
            vision_cfg=vision,
            text_cfg=text,
            quick_gelu=True,  # OpenAI's CLIPs (and ours) are trained with QuickGELU
        ))
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"not a CLIP state dict in OpenAI layout: {exc}") from exc
    return model.float().eval()


def load_clip_checkpoint(path: str | Path) -> open_clip.CLIP:
    """Read and build the CLIP model stored at ``path``."""
    path = Path(path)
    try:
        return build_clip(read_state_dict(path))
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def openai_state_dict(model: open_clip.CLIP, half: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of ``model`` in OpenAI's layout (what :func:`build_clip` reads back)."""
    dtype = torch.float16 if half else None
    return {k: (v.to(dtype) if dtype and v.is_floating_point() else v).clone()
            for k, v in model.state_dict().items()}
