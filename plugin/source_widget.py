"""The Processing dialogs' widget for SOURCE: a text field for a path or URL, with a "..."
menu that picks an index file or a folder (QGIS's file parameter refuses folders, its folder
parameter files). In the standard dialog it also fills an unset extent with the map canvas.

Named in the parameter's metadata (processing.base.add_source_parameters) by its module
path, so that qgis_process never imports it: it needs the desktop's Processing GUI.
"""

from __future__ import annotations

from qgis.core import QgsProcessingContext
from qgis.PyQt.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QLineEdit, QMenu, QToolButton, QWidget

from processing.gui.wrappers import DIALOG_STANDARD, WidgetWrapper

PLACEHOLDER = "Empty: the public AlphaEarth product (Source Cooperative)"


class SourceWidget(QWidget):
    """A line edit and a "..." button with two choices: an index file or a folder."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.line = QLineEdit(self)
        self.line.setPlaceholderText(PLACEHOLDER)
        self.browse = QToolButton(self)
        self.browse.setText("…")
        self.browse.setToolTip("Choose a collection index file, or a folder of embedding GeoTIFFs")
        self.browse.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.browse)
        menu.addAction("Index file…", self.choose_file)
        menu.addAction("Folder of embedding GeoTIFFs…", self.choose_folder)
        self.browse.setMenu(menu)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.line, 1)
        layout.addWidget(self.browse)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Collection index", self.line.text(), "Collection index (*.csv *.gpkg *.parquet);;All files (*)"
        )
        if path:
            self.line.setText(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Collection folder", self.line.text())
        if path:
            self.line.setText(path)


class SourceWidgetWrapper(WidgetWrapper):
    """SOURCE in the standard dialog; a plain text field in the batch and model dialogs."""

    def createWidget(self, **_kwargs):  # noqa: N802 - QGIS API
        if self.dialogType == DIALOG_STANDARD:
            widget = SourceWidget()
            widget.line.textChanged.connect(lambda: self.widgetValueHasChanged.emit(self))
            return widget
        line = QLineEdit()
        line.setPlaceholderText(PLACEHOLDER)
        return line

    def createLabel(self):  # noqa: N802 - QGIS API
        # Not "[optional]": empty has a meaning (the public product), said in the field.
        if self.dialogType != DIALOG_STANDARD:
            return super().createLabel()
        label = QLabel(self.parameterDefinition().description())
        label.setToolTip(self.parameterDefinition().name())
        return label

    def line(self) -> QLineEdit:
        return self.widget.line if isinstance(self.widget, SourceWidget) else self.widget

    def setValue(self, value):  # noqa: N802 - QGIS API
        self.line().setText("" if value is None else str(value))

    def value(self):
        return self.line().text().strip()

    def postInitialize(self, wrappers):  # noqa: N802 - QGIS API
        """An extent left unset in the standard dialog becomes the map canvas extent."""
        if self.dialogType != DIALOG_STANDARD:
            return
        from qgis.utils import iface

        canvas = iface.mapCanvas() if iface is not None else None
        if canvas is None:
            return
        context = QgsProcessingContext()
        for wrapper in wrappers:
            if wrapper.parameterDefinition().name() != "EXTENT":
                continue
            if wrapper.parameterValue() in (None, ""):
                rect = canvas.extent()
                crs = canvas.mapSettings().destinationCrs().authid()
                text = f"{rect.xMinimum()},{rect.xMaximum()},{rect.yMinimum()},{rect.yMaximum()} [{crs}]"
                wrapper.setParameterValue(text, context)
