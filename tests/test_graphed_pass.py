"""Setting cuda_graphs: the perceptors' passes replayed as CUDA graphs (pixray/perceptors/graphed_pass.py).

No GPU here, so ``torch.cuda.make_graphed_callables`` is replaced by the stand-in of graph_capture.py,
which keeps a captured graph's memory rules on the CPU. The GPU checks (bench/gpu_checks.sh) run the
real capture.
"""

from __future__ import annotations

import pytest
import torch
from conftest import flag_settings, tiny_clip
from graph_capture import StandInCapture
from PIL import Image

import pixray
import pixray.engine
from pixray.animation import Animation
from pixray.losses import Loss
from pixray.perceptors import Perceptor
from pixray.perceptors.graphed_pass import GraphedPasses
from pixray.serving import server_owned
from pixray.settings import build_settings


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> StandInCapture:
    capture = StandInCapture()
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", capture.make_graphed_callables)
    monkeypatch.setattr(pixray.engine, "graphs_possible", lambda device: True)
    return capture


@pytest.fixture(scope="module")
def three_perceptors() -> list[Perceptor]:
    """Two at 32 (one cutout group), a ResNet among them, and one at 64 (a group of its own)."""
    return [Perceptor("vit", tiny_clip(seed=1)), Perceptor("rn", tiny_clip(resnet=True, seed=2)),
            Perceptor("vit64", tiny_clip(image_size=64, seed=3))]


def _steps(settings: dict, perceptors: list[Perceptor], loss: Loss | None = None) -> list[pixray.Step]:
    run = pixray.generate(settings, perceptors=perceptors)
    if loss is not None:
        run.custom_losses["looking"] = (loss, 10.0)
    return list(run)


def _same(steps: list[pixray.Step], others: list[pixray.Step]) -> None:
    assert len(steps) == len(others)
    for step, other in zip(steps, others, strict=True):
        assert torch.equal(step.image, other.image), step.index
        assert step.losses.keys() == other.losses.keys()
        for name, value in step.losses.items():
            assert torch.equal(value, other.losses[name]), (step.index, name)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_replayed_passes_give_the_steps_of_passes_run_as_before(small_settings, three_perceptors, stand_in,
                                                                precision, tmp_path):
    # Regions (spot prompts) and batches: several passes of each graph a step, each backward before the next;
    # an image prompt, seen through each step's cutouts by the same perceptors between their passes.
    Image.new("RGB", (16, 12), (200, 40, 40)).save(tmp_path / "red.png")
    settings = {**small_settings, "iterations": 3, "batches": 2, "spot_prompts": "a blue square",
                "spot_prompts_off": "green", "precision": precision,
                "image_prompts": str(tmp_path / "red.png")}
    plain = _steps(settings, three_perceptors)
    assert stand_in.captures == 0
    graphed = _steps({**settings, "cuda_graphs": True}, three_perceptors)
    _same(graphed, plain)
    assert stand_in.captures == 3  # a graph per perceptor
    assert stand_in.replays == 3 * 2 * 3 * 3  # steps x batches x views (whole, spot, off) x perceptors


class Looking(Loss):
    """A custom loss that reads the embeddings, so their passes' backward waits for it."""

    uses_embeds = True

    def __init__(self) -> None:
        super().__init__(None)

    def forward(self, context):
        return sum(embeds[:, 0].mean() for embeds in context.embeds.values())


def test_a_pass_whose_backward_waits_runs_as_before(small_settings, three_perceptors, stand_in):
    settings = {**small_settings, "iterations": 2, "batches": 2, "spot_prompts": "a blue square"}
    plain = _steps(settings, three_perceptors, Looking())
    graphed = _steps({**settings, "cuda_graphs": True}, three_perceptors, Looking())
    _same(graphed, plain)
    # The whole canvas's passes wait for the loss and are computed by the perceptors; the spot's are replayed.
    assert stand_in.replays == 2 * 2 * 3
    assert float(graphed[0].losses["looking"]) != 0


