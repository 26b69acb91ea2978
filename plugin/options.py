"""Click-to-search choices, kept in QgsSettings and in the project."""

from __future__ import annotations

import math
from dataclasses import dataclass

from qgis.core import QgsProject, QgsSettings

SETTINGS_PREFIX = "earth_embeddings/search/"
PROJECT_SCOPE = "earth_embeddings"
YEARS = (2017, 2025)  # the public product's annual layers
MAX_TOP_K = 100
MAX_RESOLUTION_M = 10_000.0


@dataclass
class SearchOptions:
    """What a click runs with. ``source`` empty = the public product; ``threshold`` None = no areas."""

    source: str = ""
    year: int = 2024
    top_k: int = 10
    opacity: float = 0.8  # 0..1, of the Similarity layer
    threshold: float | None = None
    resolution_m: float | None = None  # None: follow the map (see plugin.search.map_resolution_m)

    def to_strings(self) -> dict:
        return {
            "source": self.source,
            "year": str(self.year),
            "top_k": str(self.top_k),
            "opacity": repr(self.opacity),
            "threshold": "" if self.threshold is None else repr(self.threshold),
            "resolution_m": "" if self.resolution_m is None else repr(self.resolution_m),
        }

    @classmethod
    def from_strings(cls, values: dict) -> SearchOptions:
        """Options from stored strings; a missing or unreadable value keeps its default."""
        out = cls()
        out.source = str(values.get("source") or "").strip()
        out.year = _clamp(_number(values.get("year"), int), *YEARS, out.year)
        out.top_k = _clamp(_number(values.get("top_k"), int), 0, MAX_TOP_K, out.top_k)
        out.opacity = _clamp(_number(values.get("opacity"), float), 0.0, 1.0, out.opacity)
        out.threshold = _clamp(_number(values.get("threshold"), float), -2.0, 2.0, None)
        out.resolution_m = _clamp(_number(values.get("resolution_m"), float), 10.0, MAX_RESOLUTION_M, None)
        return out


def _number(value, kind):
    if value in (None, ""):
        return None
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _clamp(value, low, high, default):
    return default if value is None else min(max(value, low), high)


FIELDS = tuple(SearchOptions().to_strings())


def load_settings(settings: QgsSettings | None = None) -> SearchOptions:
    settings = settings or QgsSettings()
    return SearchOptions.from_strings({k: settings.value(SETTINGS_PREFIX + k, None) for k in FIELDS})


def save_settings(options: SearchOptions, settings: QgsSettings | None = None) -> None:
    settings = settings or QgsSettings()
    for key, value in options.to_strings().items():
        settings.setValue(SETTINGS_PREFIX + key, value)


def write_project(options: SearchOptions, project: QgsProject | None = None) -> None:
    project = project or QgsProject.instance()
    for key, value in options.to_strings().items():
        project.writeEntry(PROJECT_SCOPE, "search/" + key, value)


def read_project(project: QgsProject | None = None) -> SearchOptions | None:
    """The options saved in the project, or None when it has none (a project from elsewhere)."""
    project = project or QgsProject.instance()
    values, found = {}, False
    for key in FIELDS:
        value, ok = project.readEntry(PROJECT_SCOPE, "search/" + key, "")
        if ok:
            values[key] = value
            found = True
    return SearchOptions.from_strings(values) if found else None
