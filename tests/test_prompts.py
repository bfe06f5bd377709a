import math

import pytest
import torch
import torch.nn.functional as F

from pixray.prompts import Prompt, parse_prompt, parse_prompts, prompt_loss, spherical_distance
from pixray.settings import SettingsError


@pytest.mark.parametrize("text, expected", [
    ("a red circle", Prompt("a red circle")),
    ("a red circle:2", Prompt("a red circle", 2.0)),
    (" a cat : -0.5 ", Prompt("a cat", -0.5)),
    ("a cat:1:0.3", Prompt("a cat", 1.0, 0.3)),
    ("meeting at 10:30 am", Prompt("meeting at 10:30 am")),
    ("http://example.com/x:0.5", Prompt("http://example.com/x", 0.5)),
    ("ratio 1:2:3:4", Prompt("ratio 1:2", 3.0, 4.0)),
])
def test_parse_prompt(text, expected):
    assert parse_prompt(text) == expected


def test_parse_prompts_splits_on_pipes_and_skips_empty_parts():
    assert parse_prompts("a|b:2||") == [Prompt("a"), Prompt("b", 2.0)]
    with pytest.raises(SettingsError, match="no text"):
        parse_prompt(":0.5")


def test_spherical_distance_values():
    a = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    d = spherical_distance(a, a)
    assert d[0, 0].abs() < 1e-6
    # Orthogonal unit vectors are a quarter circle apart: 2 * (pi/4)^2.
    assert torch.isclose(d[0, 1], torch.tensor(2 * (math.pi / 4) ** 2))
    assert torch.isclose(spherical_distance(a[:1], -a[:1])[0, 0], torch.tensor(math.pi**2 / 2))


def test_prompt_loss_weight_sign_and_stop():
    target = F.normalize(torch.randn(1, 8), dim=-1)
    images = F.normalize(torch.randn(5, 8), dim=-1).requires_grad_(True)
    one, inf = torch.ones(1), torch.tensor([-math.inf])
    pull = prompt_loss(images, target, one, inf)
    pull.sum().backward()
    # Following the gradient moves embeddings towards the target.
    moved = F.normalize(images - 0.1 * images.grad, dim=-1)
    assert prompt_loss(moved, target, one, inf) < pull
    # Negative weight: same magnitude, opposite sign.
    assert torch.isclose(prompt_loss(images, target, -one, inf), -pull)
    # Weight 2 doubles the loss.
    assert torch.isclose(prompt_loss(images, target, 2 * one, inf), 2 * pull)
    # A stop above every distance silences the gradient but not the value.
    images.grad = None
    stopped = prompt_loss(images, target, one, torch.tensor([10.0]))
    stopped.sum().backward()
    assert torch.isclose(stopped, pull) and images.grad.abs().sum() == 0


def test_a_time_or_ratio_read_as_a_weight_is_said_with_the_way_out(caplog):
    from pixray.prompts import parse_schedule

    with caplog.at_level("WARNING", logger="pixray.prompts"):
        (phase,) = parse_schedule("a clock at 12:30 | a cat:2 | figure 8:0.5 | ratio 16:9:1:-inf | "
                                  "moon:-0.5:2 | a cat:2:1 | room 12:3:4", 100)
    # Pixray's reading is kept: text 'a clock at 12' at weight 30.
    assert [(p.text, p.weight, p.stop) for p in phase.prompts] == [
        ("a clock at 12", 30.0, -math.inf), ("a cat", 2.0, -math.inf), ("figure 8", 0.5, -math.inf),
        ("ratio 16:9", 1.0, -math.inf), ("moon", -0.5, 2.0), ("a cat", 2.0, 1.0), ("room 12", 3.0, 4.0)]
    # An explicit weight and stop after plain text ('moon:-0.5:2') is not a time or a ratio.
    assert [record.getMessage() for record in caplog.records] == [
        "prompts: 'a clock at 12:30' reads as 'a clock at 12' at weight 30 (Pixray's 'text:weight:stop'); "
        "if the colon belongs to the text, end it with ':1:-inf' (weight 1, no stop)",
        "prompts: 'room 12:3:4' reads as 'room 12' at weight 3 and stop 4 (Pixray's 'text:weight:stop'); "
        "if the colon belongs to the text, end it with ':1:-inf' (weight 1, no stop)"]
