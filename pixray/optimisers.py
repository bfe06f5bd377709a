"""The optimisers Pixray offers that torch has, by Pixray's names."""

from __future__ import annotations

import torch

from .registry import Registry

OPTIMISERS: Registry[type[torch.optim.Optimizer]] = Registry("optimiser", {
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
    "Adagrad": torch.optim.Adagrad,
    "Adamax": torch.optim.Adamax,
    "RAdam": torch.optim.RAdam,
    "RMSprop": torch.optim.RMSprop,
})
