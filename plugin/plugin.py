"""The plugin object QGIS creates through ``classFactory``."""

from __future__ import annotations

import os

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtGui import QIcon

try:
    from qgis.PyQt.QtGui import QAction  # Qt 6 moved it here
except ImportError:
    from qgis.PyQt.QtWidgets import QAction

from ..core.deps import install_message, missing_dependencies

ICONS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icons")
MENU = "&Earth Embeddings"
LOG_TAG = "Earth Embeddings"


class EarthEmbeddingsPlugin:
    """Registers the Processing provider; in the desktop, adds the menu and toolbar."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions: list[QAction] = []
        self.toolbar = None
        self.dependency_message = ""

    # Processing only: this is all qgis_process calls ------------------------------
    def initProcessing(self):  # noqa: N802 - QGIS API
        if self.provider is not None:
            return
        from ..processing.provider import EmbeddingsProvider

        registry = QgsApplication.processingRegistry()
        if registry.providerById("embeddings") is not None:
            # Another instance is registered (a plugin reload): QGIS would delete ours.
            QgsMessageLog.logMessage(
                "The Earth Embeddings provider is already registered.", LOG_TAG, Qgis.MessageLevel.Info
            )
            return
        provider = EmbeddingsProvider()
        if registry.addProvider(provider):
            self.provider = provider

    # Desktop ------------------------------------------------------------------------
    def initGui(self):  # noqa: N802 - QGIS API
        self.initProcessing()
        self.check_dependencies()
        self.toolbar = self.iface.addToolBar("Earth Embeddings")
        self.toolbar.setObjectName("EarthEmbeddingsToolbar")
        self.add_action(
            "load.svg",
            "Load embeddings for canvas extent…",
            lambda: self.open_algorithm("embeddings:load"),
        )
        self.add_action(
            "change.svg",
            "Change map for canvas extent…",
            lambda: self.open_algorithm("embeddings:change"),
        )

    def add_action(self, icon: str, text: str, callback, toolbar: bool = True, checkable: bool = False) -> QAction:
        action = QAction(QIcon(os.path.join(ICONS, icon)), text, self.iface.mainWindow())
        action.setCheckable(checkable)
        action.triggered.connect(callback)
        self.iface.addPluginToMenu(MENU, action)
        if toolbar and self.toolbar is not None:
            self.toolbar.addAction(action)
        self.actions.append(action)
        return action

    def check_dependencies(self) -> str:
        missing = missing_dependencies()
        self.dependency_message = install_message(missing)
        if missing:
            level = Qgis.MessageLevel.Critical if any(d.required for d in missing) else Qgis.MessageLevel.Warning
            QgsMessageLog.logMessage(self.dependency_message, LOG_TAG, level)
            self.iface.messageBar().pushMessage("Earth Embeddings", self.dependency_message, level=level, duration=0)
        return self.dependency_message

    def canvas_extent_parameter(self) -> str:
        canvas = self.iface.mapCanvas()
        rect = canvas.extent()
        crs = canvas.mapSettings().destinationCrs().authid()
        return f"{rect.xMinimum()},{rect.xMaximum()},{rect.yMinimum()},{rect.yMaximum()} [{crs}]"

    def open_algorithm(self, algorithm_id: str, parameters: dict | None = None):
        """Open an algorithm's dialog with the canvas extent filled in."""
        import processing  # QGIS's own Processing plugin

        params = {"EXTENT": self.canvas_extent_parameter()}
        params.update(parameters or {})
        processing.execAlgorithmDialog(algorithm_id, params)

    def unload(self):
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
            action.deleteLater()
        self.actions = []
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
