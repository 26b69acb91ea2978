"""The plugin object QGIS creates through ``classFactory``."""

from __future__ import annotations

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtGui import QIcon

try:
    from qgis.PyQt.QtGui import QAction  # Qt 6 moved it here
except ImportError:
    from qgis.PyQt.QtWidgets import QAction

from ..core.deps import install_message, missing_dependencies
from ..processing.resources import LOG_TAG, icon_path
from .slots import guarded, show_warning

MENU = "&Earth Embeddings"
NOTIFIED_KEY = "earth_embeddings/optional_packages_notice"  # the optional-package notice already shown


class EarthEmbeddingsPlugin:
    """Registers the Processing provider; in the desktop, adds the menu and toolbar."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions: list[QAction] = []
        self.toolbar = None
        self.dependency_message = ""
        self.search_tool = None
        self.search_action = None
        self.search_dock = None
        self.search = None
        self.options_factory = None
        self.years_task = None
        self.coverage_task = None
        self.years_source: str | None = None

    # Processing only: this is all qgis_process calls ------------------------------
    def initProcessing(self):  # noqa: N802 - QGIS API
        if self.provider is not None:
            return
        from ..processing.provider import EmbeddingsProvider
        from .performance import apply_settings

        apply_settings()  # decode threads and requests in flight, from Settings > Options

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
        self.init_search()
        from .performance_page import PerformanceOptionsFactory

        self.options_factory = PerformanceOptionsFactory()
        self.iface.registerOptionsWidgetFactory(self.options_factory)

    # Click-to-search ----------------------------------------------------------------
    def init_search(self):
        from qgis.core import QgsProject
        from qgis.PyQt.QtCore import Qt

        from .dock import SearchDock
        from .maptool import SearchMapTool
        from .options import load_settings
        from .search import SearchController

        self.search_dock = SearchDock(self.iface.mainWindow())
        self.search_dock.set_options(load_settings())
        # Hidden after adding (adding shows it): it opens when the tool is chosen, or where the
        # user left it (QGIS restores the window's docks).
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.search_dock)
        self.search_dock.hide()
        if self.dependency_message:
            self.search_dock.set_status(
                "Click a place on the map with the click-to-search tool. " + self.dependency_message
            )
        self.search = SearchController(self.iface, self.search_dock.options)
        self.search_tool = SearchMapTool(self.iface.mapCanvas())
        self.search_action = self.add_action(
            "search_tool.svg", "Click-to-search similar places", self.toggle_search_tool, checkable=True
        )
        # QGIS unchecks the action when another map tool takes over.
        self.search_tool.setAction(self.search_action)
        self.add_action(
            "similarity.svg", "Click-to-search panel", lambda: self.search_dock.setVisible(True), toolbar=False
        )
        self.search_tool.clicked.connect(self.search.handle_click)
        self.search_tool.cleared.connect(self.search.clear)
        self.search_dock.clear_requested.connect(self.search.clear)
        self.search_dock.save_requested.connect(self.search.save_results)
        self.search_dock.options_changed.connect(self.search_options_changed)
        self.search_dock.source.editingFinished.connect(self.refresh_years)
        self.search_dock.coverage_requested.connect(self.show_coverage)
        self.search.status.connect(self.search_dock.set_status)
        self.refresh_years()
        project = QgsProject.instance()
        project.readProject.connect(self.read_search_options)
        project.writeProject.connect(self.write_search_options)

    @guarded("Earth Embeddings")
    def toggle_search_tool(self, checked: bool):
        canvas = self.iface.mapCanvas()
        if checked:
            canvas.setMapTool(self.search_tool)
            self.search_dock.setVisible(True)
        elif canvas.mapTool() is self.search_tool:
            canvas.unsetMapTool(self.search_tool)

    @guarded("Earth Embeddings")
    def refresh_years(self):
        """Limit the panel's Year to the years the chosen collection has, read by a background
        task (opening a remote index can take a while); a collection that cannot be opened
        leaves the box as it is (the search will say why)."""
        from qgis.core import QgsTask

        source = self.search_dock.options().source
        if source == self.years_source:
            return
        self.years_source = source
        if not source:  # the public product: its years are known, its index is large
            self.search_dock.set_years(None)
            return

        def read_years(_task, source=source):
            from ..core.collection import open_collection

            collection = open_collection(source)
            try:
                return source, (None if collection.any_year else collection.years())
            finally:
                collection.close()

        def done(exception, result=None):
            self.years_task = None
            if exception is None and result is not None and result[0] == self.years_source:
                self.search_dock.set_years(result[1])

        self.years_task = QgsTask.fromFunction(
            "Earth Embeddings: years of the collection", read_years, on_finished=done
        )
        QgsApplication.taskManager().addTask(self.years_task)

    @guarded("Showing the coverage")
    def show_coverage(self):
        """Add the footprints of the panel's collection for its year (read by a background task)."""
        from qgis.core import QgsTask

        options = self.search_dock.options()

        def footprints(_task, source=options.source, year=options.year):
            from ..core.collection import open_collection

            collection = open_collection(source)
            try:
                collection.check_year(year)
                return collection.label, [t.wgs84_bounds for t in collection.query(year, -180, -90, 180, 90)]
            finally:
                collection.close()

        def done(exception, result=None):
            self.coverage_task = None
            if exception is not None:
                self.show_error(
                    str(exception) if isinstance(exception, Exception) else "The coverage could not be read."
                )
                return
            self.add_coverage_layer(options.year, *result)

        self.search_dock.set_status("Reading the collection's footprints…")
        self.coverage_task = QgsTask.fromFunction("Earth Embeddings: coverage", footprints, on_finished=done)
        QgsApplication.taskManager().addTask(self.coverage_task)

    def add_coverage_layer(self, year: int, label: str, boxes: list) -> None:
        from qgis.core import QgsFeature, QgsFillSymbol, QgsGeometry, QgsProject, QgsRectangle, QgsVectorLayer

        layer = QgsVectorLayer("Polygon?crs=EPSG:4326", f"Coverage {year}", "memory")
        features = []
        for west, south, east, north in boxes:
            feature = QgsFeature()
            feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(west, south, east, north)))
            features.append(feature)
        layer.dataProvider().addFeatures(features)
        layer.updateExtents()
        layer.renderer().setSymbol(
            QgsFillSymbol.createSimple({"style": "no", "outline_color": "90,90,90", "outline_width": "0.4"})
        )
        QgsProject.instance().addMapLayer(layer)
        self.search_dock.set_status(f"{len(boxes):,} tile footprint(s) of {label} for {year}: click inside them.")

    @guarded("Earth Embeddings")
    def search_options_changed(self):
        from .options import save_settings

        options = self.search_dock.options()
        save_settings(options)
        self.search.set_opacity(options.opacity)

    @guarded("Earth Embeddings")
    def read_search_options(self, *_args):
        from .options import read_project

        options = read_project()
        if options is not None and self.search_dock is not None:
            self.search_dock.set_options(options)
            self.refresh_years()

    @guarded("Earth Embeddings")
    def write_search_options(self, *_args):
        from .options import write_project

        if self.search_dock is not None:
            write_project(self.search_dock.options())

    def unload_search(self):
        from qgis.core import QgsProject

        if self.search is None:
            return
        project = QgsProject.instance()
        for signal, slot in (
            (project.readProject, self.read_search_options),
            (project.writeProject, self.write_search_options),
        ):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        self.search.shutdown()
        canvas = self.iface.mapCanvas()
        if canvas.mapTool() is self.search_tool:
            canvas.unsetMapTool(self.search_tool)
        self.search_tool.deleteLater()
        self.iface.removeDockWidget(self.search_dock)
        self.search_dock.deleteLater()
        self.search.deleteLater()
        self.search_tool = self.search_action = self.search_dock = self.search = None

    def add_action(self, icon: str, text: str, callback, toolbar: bool = True, checkable: bool = False) -> QAction:
        action = QAction(QIcon(icon_path(icon)), text, self.iface.mainWindow())
        action.setCheckable(checkable)
        action.triggered.connect(callback)
        self.iface.addPluginToMenu(MENU, action)
        if toolbar and self.toolbar is not None:
            self.toolbar.addAction(action)
        self.actions.append(action)
        return action

    def show_error(self, message: str) -> None:
        """One sentence in the log and, in the desktop, the message bar."""
        show_warning(self.iface, "Earth Embeddings", message)

    def check_dependencies(self) -> str:
        """A missing required package: a critical message at every start. Only optional ones
        (faiss): information, in the message bar once per set of missing packages (it must not
        read as "the plugin is broken" at every start), in the log and the panel always."""
        from qgis.core import QgsSettings

        missing = missing_dependencies()
        self.dependency_message = install_message(missing)
        if not missing:
            return self.dependency_message
        required = any(d.required for d in missing)
        level = Qgis.MessageLevel.Critical if required else Qgis.MessageLevel.Info
        QgsMessageLog.logMessage(self.dependency_message, LOG_TAG, level)
        settings = QgsSettings()
        told = settings.value(NOTIFIED_KEY, "") == self.dependency_message
        if required or not told:
            self.iface.messageBar().pushMessage("Earth Embeddings", self.dependency_message, level=level, duration=0)
            if not required:
                settings.setValue(NOTIFIED_KEY, self.dependency_message)
        return self.dependency_message

    def canvas_extent_parameter(self) -> str:
        canvas = self.iface.mapCanvas()
        rect = canvas.extent()
        crs = canvas.mapSettings().destinationCrs().authid()
        return f"{rect.xMinimum()},{rect.xMaximum()},{rect.yMinimum()},{rect.yMaximum()} [{crs}]"

    def dialog_parameters(self, algorithm_id: str) -> dict:
        """What a toolbar dialog opens with: the canvas extent, and the panel's collection and
        year (the later year of a change map), so that the user does not type them twice."""
        params = {"EXTENT": self.canvas_extent_parameter()}
        algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
        if self.search_dock is not None and algorithm is not None:
            options = self.search_dock.options()
            for name, value in (("SOURCE", options.source), ("YEAR", options.year), ("YEAR_B", options.year)):
                if algorithm.parameterDefinition(name) is not None:
                    params[name] = value
        return params

    def open_algorithm(self, algorithm_id: str, parameters: dict | None = None):
        """Open an algorithm's dialog pre-filled (see dialog_parameters)."""
        import processing  # QGIS's own Processing plugin

        params = self.dialog_parameters(algorithm_id)
        params.update(parameters or {})
        processing.execAlgorithmDialog(algorithm_id, params)

    def unload(self):
        self.unload_search()
        if self.options_factory is not None:
            self.iface.unregisterOptionsWidgetFactory(self.options_factory)
            self.options_factory = None
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
