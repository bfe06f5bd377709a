"""The web form's settings: which settings have a field, the values a form sends as :class:`Settings`,
and the form filled from the settings an image was made with.

Every field's label, help text, choices and bounds come from the settings tree
(:func:`pixray.settings.all_specs`); every other setting goes in the "advanced" box as
``name: value`` lines, as in a YAML settings file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ..options import SettingsError, Spec
from ..settings import (
    Settings,
    all_specs,
    build_settings,
    group_title,
    parse_settings_text,
    sections_holding,
)

#: The settings with a field of their own, in the form's order.
FIELDS = ("prompts", "drawer", "quality", "aspect", "seed", "iterations", "init_image", "make_video")
#: Where the form puts a message about no field of its own (and the advanced box's name in messages).
ADVANCED = "advanced"
#: Settings a re-run from an image leaves out: where the image went (a re-run goes to a new outdir).
NOT_CARRIED = ("outdir", "output", "overwrite")

_QUOTED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)'")


@dataclass(frozen=True)
class Field:
    """One field of the form: its setting's spec, and how it is shown."""

    spec: Spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def info(self) -> str:
        """The help line under the field: the setting's help, and for a number its bounds, for a
        list of choices what they mean where the setting says (a text box takes any text)."""
        if self.kind == "number" or self.spec.describe is not None:
            return f"{self.spec.help}; {self.spec.allowed}"
        return self.spec.help

    @property
    def kind(self) -> str:
        """How the field takes its value: "image" (a file), "choice", "switch", "number" (an integer
        or a number), or "text" (a setting that also reads words, as the seed does, is text)."""
        spec = self.spec
        if spec.names_file:
            return "image"
        if spec.choices is not None:
            return "choice"
        if spec.value_type is bool:
            return "switch"
        if spec.value_type in (int, float) and spec.parse is None and not spec.is_list:
            return "number"
        return "text"

    @property
    def blank(self) -> Any:
        """The field's starting value: its setting's default (None: left to the quality preset, or
        chosen at random)."""
        return self.spec.default


def fields() -> list[Field]:
    """The form's fields, in order."""
    specs = all_specs()
    return [Field(specs[name]) for name in FIELDS]


def _given(value: Any) -> bool:
    """Whether a field's value says something (an empty box leaves the setting to its default)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def _field_value(value: Any) -> Any:
    # A number box sends floats (60.0), which an integer setting refuses.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value.strip() if isinstance(value, str) else value


def settings_from_form(base: Mapping[str, Any], form: Mapping[str, Any], advanced: str) -> Settings:
    """Settings from ``base`` (the UI's --config files), the advanced box's ``name: value`` lines and
    the form's fields (``FIELDS`` names -> values; blank ones leave the setting alone), in that order.

    Raises :class:`SettingsError` (the CLI's one-line message) for a bad value, and when the
    advanced box sets a setting that has a field of its own (which one counts would be unclear).
    """
    text = parse_settings_text(advanced or "", origin=f"{ADVANCED} settings")
    doubled = [name for name in text if name in FIELDS]
    if doubled:
        raise SettingsError(f"{ADVANCED} settings: {', '.join(map(repr, doubled))} has a field of its own "
                            "above; set it there")
    unknown = [name for name in form if name not in FIELDS]
    if unknown:
        raise ValueError(f"no field for {unknown}")
    given = {name: _field_value(value) for name, value in form.items() if _given(value)}
    settings = build_settings(base, text, given)
    if settings.animation_dir:
        raise SettingsError("setting 'animation_dir': the page makes one picture a run; make an animation "
                            "with the pixray command (pixray --animation_dir DIR ...)")
    return settings


def field_of(message: str) -> str:
    """The field a settings error message is about: the advanced box for a message about its text,
    else the first setting it names that has a field, else the advanced box."""
    if message.startswith(f"{ADVANCED} settings"):
        return ADVANCED
    for name in _QUOTED.findall(message):
        if name in FIELDS:
            return name
    return ADVANCED


def form_from_settings(values: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The form filled from flat settings (an image's, read back from its metadata): each field's
    value (blank where ``values`` leaves it to its default) and the advanced box's text for the rest
    (less :data:`NOT_CARRIED`)."""
    form = {field.name: values.get(field.name, field.blank) for field in fields()}
    rest = {name: value for name, value in values.items() if name not in FIELDS and name not in NOT_CARRIED}
    return form, yaml.safe_dump(rest, sort_keys=False, default_flow_style=None) if rest else ""


def reference() -> str:
    """Every setting the advanced box takes (Markdown): its name, default, help and allowed values,
    grouped by what it configures, as ``pixray --help`` groups them."""
    holders = sections_holding()
    groups: dict[str, list[str]] = {}
    for spec in all_specs().values():
        sections = holders.get(spec.name, (spec.section,))
        title = "Core" if spec.section == "core" else group_title(sections)
        default = "unset" if spec.default is None else f"`{_yaml_value(spec.default)}`"
        line = f"- `{spec.name}` (default {default}): {spec.help}; {spec.allowed}"
        groups.setdefault(title, []).append(line)
    return "\n\n".join(f"**{title}**\n\n" + "\n".join(lines) for title, lines in groups.items())


def _yaml_value(value: Any) -> str:
    """``value`` as it is written after ``name:`` in the advanced box."""
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...").strip()
