"""Networks built without their random initial weights, then loaded: the same network as built
normally and loaded, and no random numbers drawn on the way."""

from __future__ import annotations

import threading

import torch
from torch import nn

from pixray.weights.without_initialisation import built_without_initialisation


class Layers(nn.Module):
    """Random fills of every kind a constructor uses, and a buffer computed, not saved."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 5)  # kaiming_uniform_ and uniform_
        self.conv = nn.Conv2d(3, 4, 3)
        self.embedding = nn.Parameter(torch.empty(7, 5))
        nn.init.trunc_normal_(self.embedding, std=0.02)  # uniform_ then arithmetic on it
        self.scale = nn.Parameter(torch.randn(5) * 0.1)  # a factory
        self.norm = nn.LayerNorm(5)
        self.register_buffer("mask", torch.empty(4, 4).fill_(float("-inf")).triu_(1), persistent=False)
        self.offset = nn.Parameter(torch.rand(5, out=torch.empty(5)))  # a factory writing into a tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x) * self.scale) @ self.embedding.T


def test_a_network_built_without_initialisation_and_loaded_is_the_loaded_network():
    torch.manual_seed(0)
    reference = Layers()
    state = reference.state_dict()
    before = torch.get_rng_state()
    built = built_without_initialisation(Layers)
    assert torch.equal(torch.get_rng_state(), before)  # no random number drawn
    built.load_state_dict(state, strict=True)
    assert torch.equal(built.mask, reference.mask)  # computed in the constructor as usual
    x = torch.rand(3, 6)
    assert torch.equal(built(x), reference(x))
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), state.values(), strict=True))


def test_outside_it_layers_draw_their_weights_as_usual():
    built_without_initialisation(Layers)
    torch.manual_seed(2)
    a = Layers()
    torch.manual_seed(2)
    b = Layers()
    assert torch.equal(a.linear.weight, b.linear.weight) and a.linear.weight.abs().sum() > 0


def test_another_threads_random_numbers_are_drawn_meanwhile():
    # A server may load a model on one thread while a run draws noise on another.
    building, drawn = threading.Event(), threading.Event()

    def build() -> nn.Module:
        building.set()
        drawn.wait(10)
        return Layers()

    builder = threading.Thread(target=built_without_initialisation, args=(build,))
    builder.start()
    building.wait(10)
    torch.manual_seed(3)
    noise = torch.rand(4)
    filled = torch.zeros(4).uniform_()
    drawn.set()
    builder.join()
    torch.manual_seed(3)
    assert torch.equal(noise, torch.rand(4)) and torch.equal(filled, torch.zeros(4).uniform_())
