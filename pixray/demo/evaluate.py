"""Zero-shot reading of shapes-world images by a perceptor: which of the 224 captions fits best."""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import generate
from ..perceptors import Perceptor
from ..settings import read_settings_file
from .world import COLOURS, SHAPES, Scene, all_scenes, random_scenes, scene_of


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (n,H,W,3) -> float (n,3,H,W) in [0,1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


@torch.no_grad()
def classify(perceptor: Perceptor, images: torch.Tensor) -> torch.Tensor:
    """Index into all_scenes() of the best caption for each image (n,3,H,W) in [0,1]."""
    size = perceptor.input_resolution
    if images.shape[-2:] != (size, size):
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="area")
    texts = perceptor.encode_text([s.caption for s in all_scenes()])
    return (perceptor.encode_image(images) @ texts.T).argmax(dim=-1)


@dataclass(frozen=True)
class Accuracy:
    """Fractions of scenes read correctly: the whole caption and each of its parts."""

    caption: float
    colour: float
    shape: float
    background: float


def zero_shot_accuracy(perceptor: Perceptor, n: int = 448, seed: int = 12345) -> Accuracy:
    """Accuracy over ``n`` fresh random scenes drawn from ``seed``."""
    images, labels = random_scenes(n, seed, size=perceptor.input_resolution)
    predicted = classify(perceptor, to_tensor(images)).numpy()
    scenes = all_scenes()

    def agree(part: str) -> float:
        return float(np.mean([getattr(scenes[p], part) == getattr(scenes[t], part)
                              for p, t in zip(predicted, labels, strict=True)]))

    return Accuracy(float(np.mean(predicted == labels)), agree("colour"), agree("shape"), agree("background"))


def nearest_colours(image: np.ndarray) -> np.ndarray:
    """(H,W) index into world.COLOURS of the palette colour nearest each pixel of (H,W,3) uint8."""
    palette = np.array(list(COLOURS.values()), dtype=np.float32)
    distances = ((image[:, :, None, :].astype(np.float32) - palette) ** 2).sum(-1)
    return distances.argmin(-1)


def largest_region(mask: np.ndarray) -> int:
    """Pixel count of the largest 4-connected region of ``mask`` (H,W) bool."""
    seen = np.zeros_like(mask)
    best = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        seen[start], stack, size = True, [start], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        best = max(best, size)
    return best


@dataclass(frozen=True)
class SceneStatistics:
    """Plain pixel facts of an image against the scene it should show."""

    border_background: float  # fraction of the outer ring (1/8 of the side) in the background colour
    foreground: float  # fraction of the image in the foreground colour
    foreground_region: float  # fraction of the image in the largest connected foreground region


