"""The page's gallery: the images pixray made under the output directory, newest first, each with the
prompts and seed its PNG metadata records (the settings a re-run starts from)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..options import SettingsError
from ..settings import read_settings_file

#: Folders of a run's frames (steps/, video/): their PNGs are not pictures of their own.
FRAME_FOLDERS = frozenset({"steps", "video"})
#: How deep under the output directory pictures are looked for (outdir/output.png is 2).
MAX_DEPTH = 3


@dataclass(frozen=True)
class Picture:
    """A PNG pixray made, and the settings (with ``seed``) its metadata holds."""

    path: Path
    settings: dict[str, Any]

    @property
    def caption(self) -> str:
        """``prompts · seed N`` (the prompts cut to 80 characters)."""
        prompts = str(self.settings.get("prompts") or "(no text prompt)")
        if len(prompts) > 80:
            prompts = prompts[:79] + "…"
        return f"{prompts} · seed {self.settings.get('seed', '?')}"


def output_root(outdir: str) -> Path:
    """The folder holding every run's outdir under the ``outdir`` pattern: its part before the first
    folder with a %DATE% or %SEQ% in it (``outputs/%DATE%_%SEQ%`` -> ``outputs``), or the folder
    around a fixed outdir."""
    parts = Path(outdir).parts
    first = next((i for i, part in enumerate(parts) if "%" in part), len(parts) - 1)
    return Path(*parts[:first]) if first else Path(".")


def pictures(root: Path, limit: int = 60) -> list[Picture]:
    """Up to ``limit`` pixray PNGs under ``root`` (not frames), newest first; PNGs without pixray
    settings, or unreadable, are left out."""
    found: list[tuple[float, Path]] = []
    root_depth = len(root.parts)
    for folder, subfolders, files in os.walk(root):
        depth = len(Path(folder).parts) - root_depth
        subfolders[:] = [] if depth + 1 >= MAX_DEPTH else [f for f in subfolders if f not in FRAME_FOLDERS]
        for name in files:
            if name.lower().endswith(".png"):
                path = Path(folder) / name
                try:
                    found.append((path.stat().st_mtime, path))
                except OSError:
                    continue
    found.sort(key=lambda item: item[0], reverse=True)
    result = []
    for _, path in found:
        try:
            result.append(Picture(path, read_settings_file(path)))
        except SettingsError:
            continue
        if len(result) == limit:
            break
    return result
