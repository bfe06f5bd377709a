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


#: Drawer names of Pixray's first versions (2021), which it later renamed.
DRAWERS_RENAMED: Mapping[str, str] = MappingProxyType({"pixeldraw": "pixel", "linedraw": "line_sketch"})

#: Settings of Pixray's first versions that chose the drawer, before its ``drawer`` setting.
SETTINGS_RENAMED: Mapping[str, tuple[str, str]] = MappingProxyType({"use_pixeldraw": ("drawer", "pixel"),
                                                                    "use_clipdraw": ("drawer", "clipdraw")})


def refuse_drawer_renamed(name: str) -> str:
    """``name``, unless it is a drawer's name from Pixray's first versions: then the one line that says
    what it is called now."""
    if isinstance(name, str) and name.strip() in DRAWERS_RENAMED:
        now = DRAWERS_RENAMED[name.strip()]
        raise SettingsError(f"setting 'drawer': {name.strip()!r} is what Pixray's first versions called "
                            f"{now!r}; give drawer: {now}")
    return name


def renamed_setting_hint(name: str, command_line: bool = False) -> str:
    """What to give instead of a setting of Pixray's first versions, as a settings file or (with
    ``command_line``) a command line spells it; empty for any other name."""
    if name not in SETTINGS_RENAMED:
        return ""
    setting, value = SETTINGS_RENAMED[name]
    return (f" (Pixray's first versions' way to choose the drawer; give "
            f"{f'--{setting} {value}' if command_line else f'{setting}: {value}'} instead)")
