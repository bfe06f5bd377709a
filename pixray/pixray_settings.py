"""Pixray's settings and parts that this project leaves out on purpose, and why.

A Pixray user's YAML file or command line may name them; they are answered with one line giving the
reason, instead of "unknown setting" or "not allowed".
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .errors import SettingsError

#: Pixray's custom losses this project leaves out, and why.
LOSSES_LEFT_OUT: Mapping[str, str] = MappingProxyType({
    "resmem": "its memorability model's weights are licensed for non-commercial use only and come from an "
              "unmaintained package (resmem, last released 2022) that ships them inside a 528 MB wheel",
})


def refuse_loss_left_out(name: str) -> None:
    """Raise the one line that answers a Pixray loss this project leaves out."""
    if name in LOSSES_LEFT_OUT:
        raise SettingsError(f"setting 'custom_loss': Pixray's {name!r} loss is not part of this pixray: "
                            f"{LOSSES_LEFT_OUT[name]} (the README's losses section says more)")


#: Pixray's perceptor families (setting ``perceptors``) this project leaves out, and why.
PERCEPTORS_LEFT_OUT: Mapping[str, str] = MappingProxyType({
    family: "Meta's SLIP models' code is not on PyPI (Pixray vendors the SLIP repository as a git "
            "submodule); LAION's and DataComp's CLIPs, which clip_models takes by name (e.g. "
            "ViT-B-16:laion2b_s34b_b88k), are stronger judges at the same sizes"
    for family in ("slip", "mixed")
})


def refuse_perceptors_left_out(family: str) -> None:
    """Raise the one line that answers a Pixray perceptor family this project leaves out."""
    if family in PERCEPTORS_LEFT_OUT:
        raise SettingsError(f"setting 'perceptors': Pixray's {family!r} perceptors are not part of this "
                            f"pixray: {PERCEPTORS_LEFT_OUT[family]}")
