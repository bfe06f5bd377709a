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

from .engine import Drawn, Step

if TYPE_CHECKING:
    from .settings import Settings


def _kernel_display() -> ModuleType | None:
    """``IPython.display`` when this code runs in a notebook's kernel, else None. IPython is not
    imported here: only a kernel that has loaded it already (every notebook's has) is looked for."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if getattr(shell, "kernel", None) is None:  # a terminal IPython has no kernel and shows no images
        return None
    from IPython import display

    return display


def notebook_display(settings: Settings) -> Callable[[Drawn | Step], None] | None:
    """A callback for :meth:`OutputWriter.save_run`'s ``drawn`` (every ``display_every``-th step's
    picture, as soon as it is drawn) and ``progress`` (of the steps, the final one's is shown) that
    shows those images in the notebook running this code, or None outside a notebook's kernel."""
    display = _kernel_display()
    if display is None:
        return None

    def show(picture: Drawn | Step) -> None:
        if isinstance(picture, Step) and not picture.is_final:  # its picture was shown as it was drawn
            return
        png = io.BytesIO()
        picture.pil().save(png, format="PNG")
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
