"""The click-to-search panel: source, year, top-k, opacity, threshold, Clear, and a status line."""

from __future__ import annotations

from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .options import MAX_RESOLUTION_M, MAX_TOP_K, YEARS, SearchOptions

PUBLIC_PRODUCT = "Public AlphaEarth product (Source Cooperative)"


class SearchDock(QgsDockWidget):
    """Emits ``options_changed`` on every edit and ``clear_requested`` for the Clear button."""

    options_changed = pyqtSignal()
    clear_requested = pyqtSignal()
    save_requested = pyqtSignal(str)  # a folder to copy the current results into
    coverage_requested = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__("Earth Embeddings click-to-search", parent)
        self.setObjectName("EarthEmbeddingsSearchDock")
        body = QWidget(self)
        form = QFormLayout()

        self.source = QLineEdit(body)
        self.source.setPlaceholderText(PUBLIC_PRODUCT)
        self.source.setToolTip(
            "The collection to search: an index file (aef_index.csv), its folder, a folder of "
            "embedding GeoTIFFs (TESSERA, Earth Engine exports...), or an index URL. "
            "Empty: the public AlphaEarth Foundations product (needs internet)."
        )
        self.browse = QToolButton(body)
        self.browse.setText("…")
        self.browse.setToolTip("Choose a collection index file, or a folder of embedding GeoTIFFs")
        self.browse.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.browse)
        self.browse_index = menu.addAction("Index file…", self.choose_source)
        self.browse_folder = menu.addAction("Folder of embedding GeoTIFFs…", self.choose_folder)
        self.browse.setMenu(menu)
        row = QHBoxLayout()
        row.addWidget(self.source)
        row.addWidget(self.browse)
        form.addRow("Collection", row)

        self.year = QSpinBox(body)
        self.year.setRange(*YEARS)
        self.year.setToolTip("The year of the annual embeddings to search.")
        form.addRow("Year", self.year)

        self.resolution_mode = QComboBox(body)
        self.resolution_mode.addItems(["Follow the map", "10 m (the product's own)", "Other"])
        self.resolution_mode.setToolTip(
            "The pixel size of the search. Follow the map: the size of a screen pixel on the ground, "
            "rounded down to 10, 20, 40, 80... m, where the product's overviews are (zoomed out, far "
            "less is read); 10 m when zoomed in."
        )
        self.resolution = QSpinBox(body)
        self.resolution.setRange(10, int(MAX_RESOLUTION_M))
        self.resolution.setSingleStep(10)
        self.resolution.setSuffix(" m")
        self.resolution.setToolTip("The pixel size of the search, in metres (coarser pixels average the embeddings).")
        row = QHBoxLayout()
        row.addWidget(self.resolution_mode, 1)
        row.addWidget(self.resolution)
        form.addRow("Resolution", row)

        self.top_k = QSpinBox(body)
        self.top_k.setRange(0, MAX_TOP_K)
        self.top_k.setToolTip("How many of the most similar places to mark (0 = none).")
        form.addRow("Top places", self.top_k)

        self.opacity = QSpinBox(body)
        self.opacity.setRange(0, 100)
        self.opacity.setSuffix(" %")
        self.opacity.setToolTip("Opacity of the Similarity layer.")
        form.addRow("Opacity", self.opacity)

        self.use_threshold = QCheckBox("Areas above", body)
        self.use_threshold.setToolTip("Also outline the connected areas scoring above this value.")
        self.threshold = QDoubleSpinBox(body)
        self.threshold.setRange(-2.0, 2.0)
        self.threshold.setDecimals(3)
        self.threshold.setSingleStep(0.01)
        self.threshold.setValue(0.9)
        form.addRow(self.use_threshold, self.threshold)

        self.clear_button = QPushButton("Clear exemplars", body)
        self.clear_button.setToolTip("Forget the clicked places (same as Esc on the map).")
        self.clear_button.clicked.connect(self.clear_requested)
        self.save_button = QPushButton("Save results…", body)
        self.save_button.setToolTip(
            "Copy the current heatmap (GeoTIFF) and places (GeoPackage) into a folder of your choice. "
            "In a saved project they are also kept in the folder <project name>_embeddings beside it."
        )
        self.save_button.clicked.connect(self.choose_save_folder)
        self.coverage_button = QPushButton("Show coverage", body)
        self.coverage_button.setToolTip(
            "Add the footprints of the collection's tiles for the year: where a click finds embeddings."
        )
        self.coverage_button.clicked.connect(self.coverage_requested)
        self.status = QLabel("Click a place on the map with the click-to-search tool.", body)
        self.status.setWordWrap(True)
        help_text = QLabel("Click: search for a place. Shift-click: add a place. Ctrl-click: add a negative.", body)
        help_text.setWordWrap(True)

        # Messages must not resize the dock (and so the map canvas) while the user works.
        for label in (self.status, help_text):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(body)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.coverage_button)
        layout.addLayout(buttons)
        layout.addWidget(help_text)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.setWidget(body)

        self.set_options(SearchOptions())
        for signal in (
            self.source.editingFinished,
            self.year.valueChanged,
            self.top_k.valueChanged,
            self.opacity.valueChanged,
            self.threshold.valueChanged,
            self.use_threshold.toggled,
            self.resolution_mode.currentIndexChanged,
            self.resolution.valueChanged,
        ):
            signal.connect(self._changed)
        self.use_threshold.toggled.connect(self.threshold.setEnabled)
        self.resolution_mode.currentIndexChanged.connect(lambda i: self.resolution.setEnabled(i == 2))

    def options(self) -> SearchOptions:
        return SearchOptions(
            source=self.source.text().strip(),
            year=self.year.value(),
            top_k=self.top_k.value(),
            opacity=self.opacity.value() / 100.0,
            threshold=self.threshold.value() if self.use_threshold.isChecked() else None,
            resolution_m=self.chosen_resolution(),
        )

    def chosen_resolution(self) -> float | None:
        mode = self.resolution_mode.currentIndex()
        return None if mode == 0 else 10.0 if mode == 1 else float(self.resolution.value())

    def set_options(self, options: SearchOptions) -> None:
        """Show ``options`` without emitting a change per widget."""
        self._loading = True
        try:
            self.source.setText(options.source)
            self.year.setValue(options.year)
            self.top_k.setValue(options.top_k)
            self.opacity.setValue(round(options.opacity * 100))
            self.use_threshold.setChecked(options.threshold is not None)
            self.threshold.setEnabled(options.threshold is not None)
            if options.threshold is not None:
                self.threshold.setValue(options.threshold)
            res = options.resolution_m
            self.resolution_mode.setCurrentIndex(0 if res is None else 1 if res == 10.0 else 2)
            if res is not None:
                self.resolution.setValue(round(res))
            self.resolution.setEnabled(self.resolution_mode.currentIndex() == 2)
        finally:
            self._loading = False

    def set_years(self, years: list[int] | None) -> None:
        """Limit Year to a collection's years (None: a collection for any year, the full range)."""
        low, high = (min(years), max(years)) if years else YEARS
        self.year.setRange(low, high)
        self.year.setToolTip(
            "The year of the annual embeddings to search"
            + (f" (the collection has {', '.join(str(y) for y in years)})." if years else ".")
        )

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    def choose_source(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Collection index", self.source.text(), "Collection index (*.csv *.gpkg *.parquet);;All files (*)"
        )
        if path:
            self.source.setText(path)
            self._changed()

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of embedding GeoTIFFs", self.source.text())
        if path:
            self.source.setText(path)
            self._changed()

    def choose_save_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder for the search results")
        if path:
            self.save_requested.emit(path)

    def _changed(self, *_args) -> None:
        if not getattr(self, "_loading", False):
            self.options_changed.emit()
