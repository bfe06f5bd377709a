"""Shared fixtures: tiny random CLIP models (milliseconds) and checkpoint files in OpenAI's layout."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch
from demo_background import DemoImages
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from pixray.cli import _values, build_parser
from pixray.perceptors import Perceptor, openai_state_dict
from pixray.settings import Settings, build_settings

DEMO_IMAGES = pytest.StashKey[DemoImages]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "demo_images(jobs): the {key: DemoJob} shapes-world images the "
                            "test reads through the demo_images fixture, drawn in the background "
                            "(demo_background.py)")


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what they will
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that read background demo images run last, so their images form during the others."""
    items.sort(key=lambda item: item.get_closest_marker("demo_images") is not None)  # stable


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    jobs = {key: job for item in session.items for marker in item.iter_markers("demo_images")
            for key, job in marker.args[0].items()}
    if jobs:
        session.config.stash[DEMO_IMAGES] = DemoImages(jobs)


def pytest_sessionfinish(session: pytest.Session) -> None:
    images = session.config.stash.get(DEMO_IMAGES, None)
    if images is not None:
        images.close()


@pytest.fixture(scope="session")
def demo_images(request: pytest.FixtureRequest) -> DemoImages:
    """The images the selected tests' ``demo_images`` markers asked for, drawing since collection."""
    return request.config.stash[DEMO_IMAGES]


def flag_settings(argv: list[str]) -> Settings:
    """The settings the ``pixray`` command builds from these command-line words (no config files)."""
    args = vars(build_parser().parse_args(argv))
    args.pop("config"), args.pop("quiet")
    return build_settings(_values(args))


def tiny_clip(image_size: int = 32, context_length: int = 77, resnet: bool = False,
              seed: int = 0) -> open_clip.CLIP:
    """A random CLIP with real structure and tiny widths (widths are multiples of 64 so that the
    head count follows OpenAI's width // 64 convention the loader infers)."""
    torch.manual_seed(seed)
    if resnet:
        vision = CLIPVisionCfg(layers=(1, 1, 1, 1), width=8, image_size=image_size)
    else:
        vision = CLIPVisionCfg(layers=1, width=64, patch_size=8, image_size=image_size)
    text = CLIPTextCfg(context_length=context_length, vocab_size=49408, width=64, heads=1, layers=1)
    return open_clip.CLIP(32, vision, text, quick_gelu=True).eval()


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: thread hand-offs cost more than they save on 2 cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLIP saved as a plain OpenAI-layout state dict, half precision like OpenAI's files."""
    path = tmp_path_factory.mktemp("clip") / "tiny-vit.pt"
    torch.save(openai_state_dict(tiny_clip(), half=True), path)
    return path


@pytest.fixture(scope="session")
def tiny_perceptor() -> Perceptor:
    return Perceptor("tiny", tiny_clip())


@pytest.fixture
def small_settings(tmp_path: Path) -> dict:
    """Settings for a fast run on a tiny canvas, writing under tmp_path."""
    return {"prompts": "a red circle", "drawer": "pixel", "size": [32, 24], "iterations": 4, "num_cuts": 4,
            "seed": 1, "outdir": str(tmp_path / "out"), "device": "cpu"}
