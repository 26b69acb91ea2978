"""The Processing provider "Earth Embeddings" (id ``embeddings``)."""

from __future__ import annotations

import importlib
import os

from qgis.core import Qgis, QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..core.deps import importable, install_message, missing_dependencies

ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icons", "embeddings.svg")
LOG_TAG = "Earth Embeddings"

# (module, class, Python packages the algorithm cannot run without)
ALGORITHMS = (
    ("alg_load", "LoadEmbeddingsAlgorithm", ("rasterio", "pyproj")),
    ("alg_zonal", "ZonalStatsAlgorithm", ("rasterio", "pyproj")),
    ("alg_similarity", "SimilarityAlgorithm", ("rasterio", "pyproj")),
    ("alg_change", "ChangeMapAlgorithm", ("rasterio", "pyproj")),
)


class EmbeddingsProvider(QgsProcessingProvider):
    def __init__(self):
        super().__init__()
        self.skipped: list[str] = []

    def id(self) -> str:
        return "embeddings"

    def name(self) -> str:
        return "Earth Embeddings"

    def longName(self) -> str:
        return "Earth Embeddings (satellite embedding similarity and change)"

    def icon(self) -> QIcon:
        return QIcon(ICON)

    def svgIconPath(self) -> str:
        return ICON

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:
        return "tif"

    def loadAlgorithms(self):
        self.skipped = []
        for module_name, class_name, requires in ALGORITHMS:
            missing = [m for m in requires if not importable(m)]
            if missing:
                self.skipped.append(f"{module_name} (needs {', '.join(missing)})")
                continue
            module = importlib.import_module(f"{__package__}.{module_name}")
            self.addAlgorithm(getattr(module, class_name)())
        missing = missing_dependencies()
        if missing:
            QgsMessageLog.logMessage(install_message(missing), LOG_TAG, Qgis.MessageLevel.Warning)
