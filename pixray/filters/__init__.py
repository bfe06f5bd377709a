"""Filters by name: stages between the drawer's image and the cutouts (``filters: name:weight,...``).

A new filter is one file plus one line here.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Filter
from .lookup import LookupFilter
from .tiler import TilerFilter
from .wallpaper import WallpaperFilter

FILTERS: Registry[type[Filter]] = Registry("filter", {
    "tiler": TilerFilter,
    "wallpaper": WallpaperFilter,
    "lookup": LookupFilter,
})

__all__ = ["FILTERS", "Filter"]
