"""Text prompts: Pixray's ``text:weight:stop`` syntax and the spherical-distance loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .options import SettingsError, shown


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