def scene_statistics(image: np.ndarray, colour: str, background: str) -> SceneStatistics:
    """Pixel statistics of ``image`` (H,W,3) uint8 for a scene of ``colour`` on ``background``."""
    names = list(COLOURS)
    labels = nearest_colours(image)
    h, w = labels.shape
    ring = max(1, min(h, w) // 8)
    border = np.ones_like(labels, dtype=bool)
    border[ring:h - ring, ring:w - ring] = False
    fg = labels == names.index(colour)
    return SceneStatistics(
        border_background=float((labels[border] == names.index(background)).mean()),
        foreground=float(fg.mean()),
        foreground_region=largest_region(fg) / (h * w),
    )


# The settings of the shapes demo, and prompts spread over the vocabulary: every colour as foreground
# and as background, every shape twice. Shared by `make demo`, the tests and bench/demo_accuracy.py.
SHAPES_SETTINGS = Path(__file__).parent / "shapes.yaml"
TEST_PROMPTS = (
    "a red circle on a blue background",
    "a green square on a yellow background",
    "a blue triangle on a white background",
    "a yellow cross on a purple background",
    "a purple circle on a orange background",
    "a orange square on a black background",
    "a white triangle on a green background",
    "a black cross on a red background",
)

# How hard the test prompts push away from each other shape (Pixray's negative prompt weight): 0.15
# each, 0.45 in all, against +1 for the caption: 40/48 captions on seeds 0-5 (where it was chosen),
# 30/48 and 33/48 on seeds 6-11 and 12-17, where the caption alone reads 28, 28 and 22/48 (and
# 66/96 on seeds 18-29). 0.18 lets the foreground spill into the border more often; at 0.25 the
# shared colour words nearly cancel and images lose their colours (docs/shapes-world-experiments.md).
SHAPE_CONTRAST = 0.15


def contrasted(caption: str, weight: float = SHAPE_CONTRAST) -> str:
    """``caption`` with the same scene in each other shape as a negative prompt, in Pixray's syntax.

    ``a red circle on a blue background | a red square on a blue background:-0.15 | ...``. In the
    guides' text space a caption lies close to its colour pair's other shapes (cosine 0.92 for
    shapes-demo, 0.86 for shapes-demo-rn, against 0.42 for another foreground colour), so pulling
    towards the caption alone draws the colours well and the shape loosely; pushing away from the
    other shapes pulls along the little that tells them apart.
    """
    scene = scene_of(caption)
    others = [Scene(scene.colour, shape, scene.background) for shape in SHAPES if shape != scene.shape]
    return " | ".join([caption, *(f"{other.caption}:-{weight:g}" for other in others)])


# Per-drawer changes to shapes.yaml (whose optimiser and step size suit the pixel drawers): the fft
# drawer wants Adam and a smoother spectrum on this small canvas, and its prompts no negatives (over
# six seeds they read as many captions, 20 vs 19/48, and fewer colour pairs, 38 vs 45); clipdraw
# wants Adam (measured with bench/demo_accuracy.py, see docs/shapes-world-experiments.md).
DRAWER_SETTINGS: dict[str, dict[str, object]] = {
    "fft": {"optimiser": "Adam", "learning_rate": 0.5, "fft_decay": 3.0},
    # Strokes step at Pixray's fixed fractions of the rate (colours at 0.01 x), so NGD at 0.1 barely
    # moves them (0/8 captions); Adam at 2 with CLIPDraw's 256 strokes reads 6/8 (5/8 with 1024).
    "clipdraw": {"optimiser": "Adam", "learning_rate": 2.0, "strokes": 256},
}
DRAWER_CONTRAST: dict[str, float] = {"fft": 0.0}


def demo_settings(drawer: str) -> dict[str, Any]:
    """shapes.yaml's settings plus ``drawer``'s changes: what the semantic tests and the bench run."""
    return {**read_settings_file(SHAPES_SETTINGS), **DRAWER_SETTINGS.get(drawer, {})}


def demo_prompt(drawer: str, caption: str, contrast: float | None = None) -> str:
    """The prompt the semantic tests and the bench give ``drawer`` for ``caption``: with the other
    shapes as negative prompts at ``contrast`` (default: the drawer's; 0: the caption alone)."""
    weight = DRAWER_CONTRAST.get(drawer, SHAPE_CONTRAST) if contrast is None else contrast
    return contrasted(caption, weight) if weight else caption


def demo_image(drawer: str, caption: str | None, seed: int, overrides: Mapping[str, Any] | None = None,
               contrast: float | None = None) -> Image.Image:
    """The image ``drawer`` makes for ``caption`` from ``seed``, as the semantic tests and the bench
    grade it: demo_settings plus ``overrides``, prompted with demo_prompt (no text prompt for
    caption None: the overrides steer, with image or spot prompts).

    Self-contained (the run loads its own guides, a fraction of a second against ~10 s of
    generation), so worker processes can call it.
    """
    settings = {**demo_settings(drawer), **(overrides or {}), "seed": seed}
    prompts = demo_prompt(drawer, caption, contrast) if caption is not None else ""
    return generate(settings, drawer=drawer, prompts=prompts).final_image()


def demo_workers(processes: int = 2) -> ProcessPoolExecutor:
    """Worker processes of one thread each, for demo_image.

    On 2 cores two one-thread processes make a demo image every 5.3 s, one process on two threads
    every 7.6 s: the 64x64 canvas and 24 cuts are too small to keep two threads busy.
    """
    spawn = multiprocessing.get_context("spawn")  # a fork after torch has started threads can hang
    return ProcessPoolExecutor(processes, spawn, torch.set_num_threads, (1,))


@dataclass(frozen=True)
class Grade:
    """How a generated image for ``wanted`` reads to a judge, and its pixel statistics."""

    wanted: Scene
    read: Scene
    statistics: SceneStatistics

    @property
    def caption_right(self) -> bool:
        return self.read == self.wanted

    @property
    def colours_right(self) -> bool:
        return (self.read.colour, self.read.background) == (self.wanted.colour, self.wanted.background)

    @property
    def statistics_right(self) -> bool:
        """Border mostly background, and a connected foreground region of at least 4 %."""
        return self.statistics.border_background > 0.5 and self.statistics.foreground_region > 0.04


def grade(image: Image.Image, prompt: str, judge: Perceptor) -> Grade:
    """Grade ``image`` generated for ``prompt`` (one of the 224 captions) with ``judge``."""
    wanted = scene_of(prompt)
    pixels = np.array(image.convert("RGB"))
    read = all_scenes()[int(classify(judge, to_tensor(pixels[None])))]
    return Grade(wanted, read, scene_statistics(pixels, wanted.colour, wanted.background))
