"""Pixray's settings that this project does not have yet, with Pixray's command-line flags.

A Pixray user's YAML file or command line may name any of Pixray's settings; those not built here
yet are answered with one line saying so, instead of "unknown setting". Names are Pixray's (the
``dest`` of its argparse options, which its YAML files use); flags are its command-line spellings.
When one is built, its entry leaves this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .errors import SettingsError

#: name -> Pixray's command-line flags for it.
NOT_YET: Mapping[str, tuple[str, ...]] = MappingProxyType({
    # pixray.py setup_parser
    "display_clear": ("-dc", "--display_clear"),
    "ezsize": ("-ezs", "--ezsize"),
    "perceptors": ("--perceptors",),
    "cut_pow": ("-cutp", "--cut_power"),
    "cudnn_determinism": ("-d", "--deterministic"),
    "cuda_device": ("-cud", "--cuda_device"),
    "alpha_use_g": ("--alpha_use_g",),
    "alpha_gamma": ("--alpha_gamma",),
    # drawers
    # losses
    # filters
})


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


def not_yet_message(name: str) -> str:
    """The one line that answers a Pixray setting this project does not have yet."""
    return (f"{name!r} is a Pixray setting that this pixray does not support yet (the README's settings "
            "reference lists what it has)")
