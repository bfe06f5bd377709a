"""What one request may ask of a server: a work and memory budget that the server owner sets.

Each setting has its own bound, but their product does not: ``num_cuts: 1024, batches: 64`` over
100000 iterations is within every bound and would hold a GPU for weeks. A :class:`Budget` bounds
what a run costs before any work starts, and a server refuses a request over it with a message
naming the limit and the environment variable that sets it. The defaults let every quality
preset run at any aspect and keep a 16 GB (T4-class) GPU alive.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .options import SettingsError
from .prompts import parse_prompts
from .settings import Plan, Settings

ENV_PREFIX = "PIXRAY_MAX_"


@dataclass(frozen=True)
class Budget:
    """Per-request limits; field ``x`` is set by ``$PIXRAY_MAX_X`` (0 turns a limit off)."""

    iterations: int = 2000
    canvas_pixels: int = 1280 * 1280  # width x height of the canvas
    cuts: int = 128  # cutouts in one batch, per CLIP model resolution: what peak memory grows with
    clip_models: int = 4
    work: int = 250_000  # iterations x num_cuts x batches x CLIP models: CLIP passes, what time grows with
    prompts: int = 64
    prompt_chars: int = 4000  # all prompts together (they are copied into every image's metadata)
    settings_chars: int = 20_000  # the ``settings`` text input
    image_pixels: int = 40_000_000  # an uploaded image, checked before it is decoded
    seconds: int = 3600  # wall-clock time of one prediction

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Budget:
        """The defaults, changed by ``PIXRAY_MAX_*`` variables (whole numbers >= 0)."""
        environ = os.environ if environ is None else environ
        changes = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name in environ:
                text = environ[name].strip()
                if not text.isdigit():
                    raise SettingsError(f"${name}: {text[:40]!r} is not allowed; expected a whole number "
                                        ">= 0 (0: no limit)")
                changes[f.name] = int(text)
        return cls(**changes)

    def check(self, settings: Settings, plan: Plan) -> None:
        """Raise :class:`SettingsError` naming the first limit the run of ``settings`` exceeds."""
        prompts = parse_prompts(settings.prompts)
        models = len(plan.clip_models)
        work = plan.iterations * plan.num_cuts * plan.batches * models
        for name, value, what in (
            ("iterations", plan.iterations, "iterations"),
            ("canvas_pixels", plan.width * plan.height, f"a {plan.width}x{plan.height} canvas ="),
            ("cuts", plan.num_cuts, "num_cuts"),
            ("clip_models", models, "clip_models:"),
            ("work", work, f"iterations x num_cuts x batches x clip_models = {plan.iterations} x "
                           f"{plan.num_cuts} x {plan.batches} x {models} ="),
            ("prompts", len(prompts), "prompts:"),
            ("prompt_chars", len(settings.prompts), "prompts text of"),
        ):
            self.require(name, value, what)

    def require(self, name: str, value: int, what: str) -> None:
        """Raise :class:`SettingsError` if ``value`` exceeds limit ``name``; ``what`` says what it counts."""
        limit = getattr(self, name)
        if limit and value > limit:
            raise SettingsError(f"{what} {value} is over this server's limit of {limit} "
                                f"(${ENV_PREFIX}{name.upper()}); ask for less")
