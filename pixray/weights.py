"""Where weight files live and what each downloadable file is (URL, sha256).

Weights are never fetched implicitly by library code: a missing file raises
:class:`MissingWeightsError` naming the file, the directory searched and where to get it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .registry import Registry

WEIGHTS_ENV = "PIXRAY_WEIGHTS_DIR"
# Small weight files that ship inside the package (the shapes-world CLIPs).
PACKAGED_WEIGHTS = Path(__file__).parent / "demo" / "weights"


class MissingWeightsError(FileNotFoundError):
    """A weight file is not in the weights directory."""


class CheckpointError(ValueError):
    """A weight file is not in a layout its loader understands."""


@dataclass(frozen=True)
class WeightFile:
    """One downloadable weight file."""

    filename: str
    url: str
    sha256: str | None = None
    size: int | None = None


def _openai_clip(digest: str, filename: str) -> WeightFile:
    # OpenAI publishes each checkpoint under its own sha256.
    return WeightFile(filename, f"https://openaipublic.azureedge.net/clip/models/{digest}/{filename}", digest)


MANIFEST: Registry[WeightFile] = Registry("weight file", {f.filename: f for f in [
    _openai_clip("afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "RN50.pt"),
    _openai_clip("8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599", "RN101.pt"),
    _openai_clip("7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd", "RN50x4.pt"),
    _openai_clip("52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa", "RN50x16.pt"),
    _openai_clip("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "ViT-B-32.pt"),
    _openai_clip("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "ViT-B-16.pt"),
    _openai_clip("b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "ViT-L-14.pt"),
    _openai_clip("3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", "ViT-L-14-336px.pt"),
]})


def weights_dir(setting: str | None = None) -> Path:
    """The weights directory: the ``weights_dir`` setting, else ``$PIXRAY_WEIGHTS_DIR``, else ./weights."""
    return Path(setting or os.environ.get(WEIGHTS_ENV) or "weights")


def find_weight_file(filename: str, directory: Path) -> Path:
    """The path of ``filename`` inside ``directory``; raises :class:`MissingWeightsError` if absent."""
    path = directory / filename
    if path.is_file():
        return path
    entry = MANIFEST.get(filename)
    if directory == PACKAGED_WEIGHTS:
        source = "it ships with pixray (reinstall, or rebuild it with python -m pixray.demo.train)"
    else:
        source = f"download it from {entry.url}" if entry else "it is not in the download manifest"
    raise MissingWeightsError(
        f"weight file {filename!r} not found in {str(directory.resolve())!r}: {source} into that "
        f"directory, or point the weights_dir setting or ${WEIGHTS_ENV} at a directory holding it")
