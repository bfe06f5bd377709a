"""A run's images shown in the Jupyter notebook that runs it, as Pixray's ``run`` showed them: every
``display_every`` steps and at the end, the cell's output cleared before each with ``display_clear``."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Step
    from .settings import Plan, Settings


def notebook_display(settings: Settings, plan: Plan) -> Callable[[Step], None] | None:
    """A callback for :meth:`OutputWriter.save_run` that shows each due step's image in the notebook
    running this code, or None outside a notebook's kernel. IPython is not imported here: only a
    kernel that has loaded it already (every notebook's has) is looked for."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if getattr(shell, "kernel", None) is None:  # a terminal IPython has no kernel and shows no images
        return None
    from IPython.display import Image, clear_output, display

    every = plan.display_every

    def show(step: Step) -> None:
        if not (step.is_final or (every and step.index % every == 0)):
            return
        png = io.BytesIO()
        step.pil().save(png, format="PNG")
        if settings.display_clear:
            clear_output(wait=True)
        display(Image(data=png.getvalue()))

    return show
