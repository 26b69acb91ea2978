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
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsDataProvider,
    QgsFeature,
    QgsGeometry,
    QgsMarkerSymbol,
    QgsMessageLog,
    QgsPointXY,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QObject, QTimer, pyqtSignal

from ..processing.resources import LOG_TAG
from ..processing.styles import apply_qml, label_ramp, similarity_labels, stretch_pseudocolor
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
SEPARATION_M = 100.0  # between top places, and between them and the clicked places
MIN_AREA_M2 = 500.0  # similar areas smaller than this are speckle (as for change areas)


class SearchFeedback(QgsProcessingFeedback):
    """Feedback that remembers the errors and warnings the algorithm reported (they are sentences)."""

    def __init__(self):
        super().__init__()
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.plan = ""  # the reader's plan: pixels, resolution, bytes to read, overview used

    def reportError(self, error, fatalError=False):  # noqa: N802, N803 - QGIS API
        self.errors.append(str(error))
        super().reportError(error, fatalError)

    def pushInfo(self, info):  # noqa: N802 - QGIS API
        if str(info).startswith("Planned:"):
            self.plan = str(info)
        super().pushInfo(info)

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
    title: str = ""  # the Similarity layer's name for this run


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
        self.last_error: str | None = None  # the warning of the last failed search, until a success
        self.root = os.path.join(QgsProcessingUtils.tempFolder(), "earth_embeddings_search")
        os.makedirs(self.root, exist_ok=True)
        QgsProject.instance().fileNameChanged.connect(self.relocate)

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
        resolution_m = options.resolution_m or map_resolution_m(canvas)
        parameters = {
            "SOURCE": options.source,
            "YEAR": options.year,
            "EXTENT": extent,
            "RESOLUTION": resolution_m,
            "ALIGN_TO_TILES": True,
            "EXEMPLARS": write_points(os.path.join(folder, "exemplars.geojson"), self.exemplars, "clicked place"),
            "TOP_K": options.top_k,
            # Places like the clicked ones, elsewhere: not the clicked pixels and their neighbours.
            "EXCLUDE_RADIUS_M": SEPARATION_M,
            "MIN_SEPARATION_M": SEPARATION_M,
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
            parameters["MIN_AREA_M2"] = MIN_AREA_M2
            parameters["OUTPUT_AREAS"] = os.path.join(folder, "areas.gpkg")
        run = SearchRun(self.serial, folder, parameters, options.top_k, options.threshold)
        run.title = (
            f"{LAYER_NAMES[SIMILARITY]} {options.year} ({places_text(len(self.exemplars), len(self.negatives))})"
        )
        run.context = QgsProcessingContext()
        # Not the project: the task reads its inputs from files, and a project handed to a worker
        # thread is searched there for layers while the GUI thread changes it.
        run.context.setTransformContext(QgsProject.instance().transformContext())
        run.feedback = SearchFeedback()
        run.task = QgsProcessingAlgRunnerTask(algorithm, parameters, run.context, run.feedback)
        run.task.setDescription(f"Earth Embeddings: similarity search {run.serial}")
        run.task.executed.connect(functools.partial(self.on_executed, run.serial))
        self.runs[run.serial] = run
        QgsApplication.taskManager().addTask(run.task)
        what = places_text(len(self.exemplars), len(self.negatives))
        self.status.emit(f"Searching the map view at {resolution_m:g} m for places like {what} ({options.year})…")
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
                message = (
                    click_words(run.feedback.errors[-1]) if run.feedback.errors else "The similarity search failed."
                )
                # The map must not show the previous result as if it were this place's.
                self.remove_results()
                self.show_error(message, queued=True)
                self.status.emit(message)
            shutil.rmtree(run.folder, ignore_errors=True)
            self.search_finished.emit(serial, False)
            return
        self.show_results(run)
        shutil.rmtree(run.folder, ignore_errors=True)  # the outputs moved to the results folder
        if run.feedback.plan:
            QgsMessageLog.logMessage(f"Click-to-search: {run.feedback.plan}", LOG_TAG, Qgis.MessageLevel.Info)
        self.shown_serial = serial
        self.withdraw_error()
        pixels = int(run.results.get("VALID_PIXELS") or 0)
        line = f"Similarity of {pixels:,} pixels"
        if run.results.get("RESOLUTION_USED"):
            line += f" at {float(run.results['RESOLUTION_USED']):g} m"
        top = self.layer(TOP_PLACES)
        scores = [f["score"] for f in top.getFeatures()] if top is not None else []
        if scores:
            line += f"; best place elsewhere {max(scores):.3f} (more than {SEPARATION_M:g} m from the clicks)"
        self.status.emit(line + ".")
        self.search_finished.emit(serial, True)

    # Where results live -------------------------------------------------------------
    def results_folder(self) -> str:
        """``<project name>_embeddings/`` beside a saved project, else the session's temp folder."""
        path = QgsProject.instance().fileName()
        if not path or path.startswith("geopackage:"):
            return self.root
        stem = os.path.splitext(os.path.basename(path))[0]
        return os.path.join(os.path.dirname(os.path.abspath(path)), f"{stem}_embeddings")

    def result_path(self, role: str, extension: str, folder: str | None = None) -> str:
        """A new file name for ``role`` in the results folder: every update writes a new file,
        so a layer is never pointed at a file that is being overwritten."""
        folder = folder or self.results_folder()
        os.makedirs(folder, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        n = 0
        while True:
            path = os.path.join(folder, f"{role}-{stamp}-{n}{extension}")
            if not os.path.exists(path):
                return path
            n += 1

    def keep(self, path: str, role: str) -> str:
        """Move a run's output file into the results folder under a new name."""
        target = self.result_path(role, os.path.splitext(path)[1])
        shutil.move(path, target)
        return target

    def layer_file(self, layer) -> str:
        return layer.source().split("|")[0]

    def forget_file(self, path: str | None) -> None:
        """Delete one of our result files (and GDAL's side files), never anything else."""
        if not path or not os.path.basename(path).startswith(tuple(LAYER_NAMES)):
            return
        folder = os.path.dirname(os.path.abspath(path))
        if folder != os.path.abspath(self.results_folder()) and not folder.startswith(os.path.abspath(self.root)):
            return  # another project's results: that project still needs them
        for side in (path, path + ".aux.xml", path + "-wal", path + "-shm"):
            try:
                os.remove(side)
            except OSError:
                pass

    def point_layer_at(self, layer, path: str, provider: str) -> None:
        """Show another file in ``layer``, keeping its id, style and place in the legend."""
        old = self.layer_file(layer)
        role = layer.customProperty(ROLE_PROPERTY)
        layer.setDataSource(path, layer.name(), provider, QgsDataProvider.ProviderOptions())
        layer.setCustomProperty(ROLE_PROPERTY, role)
        if os.path.abspath(old) != os.path.abspath(path):
            self.forget_file(old)

    @guarded("Saving the search results")
    def relocate(self, *_args) -> None:
        """The project got a (new) file: copy the results into its folder and point the layers
        there, so that the saved project finds them (connected to fileNameChanged, which QGIS
        emits before it writes the project)."""
        if not QgsProject.instance().fileName():
            return  # the project was cleared: nothing to keep
        folder = os.path.abspath(self.results_folder())
        for role in LAYER_NAMES:
            layer = self.layer(role)
            if layer is None:
                continue
            old = self.layer_file(layer)
            if not os.path.isfile(old) or os.path.dirname(os.path.abspath(old)) == folder:
                continue
            target = self.result_path(role, os.path.splitext(old)[1], folder)
            shutil.copy2(old, target)
            provider = "gdal" if role == SIMILARITY else "ogr"
            self.point_layer_at(layer, target, provider)
            if role == SIMILARITY:
                self.restyle_similarity(layer)

    @guarded("Saving the search results")
    def save_results(self, folder: str) -> list[str]:
        """Copy the current results into ``folder`` with plain names; the paths written."""
        os.makedirs(folder, exist_ok=True)
        written = []
        for role in LAYER_NAMES:
            layer = self.layer(role)
            if layer is None or not os.path.isfile(self.layer_file(layer)):
                continue
            path = self.layer_file(layer)
            target = os.path.join(folder, role + os.path.splitext(path)[1])
            shutil.copy2(path, target)
            written.append(target)
        if written:
            self.status.emit(f"Saved {len(written)} result file(s) in {folder}.")
        else:
            self.status.emit("There are no results to save yet; click a place first.")
        return written

    # Layers -------------------------------------------------------------------------
    def show_results(self, run: SearchRun) -> None:
        results = run.results
        layer = self.update_similarity_layer(
            self.keep(results["OUTPUT"], SIMILARITY), results.get("SCORE_LOW"), results.get("SCORE_MAX")
        )
        if run.title:
            layer.setName(run.title)
        top = results.get("OUTPUT_TOP_K") if run.top_k > 0 else None
        self.update_vector_layer(TOP_PLACES, self.keep(top, TOP_PLACES) if top else None, "similarity_top_k.qml")
        areas = results.get("OUTPUT_AREAS") if run.threshold is not None else None
        self.update_vector_layer(AREAS, self.keep(areas, AREAS) if areas else None, "similarity_areas.qml")

    def remove_results(self) -> None:
        """Take the heatmap, top places and areas off the map (their files too)."""
        for role in (SIMILARITY, TOP_PLACES, AREAS):
            self.remove_layer(role)

    def remove_layer(self, role: str) -> None:
        layer = self.layer(role)
        if layer is not None:
            path = self.layer_file(layer)
            QgsProject.instance().removeMapLayer(layer.id())
            self.forget_file(path)

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
        node = group.insertLayer(index, layer)
        # The layer tree view shows a new group collapsed whatever the node says, and follows
        # only changes of the flag: toggle it once the view has taken the new rows in.
        QTimer.singleShot(0, functools.partial(expand_nodes, [group, node]))
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
            self.point_layer_at(layer, path, "gdal")
            style_similarity(layer, low, high)
            layer.setOpacity(opacity)
            layer.setCustomProperty(ROLE_PROPERTY, SIMILARITY)  # loading a QML replaces custom properties
        layer.triggerRepaint()
        return layer

    def restyle_similarity(self, layer) -> None:
        """Keep the stretch and opacity of a raster layer that was pointed at a copy."""
        renderer = layer.renderer()
        low = getattr(renderer, "classificationMin", lambda: None)()
        high = getattr(renderer, "classificationMax", lambda: None)()
        opacity = layer.opacity()
        style_similarity(layer, low, high)
        layer.setOpacity(opacity)
        layer.setCustomProperty(ROLE_PROPERTY, SIMILARITY)
        layer.triggerRepaint()

    def set_opacity(self, opacity: float) -> None:
        layer = self.layer(SIMILARITY)
        if layer is not None:
            layer.setOpacity(opacity)
            layer.triggerRepaint()

    def update_vector_layer(self, role: str, path: str | None, qml: str):
        """Show the GeoPackage ``path`` in our layer for ``role`` (None: take the layer away)."""
        if path is None:
            self.remove_layer(role)
            return None
        layer = self.layer(role)
        if layer is None:
            layer = QgsVectorLayer(path, LAYER_NAMES[role], "ogr")
            if not layer.isValid():
                raise RuntimeError(f"the output {path} could not be opened")
            apply_qml(layer, qml)
            self.add_layer(layer, role)
        else:
            self.point_layer_at(layer, path, "ogr")
        layer.triggerRepaint()
        return layer

    def update_exemplar_layer(self) -> QgsVectorLayer | None:
        layer = self.layer(EXEMPLARS)
        if layer is None and not (self.exemplars or self.negatives):
            return None
        points = QgsVectorLayer(f"Point?crs={WGS84}&field=kind:string(10)&field=number:integer", "exemplars", "memory")
        features = []
        for kind, places in (("exemplar", self.exemplars), ("negative", self.negatives)):
            for i, point in enumerate(places, start=1):
                feature = QgsFeature(points.fields())
                feature.setGeometry(QgsGeometry.fromPointXY(point))
                feature["kind"] = kind
                feature["number"] = i
                features.append(feature)
        points.dataProvider().addFeatures(features)
        path = write_geopackage(points, self.result_path(EXEMPLARS, ".gpkg"))
        if layer is None:
            layer = QgsVectorLayer(path, LAYER_NAMES[EXEMPLARS], "ogr")
            layer.setRenderer(exemplar_renderer())
            self.add_layer(layer, EXEMPLARS)
        else:
            self.point_layer_at(layer, path, "ogr")
        layer.triggerRepaint()
        return layer

    # Messages and shutdown ----------------------------------------------------------
    def show_error(self, message: str, queued: bool = False) -> None:
        """The warning for a failed search. ``queued``: pushed from a queued call, so that it
        lands in front of what QGIS itself reports for the failed task."""
        self.withdraw_error()
        self.last_error = message
        if queued:
            QTimer.singleShot(0, functools.partial(show_warning, self.iface, TITLE, message, 15))
        else:
            show_warning(self.iface, TITLE, message, 15)

    def withdraw_error(self) -> None:
        """Take the last failure's warning off the message bar (a later search succeeded)."""
        if self.last_error is None:
            return
        bar = self.iface.messageBar() if self.iface is not None else None
        for item in list(bar.items()) if bar is not None else []:
            if item.text() == self.last_error:
                bar.popWidget(item)
        self.last_error = None

    def shutdown(self) -> None:
        """Cancel running searches and drop every reference (plugin unload)."""
        try:
            QgsProject.instance().fileNameChanged.disconnect(self.relocate)
        except (TypeError, RuntimeError):
            pass
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
        label_ramp(layer, *similarity_labels(float(low), float(high)))


def exemplar_renderer() -> QgsCategorizedSymbolRenderer:
    """Exemplars as green stars, negatives as red crosses (built here: no style database needed)."""
    categories = []
    for value, label, spec in (
        ("exemplar", "Exemplar", {"name": "star", "color": "50,220,70", "size": "5", "outline_color": "0,0,0"}),
        # White-edged: visible on the dark end of the magma ramp, where negatives score.
        (
            "negative",
            "Negative",
            {
                "name": "cross_fill",
                "color": "230,40,40",
                "size": "5",
                "outline_color": "255,255,255",
                "outline_width": "0.5",
            },
        ),
    ):
        categories.append(QgsRendererCategory(value, QgsMarkerSymbol.createSimple(spec), label))
    return QgsCategorizedSymbolRenderer("kind", categories)


# The core names an exemplar that has no embeddings by its layer feature and the collection's
# path; for a click, the place and the year are what the user needs.
_NO_EMBEDDINGS = re.compile(
    r"^The (?P<kind>exemplar|negative) feature \d+ \('(?:clicked|negative) place (?P<n>\d+)'\) "
    r"(?P<what>lies outside the coverage|falls on no-data) (?:of|in) .* \((?P<year>\d{4})\)[;.]"
)


def click_words(message: str) -> str:
    """A core message about a clicked place, in the words of a click."""
    match = _NO_EMBEDDINGS.match(message)
    if match is None:
        return message
    place = "clicked place" if match["kind"] == "exemplar" else "negative place"
    if match["n"] != "1":
        place += f" {match['n']}"
    if match["what"].startswith("lies outside"):
        return (
            f"No embeddings at the {place} (outside the collection, {match['year']}); click inside the "
            "collection's footprints (Show coverage adds them to the map)."
        )
    return (
        f"No embeddings at the {place} (the collection has no data there in {match['year']}); click "
        "next to the hole."
    )


def expand_nodes(nodes) -> None:
    """Show the legends of layer tree nodes (see add_layer)."""
    for node in nodes:
        try:
            if node is not None:
                node.setExpanded(False)
                node.setExpanded(True)
        except RuntimeError:  # removed meanwhile
            pass


def places_text(positives: int, negatives: int) -> str:
    """ "2 places, 1 negative" """
    text = f"{positives} place{'s' if positives != 1 else ''}"
    if negatives:
        text += f", {negatives} negative{'s' if negatives != 1 else ''}"
    return text


def map_resolution_m(canvas) -> float:
    """The resolution of a search that follows the map: the ground size (metres, on the
    ellipsoid) of a screen pixel at the canvas centre, whatever the canvas CRS, rounded down
    to 10 x 2^k m (see core.grid.pyramid_resolution)."""
    from qgis.core import QgsDistanceArea

    from ..core.grid import pyramid_resolution

    settings = canvas.mapSettings()
    centre = canvas.center()
    step = canvas.mapUnitsPerPixel()
    crs = settings.destinationCrs()
    distance = QgsDistanceArea()
    distance.setSourceCrs(crs, QgsProject.instance().transformContext())
    distance.setEllipsoid("EPSG:7030")  # WGS 84
    across = distance.measureLine(centre, QgsPointXY(centre.x() + step, centre.y()))
    down = distance.measureLine(centre, QgsPointXY(centre.x(), centre.y() + step))
    ground_m = min(across, down) if across > 0 and down > 0 else max(across, down)
    return pyramid_resolution(ground_m)


def write_geopackage(layer: QgsVectorLayer, path: str) -> str:
    """Write a (memory) layer to a new GeoPackage file; its path."""
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = os.path.splitext(os.path.basename(path))[0]
    error = QgsVectorFileWriter.writeAsVectorFormatV3(layer, path, QgsProject.instance().transformContext(), options)[0]
    if error != QgsVectorFileWriter.WriterError.NoError:
        raise RuntimeError(f"the exemplars could not be written to {path}")
    return path


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
