"""``aesthetic``: the cutouts pulled towards a predicted aesthetic rating (Pixray's: a linear head on
CLIP ViT-B/16 image embeddings, trained on the AVA photo ratings, 0-10)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..declared_models import DeclaredModel
from ..options import SettingsError, option
from ..weights import CheckpointError
from .base import Loss, LossContext

if TYPE_CHECKING:
    from ..resources import Resources

AVA_HEAD_MODEL, AVA_HEAD_FILE = "ava_vit_b_16_linear", "ava_vit_b_16_linear.pth"
#: Pixray's scale of the squared rating error.
RATING_SCALE = 0.02


@dataclass(frozen=True)
class AestheticOptions:
    aesthetic_target: float = option(10.0, "Rating (0-10, AVA's scale) the cutouts are pulled towards "
                                           "(Pixray's default 10: the most aesthetic)", minimum=0, maximum=10)
    aesthetic_perceptor: str = option("ViT-B/16", "The CLIP model among clip_models whose embeddings the "
                                                  "rating head reads (it was trained on ViT-B/16's)")


def load_rating_head(path: str | Path) -> nn.Linear:
    """The linear head from its file: a state dict with ``weight`` (1,D) and ``bias`` (1,)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        weight, bias = state["weight"], state["bias"]
        head = nn.Linear(weight.shape[1], 1)
        head.load_state_dict({"weight": weight, "bias": bias})
    except Exception as exc:  # an unreadable file is the same error however it fails
        raise CheckpointError(f"{str(path)!r} is not the AVA rating head (a state dict of a linear layer "
                              f"to one output): {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    return head.requires_grad_(False).eval()


class AestheticLoss(Loss):
    """``0.02 x`` the mean squared difference between each cutout's predicted rating (the head on
    the unit embedding of ``aesthetic_perceptor``) and ``aesthetic_target``, per cutout batch."""

    Options = AestheticOptions
    uses_embeds = True

    def __init__(self, options: AestheticOptions, head: nn.Linear) -> None:
        super().__init__(options)
        self.head = head

    @classmethod
    def create(cls, options: AestheticOptions, resources: Resources) -> AestheticLoss:
        return cls(options, resources.models.get_file(AVA_HEAD_FILE, load_rating_head))

    @classmethod
    def declared_models(cls) -> Mapping[str, DeclaredModel]:
        return {AVA_HEAD_MODEL: DeclaredModel((AVA_HEAD_FILE,),
                                              lambda cache: cache.get_file(AVA_HEAD_FILE, load_rating_head))}

    @classmethod
    def models_needed(cls, options: AestheticOptions) -> list[str]:
        return [AVA_HEAD_MODEL]

    def check_perceptors(self, names: Sequence[str], widths: Sequence[int]) -> None:
        name = self.options.aesthetic_perceptor
        if name not in names:
            raise SettingsError(f"setting 'aesthetic_perceptor': {name!r} is not among this run's CLIP "
                                f"models ({', '.join(names)}); add it to clip_models or name one of them")
        width = widths[list(names).index(name)]
        if width != self.head.in_features:
            raise SettingsError(f"setting 'aesthetic_perceptor': {name!r} embeds in {width} dimensions, the "
                                f"rating head reads {self.head.in_features} (it was trained on ViT-B/16's)")

    def forward(self, context: LossContext) -> torch.Tensor:
        embeds = context.embeds[self.options.aesthetic_perceptor]
        ratings = self.head(F.normalize(embeds.float(), dim=-1))
        return RATING_SCALE * (ratings - self.options.aesthetic_target).square().mean()
