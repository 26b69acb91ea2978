"""Where the plugin's icons, styles and models are (resources/ beside the code)."""

from __future__ import annotations

import os

RESOURCES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources")
MODELS = os.path.join(RESOURCES, "models")


def icon_path(name: str) -> str:
    """An SVG icon from resources/icons."""
    return os.path.join(RESOURCES, "icons", name)


def style_path(name: str) -> str:
    """A QML style from resources/styles."""
    return os.path.join(RESOURCES, "styles", name)


# The tag of the plugin's lines in QGIS's message log (the provider's and the desktop's).
LOG_TAG = "Earth Embeddings"
