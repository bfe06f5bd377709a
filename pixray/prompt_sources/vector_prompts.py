"""Vector prompts (``vector_prompts``): a fixed direction per CLIP model, from a vector table.

Entries are ``name:weight:stop``, ``|``-separated: ``name`` is a table shipped with pixray
(``textoff``, a direction away from images of rendered text, on by default as in Pixray) or a JSON
file (see :mod:`pixray.vector_tables`). As Pixray, a vector pulls at a tenth of its weight; models
without an entry in a table are skipped, with a note in the log.
"""

from __future__ import annotations

import dataclasses
import logging

import torch

from ..init_images import ImageReader
from ..options import SettingsError
from ..perceptors import Perceptor
from ..prompts import Prompt, parse_prompt
from ..settings import Plan, Settings
from ..vector_tables import MAX_TABLE_BYTES, SHIPPED, parse_table, shipped_table
from .base import PromptSource, Targets

log = logging.getLogger(__name__)

#: A vector prompt's pull, relative to its weight (Pixray's).
STRENGTH = 0.1
_OFF = ("", "none", "0")


class VectorPrompts(PromptSource):
    steers = False

    def __init__(self, entries: list[tuple[Prompt, dict[str, torch.Tensor], bool]]) -> None:
        """``entries``: (prompt, table, whether the table is shipped with pixray)."""
        self.entries = entries

    @classmethod
    def from_settings(cls, settings: Settings, plan: Plan, images: ImageReader) -> VectorPrompts | None:
        value = settings.vector_prompts.strip()
        if value.lower() in _OFF:
            return None
        entries = []
        for part in (p for p in value.split("|") if p.strip()):
            entry = parse_prompt(part)
            name, shipped = entry.text, entry.text in SHIPPED
            table = (shipped_table(name) if shipped else
                     parse_table(images.read_text(name, "vector_prompts", MAX_TABLE_BYTES), repr(name)))
            entries.append((dataclasses.replace(entry, weight=STRENGTH * entry.weight), table, shipped))
        return cls(entries)

    def encode(self, perceptor: Perceptor) -> Targets:
        device = perceptor.device
        rows, weights, stops = [], [], []
        for entry, table, shipped in self.entries:
            vector = table.get(perceptor.name)
            if vector is None:
                # A shipped table (textoff is on by default) lacks most models: a note, not a warning.
                note = log.info if shipped else log.warning
                note("vector prompt %r has no direction for CLIP model %r; that model goes without it",
                     entry.text, perceptor.name)
                continue
            rows.append(torch.nn.functional.normalize(vector, dim=0))
            weights.append(entry.weight)
            stops.append(entry.stop)
        width = int(perceptor.model.visual.output_dim)
        for row in rows:
            if row.numel() != width:
                raise SettingsError(f"setting 'vector_prompts': a direction of {row.numel()} numbers for "
                                    f"{perceptor.name!r}, whose embeddings have {width}")
        embeds = torch.stack(rows).to(device) if rows else torch.zeros(0, width, device=device)
        return Targets(embeds, torch.tensor(weights, device=device), torch.tensor(stops, device=device))
