"""The run's filters in order (``filters: name:weight,...``): what the perceptors see, and what the
user sees (only the filters whose output is the picture itself, such as a palette lookup)."""

from __future__ import annotations

import torch

from .filters import FILTERS, Filter
from .resources import Resources
from .settings import Plan, Settings


class FilterChain:
    """``entries``: (name, filter, weight) in the order given."""

    def __init__(self, entries: list[tuple[str, Filter, float]]) -> None:
        self.entries = entries

    @classmethod
    def from_settings(cls, settings: Settings, plan: Plan, resources: Resources,
                      device: torch.device) -> FilterChain:
        return cls([(name, FILTERS.lookup(name).create(settings.section(name), resources).to(device), weight)
                    for name, weight in plan.filters])

    def names(self) -> list[str]:
        """The filters' names, in order."""
        return [name for name, _, _ in self.entries]

    def __call__(self, image: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``image`` (1,C,H,W) through every filter: the image the perceptors see (its size may
        differ) and each filter's loss times its weight, by filter name."""
        losses: dict[str, torch.Tensor] = {}
        for name, stage, weight in self.entries:
            image, loss = stage(image, generator)
            if loss is not None and weight:
                losses[name] = losses[name] + weight * loss if name in losses else weight * loss
        return image, losses

    @torch.no_grad()
    def shown(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` through the filters whose output is the picture itself (:attr:`Filter.shown`),
        in order: what a step's image and the saved files show."""
        for _, stage, _ in self.entries:
            if stage.shown:
                image, _ = stage(image, torch.Generator(image.device))
        return image
