"""Pixray's animation mode (``animation_dir``): one picture per image of a list, made side by side in
rounds, each blended with the one before it after every round so that neighbours stay alike.

The list is the longest of the files named by ``overlay_image``, ``target_images``, ``init_image``
and ``image_prompts`` (Pixray's order; a tie keeps the earlier). Picture ``i`` is a run of its own
(its own drawer parameters and optimiser, the models shared) whose settings name only the ``i``-th
file of each of those settings (cycling through shorter lists). Every ``save_every`` steps each
picture is written to ``animation_dir`` under its file's name, then blended over by the previous
picture (the first by the last) at ``animation_alpha``/255 and drawn back into its drawer. At the
end ``anim.gif`` loops through the pictures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .drawers import require_image_encoding
from .engine import Run, Step
from .errors import RunError
from .init_images import ImageReader
from .options import SettingsError
from .output import png_metadata, run_record, save_image
from .prompt_sources.image_prompts import image_files, matched_files
from .prompts import parse_prompts
from .settings import Settings

if TYPE_CHECKING:
    from .model_cache import ModelCache
    from .perceptors import Perceptor

#: Settings naming images that an animation's list may come from, in Pixray's order of preference.
LIST_SETTINGS = ("overlay_image", "target_images", "init_image", "image_prompts")
#: Of those, the ones whose entries carry a weight and stop ('file:weight:stop').
WEIGHTED = ("target_images", "image_prompts")
GIF_NAME = "anim.gif"
GIF_FPS = 10  # Pixray's


def _entries(settings: Settings, name: str) -> list[str]:
    """The settings values naming one file each that ``name`` expands to (globs matched)."""
    value = getattr(settings, name)
    if not value:
        return []
    if name not in WEIGHTED:
        return image_files(value)
    prompts = parse_prompts(value)
    entries = []
    for prompt, files in zip(prompts, matched_files([p.text for p in prompts], name), strict=True):
        for file in files:
            if ":" in file or "|" in file:
                raise SettingsError(f"setting 'animation_dir': the file name {file!r} of {name} holds ':' or "
                                    "'|'; rename it to animate it")
            stop = f":{prompt.stop:g}" if math.isfinite(prompt.stop) else ""
            entries.append(f"{file}:{prompt.weight:g}{stop}")
    return entries


class Animation:
    """The runs of an animation, stepped in rounds (see the module docstring)."""

    def __init__(self, settings: Settings, perceptors: Sequence[Perceptor] | None = None,
                 models: ModelCache | None = None, images: ImageReader | None = None) -> None:
        assert settings.animation_dir
        require_image_encoding(settings.drawer, "animation_dir")
        lists = {name: _entries(settings, name) for name in LIST_SETTINGS}
        source = max(LIST_SETTINGS, key=lambda name: (len(lists[name]), -LIST_SETTINGS.index(name)))
        if not lists[source]:
            raise SettingsError("setting 'animation_dir': an animation needs a list of images, one per "
                                f"picture: name them (a glob matches several) in {', '.join(LIST_SETTINGS)}")
        self.names = [Path(parse_prompts(entry)[0].text if source in WEIGHTED else entry).name
                      for entry in lists[source]]
        if len(set(self.names)) < len(self.names):
            raise SettingsError(f"setting 'animation_dir': two images of {source} share a file name; each "
                                "picture is written under its image's name")
        self.alpha = settings.animation_alpha / 255
        if models is None:
            from .model_cache import ModelCache

            models = ModelCache.for_settings(settings)  # shared by the pictures' runs
        self.runs = [Run(settings.replace(**{name: entries[i % len(entries)]
                                             for name, entries in lists.items() if entries}),
                         perceptors, models, images) for i in range(len(self.names))]
        for run in self.runs[1:]:  # stepped in turn: one set of CUDA graphs (cuda_graphs) serves them all
            run.graphed_passes = self.runs[0].graphed_passes
        self.settings = settings

    def rounds(self) -> Iterator[list[Step]]:
        """Each round's latest step of every picture; the last round's are final steps."""
        steps = [run.steps() for run in self.runs]
        every = self.runs[0].plan.save_every or self.runs[0].plan.iterations + 1
        latest: list[Step] = []
        while not latest or not all(step.is_final for step in latest):
            current = []
            for i, iterator in enumerate(steps):
                step = latest[i] if latest else None
                for _ in range(every):
                    if step is not None and step.is_final:
                        break
                    step = next(iterator)
                assert step is not None
                current.append(step)
            latest = current
            yield latest
            for i, run in enumerate(self.runs):  # each blended over by the one before it
                if latest[i].is_final:
                    continue
                picture, before = latest[i].image[:, :3], latest[i - 1].image[:, :3]
                blended = (1 - self.alpha) * picture + self.alpha * before.to(picture)
                run.drawer.reapply_image(blended.to(run.device))


class AnimationWriter:
    """Writes an animation's pictures into ``animation_dir`` after every round and ``anim.gif`` at
    the end; a directory that already holds files is refused unless ``overwrite`` is set."""

    def __init__(self, settings: Settings) -> None:
        assert settings.animation_dir
        self.directory = Path(settings.animation_dir).expanduser()
        if self.directory.exists() and not self.directory.is_dir():
            raise SettingsError(f"setting 'animation_dir': {str(self.directory)!r} is a file, not a "
                                "directory")
        if self.directory.is_dir() and any(self.directory.iterdir()) and not settings.overwrite:
            raise SettingsError(f"animation_dir {str(self.directory)!r} already holds files; choose another "
                                "or set overwrite: true")
        self.gif = self.directory / GIF_NAME

    def save(self, animation: Animation, progress: Callable[[int, int], None] | None = None) -> Path:
        """Run ``animation`` to the end writing its pictures; ``progress(steps done, steps in all)``
        after each round. Returns the GIF's path."""
        from .media import write_gif

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError(f"setting 'animation_dir': cannot create {str(self.directory)!r}: "
                                f"{exc.strerror or exc}") from None
        records = [run_record(run) for run in animation.runs]
        paths = [self.directory / name for name in animation.names]
        total = animation.runs[0].plan.iterations
        for steps in animation.rounds():
            for path, step, record in zip(paths, steps, records, strict=True):
                save_image(step.pil(), path, png_metadata(record, record["seed"], step.index, step.prompts))
            if progress is not None:
                progress(min(steps[0].index + (0 if steps[0].is_final else 1), total), total)
        try:
            write_gif(paths, self.gif, fps=GIF_FPS, hold=0)
        except OSError as exc:
            raise RunError(f"cannot write {str(self.gif)!r}: {exc.strerror or exc}") from None
        return self.gif
