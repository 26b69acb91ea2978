"""The "Earth Embeddings" page of Settings > Options: the reading speed settings."""

from __future__ import annotations

from qgis.core import QgsSettings
from qgis.gui import QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QFormLayout, QLabel, QSpinBox, QVBoxLayout

from ..processing.resources import icon_path
from .performance import _FROM_START, PREFIX, SETTINGS, apply_settings, stored


class PerformancePage(QgsOptionsPageWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.boxes: dict[str, QSpinBox] = {}
        for name, (var, _default, (low, high), label, help_text) in SETTINGS.items():
            box = QSpinBox()
            box.setRange(low, high)
            box.setValue(stored(name))
            tip = help_text + f" (environment variable {var})"
            if _FROM_START[name] is not None:
                box.setEnabled(False)
                tip += f"; set to {_FROM_START[name]} when QGIS started, which wins."
            box.setToolTip(tip)
            if name == "threads":
                box.setSpecialValueText("one per core")
            form.addRow(label, box)
            self.boxes[name] = box
        layout.addLayout(form)
        note = QLabel("Results are the same for any setting; only the speed changes.")
        note.setWordWrap(True)
        layout.addWidget(note)
        layout.addStretch(1)

    def apply(self):
        settings = QgsSettings()
        for name, box in self.boxes.items():
            settings.setValue(PREFIX + name, box.value())
        apply_settings(settings)


class PerformanceOptionsFactory(QgsOptionsWidgetFactory):
    def __init__(self):
        super().__init__()
        self.setTitle("Earth Embeddings")

    def icon(self):
        return QIcon(icon_path("embeddings.svg"))

    def createWidget(self, parent):  # noqa: N802 - QGIS API
        return PerformancePage(parent)
