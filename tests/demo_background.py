"""Shapes-world demo images drawn in background processes while the rest of the suite runs.

A test names the images it grades with the ``demo_images`` marker (``{key: DemoJob}``). When
collection ends, conftest starts every selected test's images in two low-priority worker processes
and moves those tests to the end of the run, so the images form on whatever CPU the other tests
leave idle (most of them use one core) instead of after them; the tests then read them by key. The
workers run at a lower priority, so the other tests, some of which wait on deadlines (servers,
signals), keep the CPU they would have had. The images are the same as drawn in the foreground:
each is one ``demo_image`` call in a one-thread process, whatever else runs.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixray.demo.evaluate import demo_image
from pixray.demo.world import Scene, draw_scene

WORKERS = 2
NICENESS = 10  # below the tests' own processes, which keep their CPU when they need it


@dataclass(frozen=True)
class DemoJob:
    """One ``demo_image`` call; with ``scene_prompt``, that scene (drawn from ``scene_seed``) is
    given as the run's image prompt, through a file the worker writes."""

    drawer: str
    caption: str | None
    seed: int
    overrides: Mapping[str, object] = field(default_factory=dict)
    scene_prompt: Scene | None = None
    scene_seed: int = 0


def draw(job: DemoJob) -> Image.Image:
    """The job's image (in a worker process)."""
    if job.scene_prompt is None:
        return demo_image(job.drawer, job.caption, job.seed, job.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        scene_file = Path(tmp) / "scene.png"
        draw_scene(job.scene_prompt, np.random.default_rng(job.scene_seed)).save(scene_file)
        overrides = {**job.overrides, "image_prompts": str(scene_file)}
        return demo_image(job.drawer, job.caption, job.seed, overrides)


def _start_worker() -> None:
    torch.set_num_threads(1)
    os.nice(NICENESS)


class DemoImages:
    """``jobs`` submitted, in order, to low-priority one-thread worker processes at construction."""

    def __init__(self, jobs: Mapping[str, DemoJob]) -> None:
        spawn = multiprocessing.get_context("spawn")  # a fork after torch has started threads can hang
        self._pool = ProcessPoolExecutor(WORKERS, spawn, _start_worker)
        self._futures: dict[str, Future[Image.Image]] = {key: self._pool.submit(draw, job)
                                                           for key, job in jobs.items()}

    def image(self, key: str) -> Image.Image:
        """The image of job ``key``, waiting for it if it is not drawn yet."""
        return self._futures[key].result()

    def close(self) -> None:
        """Cancel what has not started and wait for the running jobs (at most one image each)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
