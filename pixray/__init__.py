"""pixray: CLIP-guided image generation.

>>> import pixray                                                           # doctest: +SKIP
>>> run = pixray.generate(prompts="a red circle", drawer="pixel", iterations=50)  # doctest: +SKIP
>>> image = run.final_image()  # a PIL image                                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .engine import Run, Step
from .options import SettingsError
from .perceptors import Perceptor, PerceptorCache
from .settings import Settings, build_settings, parse_settings_text, read_settings_file
from .weights import MissingWeightsError

__all__ = ["MissingWeightsError", "Perceptor", "PerceptorCache", "Run", "Settings", "SettingsError",
           "Step", "build_settings", "generate", "parse_settings_text", "read_settings_file"]


def generate(settings: Settings | Mapping[str, Any] | None = None,
             perceptors: PerceptorCache | Sequence[Perceptor] | None = None, **kwargs: Any) -> Run:
    """A prepared :class:`Run`; iterate it for :class:`Step` objects or call ``final_image()``.

    ``settings`` is a :class:`Settings` or a flat ``name -> value`` mapping; keyword arguments
    override it. Bad settings raise :class:`SettingsError` here, before any work starts.
    """
    if isinstance(settings, Settings):
        settings = settings.replace(**kwargs) if kwargs else settings
    else:
        settings = build_settings(settings, kwargs)
    return Run(settings, perceptors)
