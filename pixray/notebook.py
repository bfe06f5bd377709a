"""A run's images shown in the Jupyter notebook that runs it, as Pixray's ``run`` showed them: every
``display_every`` steps and at the end, the cell's output cleared before each with ``display_clear``;
an animation's GIF when it is made."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Step
    from .settings import Plan, Settings


def _kernel_display() -> ModuleType | None:
    """``IPython.display`` when this code runs in a notebook's kernel, else None. IPython is not
    imported here: only a kernel that has loaded it already (every notebook's has) is looked for."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if getattr(shell, "kernel", None) is None:  # a terminal IPython has no kernel and shows no images
        return None
    from IPython import display

    return display


def notebook_display(settings: Settings, plan: Plan) -> Callable[[Step], None] | None:
    """A callback for :meth:`OutputWriter.save_run` that shows each due step's image in the notebook
    running this code, or None outside a notebook's kernel."""
    display = _kernel_display()
    if display is None:
        return None
    every = plan.display_every

    def show(step: Step) -> None:
        if not (step.is_final or (every and step.index % every == 0)):
            return
        png = io.BytesIO()
        step.pil().save(png, format="PNG")
        _show(display, png.getvalue(), settings.display_clear)

    return show


def show_file_in_notebook(path: Path, settings: Settings) -> None:
    """Show the image file at ``path`` (an animation's GIF) in the notebook running this code, if any."""
    display = _kernel_display()
    if display is not None:
        _show(display, path.read_bytes(), settings.display_clear)


def _show(display: ModuleType, data: bytes, clear: bool) -> None:
    """Show the image file's bytes ``data`` in the cell, after clearing its output when ``clear``."""
    if clear:
        display.clear_output(wait=True)
    display.display(display.Image(data=data))
