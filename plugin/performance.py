"""Reading speed settings: decode threads and HTTP requests in flight.

Kept in QgsSettings and handed to the core as the environment variables it reads
(``EARTH_EMBEDDINGS_THREADS``, ``EARTH_EMBEDDINGS_HTTP_CONCURRENCY``), so Processing runs in the
desktop and in ``qgis_process`` use them alike. A variable already set when QGIS started wins
(the settings page says so). The page of Settings > Options ("Earth Embeddings") is in
performance_page.py (desktop only).
"""

from __future__ import annotations

import os

from qgis.core import QgsSettings

PREFIX = "earth_embeddings/performance/"
# setting name -> (environment variable, default (0: the number of cores), range, label, help)
SETTINGS = {
    "threads": (
        "EARTH_EMBEDDINGS_THREADS",
        0,
        (0, 64),
        "Decode threads",
        "Threads that decompress embedding blocks while the maps are computed. 0: one per processor core.",
    ),
    "http_concurrency": (
        "EARTH_EMBEDDINGS_HTTP_CONCURRENCY",
        16,
        (1, 64),
        "HTTP requests in flight",
        "Range requests sent at the same time to a remote collection; more hides the latency of a distant "
        "server, fewer is kinder to a slow link.",
    ),
}
_FROM_START = {name: os.environ.get(var) for name, (var, *_rest) in SETTINGS.items()}


def stored(name: str, settings: QgsSettings | None = None) -> int:
    _var, default, (low, high), *_ = SETTINGS[name]
    settings = settings or QgsSettings()
    try:
        value = int(settings.value(PREFIX + name, default))
    except (TypeError, ValueError):
        value = default
    return min(max(value, low), high)


def apply_settings(settings: QgsSettings | None = None) -> None:
    """Hand the stored values to the core (unless the variable was set before QGIS started)."""
    for name, (var, *_rest) in SETTINGS.items():
        if _FROM_START[name] is not None:
            continue
        value = stored(name, settings)
        if value > 0:
            os.environ[var] = str(value)
        else:
            os.environ.pop(var, None)
