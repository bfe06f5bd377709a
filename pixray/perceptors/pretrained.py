"""CLIPs that open_clip knows by architecture and pretrained tag (LAION's and DataComp's).

Their files are open_clip state dicts; the network is built from open_clip's config for the
architecture (GELU where they were trained with it, QuickGELU where open_clip says so), read by
open_clip's own checkpoint loader, and used with the normalisation and tokenizer open_clip records
for that checkpoint (ViT-L-14 laion2b_s32b_b82k was trained on images scaled to [-1,1], not with
OpenAI's statistics).
"""

from __future__ import annotations

from pathlib import Path

import open_clip

from ..weights import CheckpointError
from ..weights.without_initialisation import built_without_initialisation
from .perceptor import Perceptor


def load_pretrained_clip(name: str, path: Path, architecture: str, tag: str) -> Perceptor:
    """The perceptor ``name``: open_clip's ``architecture`` with the weights of ``tag`` read from ``path``."""
    config = open_clip.get_pretrained_cfg(architecture, tag)
    if not config:
        raise CheckpointError(f"open_clip knows no pretrained {architecture} called {tag!r}")
    quick_gelu = bool(config.get("quick_gelu", False))
    # The checkpoint, loaded strictly, overwrites every weight: none need drawing at random first.
    model = built_without_initialisation(
        lambda: open_clip.create_model(architecture, force_quick_gelu=quick_gelu))
    try:
        open_clip.load_checkpoint(model, str(path), strict=True)
    except Exception as exc:  # unreadable, another network's keys or shapes: one message
        detail = str(exc).strip().splitlines()
        raise CheckpointError(f"{str(path)!r} does not hold {architecture} {tag}'s weights: "
                              f"{detail[0] if detail else type(exc).__name__}") from None
    return Perceptor(name, model.float(), mean=config["mean"], std=config["std"],
                     tokenizer=open_clip.get_tokenizer(architecture))