def test_the_stand_in_refuses_what_a_graph_cannot_do(three_perceptors, stand_in):
    """Two passes of one graph before the first one's backward: what the engine keeps from happening."""
    perceptor = three_perceptors[0]
    passes = GraphedPasses(torch.float32)
    images = torch.rand(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    first = passes.encode(perceptor, images[0])
    (grad,) = torch.autograd.grad(first.sum(), images)
    eager = images[0].detach().clone().requires_grad_(True)
    perceptor.encode_image(eager).sum().backward()
    assert torch.equal(grad[0], eager.grad) and not grad[1].any()
    first = passes.encode(perceptor, images[0])
    second = passes.encode(perceptor, images[1])
    assert not torch.equal(first, second)  # each its own copy of the graph's output
    with pytest.raises(AssertionError, match="overwrote its activations"):
        torch.autograd.grad(first.sum(), images)


def test_without_cuda_the_setting_changes_nothing(small_settings, tiny_perceptor):
    run = pixray.generate({**small_settings, "cuda_graphs": True}, perceptors=[tiny_perceptor])
    assert run.graphed_passes is None
    _same(list(run), list(pixray.generate(small_settings, perceptors=[tiny_perceptor])))


def test_the_setting_is_a_flag_and_the_servers():
    assert flag_settings(["--cuda_graphs", "true"]).cuda_graphs is True
    assert flag_settings([]).cuda_graphs is False
    assert "cuda_graphs" in server_owned()


def test_gradients_and_embeddings_outlive_the_next_replay(three_perceptors, stand_in):
    """The graph's output and input gradient live in memory its next replay overwrites: what a pass hands
    back (the embeddings, a leaf's ``.grad``) are copies."""
    perceptor = three_perceptors[1]
    passes = GraphedPasses(torch.float32)
    generator = torch.Generator().manual_seed(0)
    cutouts = torch.rand(4, 3, 32, 32, generator=generator).requires_grad_(True)
    embeds = passes.encode(perceptor, cutouts)
    embeds.sum().backward()
    kept_embeds, kept_grad = embeds.detach().clone(), cutouts.grad.clone()
    other = torch.rand(4, 3, 32, 32, generator=generator).requires_grad_(True)
    passes.encode(perceptor, other).sum().backward()
    assert torch.equal(embeds, kept_embeds) and torch.equal(cutouts.grad, kept_grad)
    assert not torch.equal(other.grad, kept_grad)


def test_an_animations_pictures_share_their_graphs(tmp_path, tiny_perceptor, stand_in):
    frames = tmp_path / "frames"
    frames.mkdir()
    for name, colour in {"a.png": (255, 0, 0), "b.png": (0, 255, 0), "c.png": (0, 0, 255)}.items():
        Image.new("RGB", (16, 16), colour).save(frames / name)
    values = {"prompts": "a red circle", "drawer": "fast_pixel", "size": [16, 16], "iterations": 4,
              "num_cuts": 2, "seed": 1, "device": "cpu", "save_every": 2,
              "target_images": f"{frames}/*.png:0.5", "animation_dir": str(tmp_path / "anim")}

    def rounds(**changes) -> list[list[pixray.Step]]:
        return list(Animation(build_settings({**values, **changes}), perceptors=[tiny_perceptor]).rounds())

    plain = rounds()
    graphed = rounds(cuda_graphs=True)
    assert stand_in.captures == 1 and stand_in.replays == 3 * 4  # one graph for the three pictures' steps
    for steps, others in zip(graphed, plain, strict=True):
        _same(steps, others)


def test_a_pass_that_cannot_be_captured_is_computed_as_before(small_settings, three_perceptors, stand_in,
                                                              monkeypatch, caplog):
    capture = stand_in.make_graphed_callables
    attempts = []

    def refusing(fn, sample_args):
        attempts.append(sample_args[0].shape)
        if sample_args[0].shape[-1] == 64:  # vit64's pass
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore")
        return capture(fn, sample_args)

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", refusing)
    settings = {**small_settings, "iterations": 3}
    plain = _steps(settings, three_perceptors)
    graphed = _steps({**settings, "cuda_graphs": True}, three_perceptors)
    _same(graphed, plain)
    assert len(attempts) == 3 and stand_in.captures == 2  # tried once, not at every step
    assert stand_in.replays == 3 * 2
    warnings = [r.getMessage() for r in caplog.records if "cuda_graphs" in r.getMessage()]
    assert warnings == ["setting 'cuda_graphs': vit64's pass over 4 cutouts could not be captured as a CUDA "
                        "graph (CUDA error: operation not permitted when stream is capturing); it is "
                        "computed as without cuda_graphs"]
