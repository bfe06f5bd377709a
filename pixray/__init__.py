"""pixray: CLIP-guided image generation.

>>> import pixray                                                           # doctest: +SKIP
>>> run = pixray.generate(prompts="a red circle", drawer="pixel", iterations=50)  # doctest: +SKIP
>>> image = run.final_image()  # a PIL image                                # doctest: +SKIP

The engine and the CLIP stack (open_clip, torchvision: seconds to import) load on first
use, so settings can be checked and ``pixray --help`` answered without them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import RunError, SettingsError
from .settings import Settings, build_settings, parse_settings_text, read_settings_file
from .weights import MissingWeightsError

if TYPE_CHECKING:
    from PIL import Image

    from .engine import Drawn, Run, Step
    from .model_cache import ModelCache
    from .perceptors import Perceptor

__all__ = ["Drawn", "MissingWeightsError", "ModelCache", "Perceptor", "Run", "RunError", "Settings",
           "SettingsError", "Step", "build_settings", "generate", "parse_settings_text", "read_settings_file",
           "run"]

_LAZY = {"Run": "engine", "Step": "engine", "Drawn": "engine", "Perceptor": "perceptors",
         "ModelCache": "model_cache"}


#: Pixray's notebook helpers, which kept the settings in module globals between calls.
_PIXRAY_GLOBAL_HELPERS = ("reset_settings", "add_settings", "get_settings", "apply_settings", "do_init",
                          "do_run", "command_line_override")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _PIXRAY_GLOBAL_HELPERS:
        raise AttributeError(f"Pixray's pixray.{name} (settings kept between calls in module "
                             "globals) is not part of this pixray: pass the settings to one call "
                             "instead, pixray.run(prompts, drawer, **settings) as in Pixray (it writes "
                             "into outdir and returns the image; in a notebook it shows it as it forms), "
                             "or pixray.generate(**settings) to go through the steps yourself")
    raise AttributeError(f"module 'pixray' has no attribute {name!r}")


def generate(settings: Settings | Mapping[str, Any] | None = None,
             perceptors: Sequence[Perceptor] | None = None, models: ModelCache | None = None,
             **kwargs: Any) -> Run:
    """A prepared :class:`Run`; iterate it for :class:`Step` objects or call ``final_image()``.

    ``settings`` is a :class:`Settings` or a flat ``name -> value`` mapping; keyword arguments
    override it. Bad settings raise :class:`SettingsError` here, before any work starts.
    ``perceptors`` replaces the settings' clip_models with an explicit ensemble; ``models`` is a
    :class:`ModelCache` to load models through and keep them in (across runs).
    """
    from .engine import Run

    if isinstance(settings, Settings):
        settings = settings.replace(**kwargs) if kwargs else settings
    else:
        settings = build_settings(settings, kwargs)
    if settings.animation_dir:
        raise SettingsError("setting 'animation_dir': pixray.generate makes one picture; an animation runs "
                            "through pixray.run or pixray.animation.Animation")
    return Run(settings, perceptors, models)


def run(prompts: str | None = None, drawer: str = "vqgan", **settings: Any) -> Image.Image:
    """Pixray's one call: run to the end, writing into ``outdir`` what the ``pixray`` command writes
    (``settings.yaml``, the image every ``save_every`` steps and at the end); returns the final image
    (with ``animation_dir``, the animation's GIF), after fetching the weight files the run misses, as the
    command does (not with ``$PIXRAY_DOWNLOAD`` ``0``). Its progress bar is the command's, on standard
    error (``$TQDM_DISABLE`` ``1`` hides it). In a Jupyter notebook it also shows the image every
    ``display_every`` steps and at the end (``display_clear``: each in place of the one before), or
    the animation's GIF when it is made.

    >>> image = pixray.run("a lighthouse at dawn", "pixel", iterations=100)  # doctest: +SKIP
    """
    from .console import animation_bar, download_bar, run_bar
    from .engine import Run
    from .model_cache import ModelCache, fetching_missing
    from .notebook import notebook_display, show_file_in_notebook
    from .output import OutputWriter

    values = build_settings({**({"prompts": prompts} if prompts is not None else {}), "drawer": drawer},
                            settings)
    models = ModelCache.for_settings(values)
    if values.animation_dir:
        from PIL import Image

        from .animation import Animation, AnimationWriter

        writer = AnimationWriter(values)
        animation = fetching_missing(lambda: Animation(values, models=models), models.weights_dir,
                                     download_bar)
        with animation_bar(animation.runs[0].plan.iterations, quiet=False) as progress:
            gif = writer.save(animation, progress)
        show_file_in_notebook(gif, values)
        return Image.open(gif)
    writer = OutputWriter(values)
    run = fetching_missing(lambda: Run(values, models=models), models.weights_dir, download_bar)
    show = notebook_display(values)
    with run_bar(run, quiet=False) as advance:
        def progress(step: Step) -> None:
            advance(step)
            if show is not None:
                show(step)

        return writer.save_run(run, progress, drawn=show).pil()
