"""The click-to-search map tool. It only reports what the user did; the controller decides."""

from __future__ import annotations

from qgis.core import QgsPointXY
from qgis.gui import QgsMapTool
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QCursor

# What a click means (the controller owns the lists these modes edit).
REPLACE = "replace"  # plain click: search for this place only
ADD_EXEMPLAR = "add"  # Shift-click: one more place to search for
ADD_NEGATIVE = "negative"  # Ctrl-click: a place that should score low


def click_mode(modifiers) -> str:
    """The mode of a click with these keyboard modifiers (Ctrl wins over Shift)."""
    if modifiers & Qt.KeyboardModifier.ControlModifier:
        return ADD_NEGATIVE
    if modifiers & Qt.KeyboardModifier.ShiftModifier:
        return ADD_EXEMPLAR
    return REPLACE


class SearchMapTool(QgsMapTool):
    """Left click: ``clicked(point in the canvas CRS, mode)``; Esc: ``cleared()``."""

    clicked = pyqtSignal(QgsPointXY, str)
    cleared = pyqtSignal()

    def __init__(self, canvas):
        super().__init__(canvas)
        self.setCursor(QCursor(Qt.CursorShape.CrossCursor))

    def canvasReleaseEvent(self, event):  # noqa: N802 - QGIS API
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self.clicked.emit(QgsPointXY(event.mapPoint()), click_mode(event.modifiers()))

    def keyPressEvent(self, event):  # noqa: N802 - QGIS API
        if event.key() == Qt.Key.Key_Escape:
            event.accept()
            self.cleared.emit()
        else:
            event.ignore()  # arrows, space: the canvas pans as usual
