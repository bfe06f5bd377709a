"""Pixray's CLIP model names -> open_clip architecture and the weight file that holds them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..options import SettingsError
from ..registry import Registry, unknown_name_message
from ..weights import PACKAGED_WEIGHTS, find_weight_file, open_clip_filename


@dataclass(frozen=True)
class CatalogEntry:
    """A named CLIP model: its weight file and open_clip architecture.

    Real CLIPs live in the weights directory (see the weights manifest); the shapes-world models
    ship inside the package (``packaged``), in the same checkpoint format. OpenAI's (and ours) are
    in OpenAI's layout, their architecture read from their tensors' shapes; those with a
    ``pretrained`` tag are open_clip's checkpoints of ``architecture`` (see pretrained.py).
    """

    filename: str
    architecture: str | None
    packaged: bool = False
    pretrained: str | None = None


def _open_clip(architecture: str, tag: str) -> tuple[str, CatalogEntry]:
    """open_clip's ``architecture`` trained as ``tag``, named ``ARCHITECTURE:TAG``."""
    return f"{architecture}:{tag}", CatalogEntry(open_clip_filename(architecture, tag), architecture,
                                                 pretrained=tag)


CLIP_MODELS: Registry[CatalogEntry] = Registry("CLIP model", {
    "RN50": CatalogEntry("RN50.pt", "RN50-quickgelu"),
    "RN101": CatalogEntry("RN101.pt", "RN101-quickgelu"),
    "RN50x4": CatalogEntry("RN50x4.pt", "RN50x4-quickgelu"),
    "RN50x16": CatalogEntry("RN50x16.pt", "RN50x16-quickgelu"),
    "RN50x64": CatalogEntry("RN50x64.pt", "RN50x64-quickgelu"),
    "ViT-B/32": CatalogEntry("ViT-B-32.pt", "ViT-B-32-quickgelu"),
    "ViT-B/16": CatalogEntry("ViT-B-16.pt", "ViT-B-16-quickgelu"),
    "ViT-L/14": CatalogEntry("ViT-L-14.pt", "ViT-L-14-quickgelu"),
    "ViT-L/14@336px": CatalogEntry("ViT-L-14-336px.pt", "ViT-L-14-336-quickgelu"),
    # LAION's and DataComp's CLIPs (open_clip's names), the strongest open ones.
    **dict(_open_clip(architecture, tag) for architecture, tag in (
        ("ViT-B-32", "laion2b_s34b_b79k"), ("ViT-B-32", "laion400m_e32"),
        ("ViT-B-32", "datacomp_xl_s13b_b90k"),
        ("ViT-B-16", "laion2b_s34b_b88k"), ("ViT-B-16", "laion400m_e32"),
        ("ViT-B-16", "datacomp_xl_s13b_b90k"),
        ("ViT-L-14", "laion2b_s32b_b82k"), ("ViT-L-14", "datacomp_xl_s13b_b90k"),
        ("ViT-H-14", "laion2b_s32b_b79k"))),
    # Tiny CLIPs of the synthetic shapes world (pixray.demo), for offline demos and tests.
    "shapes-demo": CatalogEntry("shapes-demo.pt", None, packaged=True),
    "shapes-demo-rn": CatalogEntry("shapes-demo-rn.pt", None, packaged=True),
    "shapes-judge": CatalogEntry("shapes-judge.pt", None, packaged=True),
})


def check_clip_model(name: str) -> None:
    """Raise :class:`SettingsError` (the valid names, the closest first) unless ``name`` is a catalog
    name or the path of an existing file: cheap, so a run reports it before loading anything."""
    if name not in CLIP_MODELS and not Path(name).expanduser().is_file():
        raise SettingsError(unknown_name_message("CLIP model", name, list(CLIP_MODELS)) +
                            "; or give the path of an existing checkpoint file")


def checkpoint_path(name: str, weights_dir: Path) -> Path:
    """The file holding CLIP model ``name``: a catalog name or a path to a checkpoint."""
    check_clip_model(name)
    if name in CLIP_MODELS:
        entry = CLIP_MODELS[name]
        directory = PACKAGED_WEIGHTS if entry.packaged else weights_dir
        return find_weight_file(entry.filename, directory)
    return Path(name).expanduser()
