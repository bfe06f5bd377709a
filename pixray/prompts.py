"""Text prompts: Pixray's ``text:weight:stop`` syntax, schedules of them, the spherical-distance loss."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import torch

from .options import SettingsError, shown
from .value_forms import iterations_of, parse_percent_unit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    """One prompt. A negative ``weight`` pushes the image away from the text; once the distance
    falls below ``stop`` the prompt stops pulling (its gradient is zero there)."""

    text: str
    weight: float = 1.0
    stop: float = float("-inf")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_prompt(text: str) -> Prompt:
    """``"a cat:0.5:-inf"`` -> Prompt("a cat", 0.5, -inf). Trailing fields count only if numeric,
    so colons inside the text ("10:30 am", URLs) are kept."""
    parts = text.strip().rsplit(":", 2)
    numbers: list[float] = []
    while len(parts) > 1 and (value := _number(parts[-1])) is not None:
        numbers.insert(0, value)
        parts = parts[:-1]
        if len(numbers) == 2:
            break
    body = ":".join(parts).strip()
    if not body:
        raise SettingsError(f"prompt {shown(text)} has no text; expected 'text', 'text:weight' or "
                            "'text:weight:stop'")
    if (numbers and not math.isfinite(numbers[0])) or any(math.isnan(n) for n in numbers):
        raise SettingsError(f"prompt {shown(text)}: weight and stop must be numbers (the weight finite; "
                            "the stop may be -inf)")
    return Prompt(body, *numbers)


def parse_prompts(text: str) -> list[Prompt]:
    """The ``|``-separated prompts of ``text`` (empty parts are ignored)."""
    return [parse_prompt(part) for part in text.split("|") if part.strip()]


@dataclass(frozen=True)
class Phase:
    """Prompts in force from step ``start`` up to (not including) step ``end``."""

    prompts: tuple[Prompt, ...]
    start: int
    end: int


_POINT = r"\d*\.?\d+\s*(?:iterations|iter|i|percent|%|p)?"
_RANGE = re.compile(rf"^(?P<body>.*?)@\s*(?P<start>{_POINT})\s*-\s*(?P<end>{_POINT})\s*$", re.DOTALL)


def parse_schedule(text: str, iterations: int, setting: str = "prompts") -> list[Phase]:
    """Story mode: ``text`` split at ``^`` into phases of ``|``-separated prompts, each in force for
    its share of a run of ``iterations`` steps.

    A phase may end with ``@start-end`` (points as ``learning_rate_drops`` takes them: plain numbers
    and ``%`` are percent of the run, ``i`` iterations); phases without one share the stretch
    between their neighbours' ranges (the start and end of the run at the ends) evenly. Text
    without ``^`` is one phase over the whole run. Errors name ``setting``.
    """
    parts = [part for part in text.split("^") if part.strip()]
    bodies, ranges = [], []
    for part in parts:
        match = _RANGE.match(part)
        if match:
            try:
                start, end = (iterations_of(parse_percent_unit(match[key]), iterations)
                              for key in ("start", "end"))
            except ValueError:
                raise SettingsError(f"{setting}: the range in {shown(part.strip())} is not 'start-end' in "
                                    "percent (at most 100) or iterations (10i)") from None
            if start > end:
                raise SettingsError(f"{setting}: the range in {shown(part.strip())} ends before it starts")
            if start == end:
                raise SettingsError(f"{setting}: the range in {shown(part.strip())} holds no step of this "
                                    f"{iterations}-iteration run (its start and end both fall at step "
                                    f"{start}); widen it or add iterations")
            bodies.append(match["body"])
            ranges.append((start, end))
        else:
            bodies.append(part)
            ranges.append(None)
    for body in bodies:
        _warn_of_digit_colons(body, setting)
    phases = []
    i = 0
    while i < len(parts):
        if ranges[i] is not None:
            start, end = ranges[i]
            phases.append(Phase(tuple(parse_prompts(bodies[i])), start, end))
            i += 1
            continue
        j = i
        while j < len(parts) and ranges[j] is None:
            j += 1
        low = ranges[i - 1][1] if i > 0 else 0
        high = ranges[j][0] if j < len(parts) else iterations
        count = j - i
        if high - low < count:
            raise SettingsError(f"{setting}: {shown(bodies[i].strip())} has no part of the run left between "
                                "the ranges given; shorten the ranges or add iterations")
        for k in range(count):
            start, end = low + (high - low) * k // count, low + (high - low) * (k + 1) // count
            phases.append(Phase(tuple(parse_prompts(bodies[i + k])), start, end))
        i = j
    return phases


#: An entry ending in a digit, a colon and a whole number: a time or a ratio ("12:30", "16:9").
_DIGIT_COLON = re.compile(r"\d:\d+\s*$")


def _warn_of_digit_colons(body: str, setting: str) -> None:
    """Pixray's rule reads "a clock at 12:30" as the text "a clock at 12" at weight 30: kept, and said
    in a warning with the way to keep the colon in the text."""
    for entry in body.split("|"):
        if not _DIGIT_COLON.search(entry):
            continue
        prompt = parse_prompt(entry)
        # 'moon:0.5:2' gives a weight and a stop after text that ends in no digit: nothing to mistake.
        if prompt.text[-1:].isdigit():
            stop = "" if prompt.stop == float("-inf") else f" and stop {prompt.stop:g}"
            log.warning("%s: %r reads as %r at weight %g%s (Pixray's 'text:weight:stop'); if the colon "
                        "belongs to the text, end it with ':1:-inf' (weight 1, no stop)", setting,
                        entry.strip(), prompt.text, prompt.weight, stop)


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance ``2*arcsin(|a-b|/2)^2`` between unit vectors.

    a: (N,D), b: (P,D) -> (N,P) in [0, pi^2/2].
    """
    # Explicit differences: cdist's matrix-product shortcut loses precision for near-equal vectors.
    chord = (a[:, None, :] - b[None, :, :]).norm(dim=-1).clamp(max=2.0)
    return 2 * (chord / 2).arcsin().pow(2)


def prompt_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, weights: torch.Tensor,
                stops: torch.Tensor) -> torch.Tensor:
    """Per-prompt losses (P,) of the cutout embeddings (N,D) against prompt embeddings (P,D).

    Each prompt's loss is ``|weight| * mean over cutouts of sign(weight) * distance``, with no
    gradient from cutouts whose signed distance is already below the prompt's stop.
    """
    signed = spherical_distance(image_embeds, text_embeds) * weights.sign()
    signed = torch.where(signed > stops, signed, signed.detach())
    return weights.abs() * signed.mean(dim=0)


def paired_loss(image_embeds: torch.Tensor, target_embeds: torch.Tensor, weight: float,
                stop: float = float("-inf")) -> torch.Tensor:
    """The loss (0-d) of cutout embeddings (N,D) against targets (N,D) seen through the same
    cutouts, pair by pair: ``|weight| * mean of sign(weight) * distance``, no gradient from pairs
    whose signed distance is below ``stop`` (as :func:`prompt_loss`)."""
    chord = (image_embeds - target_embeds).norm(dim=-1).clamp(max=2.0)
    signed = 2 * (chord / 2).arcsin().pow(2) * math.copysign(1.0, weight)
    signed = torch.where(signed > stop, signed, signed.detach())
    return abs(weight) * signed.mean()
