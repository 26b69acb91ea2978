"""Click-to-search: owns the exemplar lists, runs embeddings:similarity in the background, and
shows the results in layers that are reused from click to click.

The map tool only reports clicks; this controller decides what they mean. Each search is a
``QgsProcessingAlgRunnerTask`` on QGIS's task manager with its own context and feedback, kept
referenced until the task reports ``executed``. A newer click cancels the running search and
starts another; results of superseded searches are ignored and their files deleted.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from qgis.core import (
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsDataProvider,
    QgsFeature,
    QgsGeometry,
    QgsMarkerSymbol,
    QgsPointXY,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QObject, QTimer, pyqtSignal

from ..processing.styles import apply_qml, stretch_pseudocolor
from .maptool import ADD_EXEMPLAR, ADD_NEGATIVE, REPLACE
from .options import SearchOptions
from .slots import guarded, show_warning

ALGORITHM_ID = "embeddings:similarity"
GROUP_NAME = "Earth Embeddings search"
ROLE_PROPERTY = "earth_embeddings/search_role"  # finds our layers again, also in a reloaded project
SIMILARITY, EXEMPLARS, TOP_PLACES, AREAS = "similarity", "exemplars", "top_places", "areas"
LAYER_NAMES = {
    SIMILARITY: "Similarity",
    EXEMPLARS: "Search exemplars",
    TOP_PLACES: "Top places",
    AREAS: "Similar areas",
}
# Top to bottom in the group: points over areas over the heatmap.
LAYER_ORDER = (EXEMPLARS, TOP_PLACES, AREAS, SIMILARITY)
WGS84 = "EPSG:4326"
TITLE = "Click-to-search"


class SearchFeedback(QgsProcessingFeedback):
    """Feedback that remembers the errors and warnings the algorithm reported (they are sentences)."""

    def __init__(self):
        super().__init__()
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def reportError(self, error, fatalError=False):  # noqa: N802, N803 - QGIS API
        self.errors.append(str(error))
        super().reportError(error, fatalError)

    def pushWarning(self, warning):  # noqa: N802 - QGIS API
        self.warnings.append(str(warning))
        super().pushWarning(warning)


@dataclass
class SearchRun:
    """One search: everything that must stay referenced until its task reports back."""

    serial: int
    folder: str
    parameters: dict
    top_k: int
    threshold: float | None
    context: QgsProcessingContext | None = None
    feedback: SearchFeedback | None = None
    task: QgsProcessingAlgRunnerTask | None = None
    done: bool = False
    results: dict = field(default_factory=dict)


class SearchController(QObject):
    """Click-to-search state and runs. ``options`` is a callable returning the current SearchOptions."""

    status = pyqtSignal(str)  # one line for the dock
    exemplars_changed = pyqtSignal(int, int)  # positives, negatives
    search_started = pyqtSignal(int)  # serial
    search_finished = pyqtSignal(int, bool)  # serial, shown (False: failed or cancelled)

    def __init__(self, iface, options, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.options = options
        self.exemplars: list[QgsPointXY] = []  # lon/lat (EPSG:4326)
        self.negatives: list[QgsPointXY] = []
        self.runs: dict[int, SearchRun] = {}  # not yet executed (the latest and superseded ones)
        self.serial = 0
        self.shown_serial = 0
        self.shown_folder: str | None = None
        self.root = os.path.join(QgsProcessingUtils.tempFolder(), "earth_embeddings_search")
        os.makedirs(self.root, exist_ok=True)

    # Clicks -------------------------------------------------------------------------
    @guarded("The search")
    def handle_click(self, point, mode: str) -> None:
        """A click from the map tool: ``point`` in the canvas CRS, ``mode`` from plugin.maptool."""
        lonlat = self.to_wgs84(QgsPointXY(point), self.iface.mapCanvas().mapSettings().destinationCrs())
        if mode == ADD_NEGATIVE:
            self.negatives.append(lonlat)
        elif mode == ADD_EXEMPLAR:
            self.exemplars.append(lonlat)
        elif mode == REPLACE:
            self.exemplars = [lonlat]
            self.negatives = []
        else:
            raise ValueError(f"unknown click mode {mode!r}")
        self.exemplars_changed.emit(len(self.exemplars), len(self.negatives))
        self.update_exemplar_layer()
        if not self.exemplars:
            self.status.emit("Negative places noted; click a place to search for.")
            return
        self.search()

    @guarded("The search")
    def clear(self) -> None:
        """Forget the exemplars and negatives (Esc or the dock's Clear button); stop a running search."""
        self.cancel()
        self.exemplars, self.negatives = [], []
        self.exemplars_changed.emit(0, 0)
        self.update_exemplar_layer()
        self.status.emit("Cleared; click a place to search for places like it.")

    @staticmethod
    def to_wgs84(point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> QgsPointXY:
        target = QgsCoordinateReferenceSystem(WGS84)
        if crs == target:
            return QgsPointXY(point)
        return QgsCoordinateTransform(crs, target, QgsProject.instance()).transform(point)

    # Runs ---------------------------------------------------------------------------
    def search(self) -> SearchRun | None:
        """Search the canvas extent for the current exemplars, superseding any running search."""
        options: SearchOptions = self.options()
        registry = QgsApplication.processingRegistry()
        algorithm = registry.createAlgorithmById(ALGORITHM_ID)
        if algorithm is None:
            self.show_error(
                "The similarity search is not available: a required Python package is missing; "
                "see the Earth Embeddings message in the log for how to install it."
            )
            return None
        # A new serial first: cancelling a queued task may report back synchronously, and
        # that report must already count as superseded.
        self.serial += 1
        self.cancel()
        folder = tempfile.mkdtemp(prefix=f"run{self.serial}-", dir=self.root)
        canvas = self.iface.mapCanvas()
        rect = canvas.extent()
        crs = canvas.mapSettings().destinationCrs()
        extent = f"{rect.xMinimum()!r},{rect.xMaximum()!r},{rect.yMinimum()!r},{rect.yMaximum()!r} [{crs.authid()}]"
        if not crs.authid():
            from qgis.core import QgsReferencedRectangle

            extent = QgsReferencedRectangle(rect, crs)
        parameters = {
            "SOURCE": options.source,
            "YEAR": options.year,
            "EXTENT": extent,
            "EXEMPLARS": write_points(os.path.join(folder, "exemplars.geojson"), self.exemplars, "clicked place"),
            "TOP_K": options.top_k,
            "OUTPUT": os.path.join(folder, "similarity.tif"),
        }
        if self.negatives:
            parameters["NEGATIVES"] = write_points(
                os.path.join(folder, "negatives.geojson"), self.negatives, "negative place"
            )
        # Only outputs passed explicitly are written where we read them.
        parameters["OUTPUT_TOP_K"] = os.path.join(folder, "top.gpkg") if options.top_k > 0 else None
        if options.threshold is not None:
            parameters["THRESHOLD"] = options.threshold
            parameters["OUTPUT_AREAS"] = os.path.join(folder, "areas.gpkg")
        run = SearchRun(self.serial, folder, parameters, options.top_k, options.threshold)
        run.context = QgsProcessingContext()
        run.context.setProject(QgsProject.instance())
        run.feedback = SearchFeedback()
        run.task = QgsProcessingAlgRunnerTask(algorithm, parameters, run.context, run.feedback)
        run.task.setDescription(f"Earth Embeddings: similarity search {run.serial}")
        run.task.executed.connect(functools.partial(self.on_executed, run.serial))
        self.runs[run.serial] = run
        QgsApplication.taskManager().addTask(run.task)
        n_pos, n_neg = len(self.exemplars), len(self.negatives)
        what = f"{n_pos} place{'s' if n_pos != 1 else ''}"
        if n_neg:
            what += f", {n_neg} negative{'s' if n_neg != 1 else ''}"
        self.status.emit(f"Searching the map view for places like {what} ({options.year})…")
        self.search_started.emit(run.serial)
        return run

    def cancel(self) -> None:
        """Cancel every search still running; their results will be ignored."""
        for run in list(self.runs.values()):  # a cancelled task may report back (and leave) at once
            if run.done:
                continue
            run.feedback.cancel()
            try:
                run.task.cancel()
            except RuntimeError:  # the task manager already deleted the finished task
                pass

    def busy(self) -> bool:
        return bool(self.runs)

    @guarded("The search")
    def on_executed(self, serial: int, successful: bool, results: dict) -> None:
        run = self.runs.pop(serial, None)
        if run is None:
            return
        run.done = True
        run.results = dict(results or {})
        latest = serial == self.serial
        if not latest:
            shutil.rmtree(run.folder, ignore_errors=True)  # superseded: never shown
            return
        if not successful:
            if run.feedback.isCanceled():
                self.status.emit("Search cancelled.")
            else:
                message = run.feedback.errors[-1] if run.feedback.errors else "The similarity search failed."
                self.show_error(message)
                self.status.emit(message)
            shutil.rmtree(run.folder, ignore_errors=True)
            self.search_finished.emit(serial, False)
            return
        self.show_results(run)
        previous, self.shown_folder, self.shown_serial = self.shown_folder, run.folder, serial
        if previous and previous != run.folder:
            shutil.rmtree(previous, ignore_errors=True)
        pixels = int(run.results.get("VALID_PIXELS") or 0)
        best = run.results.get("SCORE_MAX")
        line = f"Similarity of {pixels:,} pixels"
        if best is not None:
            line += f", best {float(best):.3f}"
        self.status.emit(line + ".")
        self.search_finished.emit(serial, True)

    # Layers -------------------------------------------------------------------------
    def show_results(self, run: SearchRun) -> None:
        results = run.results
        self.update_similarity_layer(results["OUTPUT"], results.get("SCORE_LOW"), results.get("SCORE_MAX"))
        top = results.get("OUTPUT_TOP_K") if run.top_k > 0 else None
        self.update_copy_layer(TOP_PLACES, "Point", top, "similarity_top_k.qml")
        areas = results.get("OUTPUT_AREAS") if run.threshold is not None else None
        self.update_copy_layer(AREAS, "Polygon", areas, "similarity_areas.qml")

    def layer(self, role: str):
        """Our layer for ``role`` in the project (also one from a saved project), or None."""
        for layer in QgsProject.instance().mapLayers().values():
            if layer.customProperty(ROLE_PROPERTY) == role:
                return layer
        return None

    def canvas_bridge(self):
        from qgis.gui import QgsLayerTreeMapCanvasBridge

        try:
            bridge = self.iface.layerTreeCanvasBridge()
        except (AttributeError, RuntimeError):
            return None
        return bridge if isinstance(bridge, QgsLayerTreeMapCanvasBridge) else None

    def group(self):
        root = QgsProject.instance().layerTreeRoot()
        group = root.findGroup(GROUP_NAME)
        return group if group is not None else root.insertGroup(0, GROUP_NAME)

    def add_layer(self, layer, role: str) -> None:
        layer.setCustomProperty(ROLE_PROPERTY, role)
        # In an empty project QGIS zooms to the first layer added (here: one clicked point) and
        # takes its CRS; the view the user searches must stay put. The bridge applies that
        # set-up in a queued call, so it is switched back on by a queued call after it.
        bridge = self.canvas_bridge()
        hold_view = bridge is not None and bridge.autoSetupOnFirstLayer() and not QgsProject.instance().count()
        if hold_view:
            bridge.setAutoSetupOnFirstLayer(False)
        QgsProject.instance().addMapLayer(layer, False)
        group = self.group()
        below = LAYER_ORDER[LAYER_ORDER.index(role) + 1 :]
        index = 0
        for child in group.findLayers():
            if child.layer() is not None and child.layer().customProperty(ROLE_PROPERTY) not in below:
                index += 1
        group.insertLayer(index, layer)
        if hold_view:
            QTimer.singleShot(0, functools.partial(bridge.setAutoSetupOnFirstLayer, True))

    def update_similarity_layer(self, path: str, low, high) -> QgsRasterLayer:
        layer = self.layer(SIMILARITY)
        if layer is None:
            layer = QgsRasterLayer(path, LAYER_NAMES[SIMILARITY], "gdal")
            if not layer.isValid():
                raise RuntimeError(f"the similarity raster {path} could not be opened")
            style_similarity(layer, low, high)
            layer.setOpacity(self.options().opacity)
            self.add_layer(layer, SIMILARITY)
        else:
            opacity = layer.opacity()  # the user's, from the dock or the layer properties
            layer.setDataSource(path, layer.name(), "gdal", QgsDataProvider.ProviderOptions())
            style_similarity(layer, low, high)
            layer.setOpacity(opacity)
            layer.setCustomProperty(ROLE_PROPERTY, SIMILARITY)  # loading a QML replaces custom properties
        layer.triggerRepaint()
        return layer

    def set_opacity(self, opacity: float) -> None:
        layer = self.layer(SIMILARITY)
        if layer is not None:
            layer.setOpacity(opacity)
            layer.triggerRepaint()

    def update_copy_layer(self, role: str, geometry: str, path: str | None, qml: str):
        """Copy an output file's features (in lon/lat) into our memory layer for ``role``."""
        layer = self.layer(role)
        if path is None:
            if layer is not None:
                layer.dataProvider().truncate()
                layer.triggerRepaint()
            return layer
        source = QgsVectorLayer(path, "output", "ogr")
        if not source.isValid():
            raise RuntimeError(f"the output {path} could not be opened")
        if layer is None:
            layer = QgsVectorLayer(f"{geometry}?crs={WGS84}", LAYER_NAMES[role], "memory")
            layer.dataProvider().addAttributes(source.fields().toList())
            layer.updateFields()
            apply_qml(layer, qml)
            self.add_layer(layer, role)
        transform = QgsCoordinateTransform(source.crs(), layer.crs(), QgsProject.instance())
        features = []
        for src in source.getFeatures():
            feature = QgsFeature(layer.fields())
            geometry_ = QgsGeometry(src.geometry())
            geometry_.transform(transform)
            feature.setGeometry(geometry_)
            for name in layer.fields().names():
                if source.fields().indexOf(name) >= 0:
                    feature[name] = src[name]
            features.append(feature)
        layer.dataProvider().truncate()
        layer.dataProvider().addFeatures(features)
        layer.updateExtents()
        layer.triggerRepaint()
        return layer

    def update_exemplar_layer(self) -> QgsVectorLayer | None:
        layer = self.layer(EXEMPLARS)
        if layer is None:
            if not (self.exemplars or self.negatives):
                return None
            layer = QgsVectorLayer(
                f"Point?crs={WGS84}&field=kind:string(10)&field=number:integer", LAYER_NAMES[EXEMPLARS], "memory"
            )
            layer.setRenderer(exemplar_renderer())
            self.add_layer(layer, EXEMPLARS)
        features = []
        for kind, points in (("exemplar", self.exemplars), ("negative", self.negatives)):
            for i, point in enumerate(points, start=1):
                feature = QgsFeature(layer.fields())
                feature.setGeometry(QgsGeometry.fromPointXY(point))
                feature["kind"] = kind
                feature["number"] = i
                features.append(feature)
        layer.dataProvider().truncate()
        layer.dataProvider().addFeatures(features)
        layer.updateExtents()
        layer.triggerRepaint()
        return layer

    # Messages and shutdown ----------------------------------------------------------
    def show_error(self, message: str) -> None:
        show_warning(self.iface, TITLE, message, duration=10)

    def shutdown(self) -> None:
        """Cancel running searches and drop every reference (plugin unload)."""
        self.cancel()
        for run in list(self.runs.values()):
            # The task may still be running with this run's context and feedback: they must
            # outlive it, though the controller goes away.
            try:
                run.task.executed.disconnect()
                run.task.executed.connect(functools.partial(_release_detached, id(run)))
            except (RuntimeError, TypeError):
                continue  # already finished and deleted by the task manager
            _DETACHED[id(run)] = run
        self.runs = {}
        self.exemplars, self.negatives = [], []


_DETACHED: dict[int, SearchRun] = {}  # runs of a controller that was shut down, until their task ends


def _release_detached(key: int, *_args) -> None:
    run = _DETACHED.pop(key, None)
    if run is not None:
        shutil.rmtree(run.folder, ignore_errors=True)


def style_similarity(layer: QgsRasterLayer, low, high) -> None:
    """The style of embeddings:similarity: magma from the 2nd percentile to the best score."""
    apply_qml(layer, "similarity.qml")
    if low is not None and high is not None:
        stretch_pseudocolor(layer, float(low), float(high))


def exemplar_renderer() -> QgsCategorizedSymbolRenderer:
    """Exemplars as green stars, negatives as red crosses (built here: no style database needed)."""
    categories = []
    for value, label, spec in (
        ("exemplar", "Exemplar", {"name": "star", "color": "50,220,70", "size": "5", "outline_color": "0,0,0"}),
        ("negative", "Negative", {"name": "cross_fill", "color": "230,40,40", "size": "4", "outline_color": "0,0,0"}),
    ):
        categories.append(QgsRendererCategory(value, QgsMarkerSymbol.createSimple(spec), label))
    return QgsCategorizedSymbolRenderer("kind", categories)


def write_points(path: str, points, label: str) -> str:
    """A GeoJSON snapshot of clicked lon/lat points: the task reads a file, never a live layer."""
    features = [
        {
            "type": "Feature",
            "properties": {"name": f"{label} {i}"},
            "geometry": {"type": "Point", "coordinates": [p.x(), p.y()]},
        }
        for i, p in enumerate(points, start=1)
    ]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"type": "FeatureCollection", "features": features}, f)
    return path
