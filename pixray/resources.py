"""What a run's parts (custom losses, filters) may use when they are made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model cache imports the settings, which import every part
    from .init_images import ImageReader
    from .model_cache import ModelCache


@dataclass(frozen=True)
class Resources:
    """The run's model cache (for a part's own models: an aesthetic head, VGG16) and its image
    reader (for files a part's settings name: a palette's image; a server reads only uploads)."""

    models: ModelCache
    images: ImageReader
