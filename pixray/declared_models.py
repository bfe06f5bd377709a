"""Models that parts (drawers, custom losses, filters) load, declared by the parts themselves.

A part names the models it can load (a VQGAN by Pixray's name, VGG16 for the style loss) with their
weight files and a loader, and says which of them its options need. The model cache's preload, the
``python -m pixray.weights download`` command and a server's setup loop over the registries, so no
code outside a part's own file names its models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model_cache import ModelCache


@dataclass(frozen=True)
class DeclaredModel:
    """A model by the name users give it (``PIXRAY_PRELOAD``, ``python -m pixray.weights download``):
    its weight files (in the manifest) and how to load it into a cache, where it is kept."""

    files: tuple[str, ...]
    load: Callable[[ModelCache], object]


class DeclaresModels:
    """What a part that loads models says about them; parts without models keep the defaults."""

    @classmethod
    def declared_models(cls) -> Mapping[str, DeclaredModel]:
        """Every model this part can load, by name."""
        return {}

    @classmethod
    def models_needed(cls, options: Any) -> list[str]:
        """Names (of :meth:`declared_models`) that a run with ``options`` loads; none when the
        options name files by path instead."""
        return []
