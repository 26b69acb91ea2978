# Run inside the QGIS desktop (qgis --code): point the canvas at the sample collection, activate
# the click-to-search tool, click a place with a real mouse event on the canvas (the tool's own
# event handling), wait for the background search, sample the Similarity layer, save the canvas
# as a PNG, write a JSON report and quit.
import json
import os
import time

import qgis.utils
from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QPoint, Qt, QTimer
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication, QDockWidget

REPORT = os.environ["EE_DESKTOP_REPORT"]
SETUP = json.loads(os.environ["EE_CLICK_SEARCH"])  # index, year, bbox, click, probes, screenshot
WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
report = {"stage": "start", "ticks_while_searching": 0}
timers = []  # keep QTimers referenced


def write_report():
    with open(REPORT, "w") as f:
        json.dump(report, f)


def finish():
    write_report()
    QApplication.instance().exit(0)


def fail(stage):
    report["failed_at"] = stage
    finish()


def view(canvas):
    # Centre and scale: QGIS's own panels may resize the canvas (and so the extent) meanwhile.
    c = canvas.center()
    return [c.x(), c.y(), canvas.mapUnitsPerPixel()]


def every(ms, func):
    timer = QTimer()
    timer.timeout.connect(func)
    timer.start(ms)
    timers.append(timer)
    return timer


def setup():
    try:
        plugin = qgis.utils.plugins["earth_embeddings"]
        dock = plugin.search_dock
        dock.source.setText(SETUP["index"])
        dock.source.editingFinished.emit()
        dock.year.setValue(SETUP["year"])
        dock.top_k.setValue(5)
        # The analyst looks at a map: with no layer at all QGIS shows its welcome page, not the canvas.
        tiles = qgis.utils.iface.addVectorLayer(SETUP["context_layer"], "Collection tiles", "ogr")
        report["context_layer"] = tiles is not None and tiles.isValid()
        canvas = qgis.utils.iface.mapCanvas()
        canvas.setDestinationCrs(WGS84)
        plugin.search_action.trigger()
        report["tool_active"] = canvas.mapTool() is plugin.search_tool
        report["dock_visible"] = dock.isVisible()
        report["stage"] = "setup"
    except Exception as e:  # noqa: BLE001 - reported to the test
        report["error"] = repr(e)
        fail("setup")
        return
    # The main window is laid out (and the canvas resized) a while after start-up: wait until
    # the canvas keeps its size, then show the collection and click.
    sizes = []
    deadline = time.monotonic() + 15

    def settle():
        sizes.append((canvas.width(), canvas.height()))
        if len(sizes) >= 5 and len(set(sizes[-5:])) == 1 and min(sizes[-1]) > 200:
            waiter.stop()
            frame()
        elif time.monotonic() > deadline:
            waiter.stop()
            report["sizes"] = sizes[-5:]
            fail("waiting for the window layout")

    waiter = every(200, settle)


def frame():
    canvas = qgis.utils.iface.mapCanvas()

    def rendered():
        canvas.mapCanvasRefreshed.disconnect(rendered)
        QTimer.singleShot(200, click)

    canvas.mapCanvasRefreshed.connect(rendered)
    canvas.setExtent(QgsRectangle(*SETUP["bbox"]))
    canvas.refresh()


def click():
    plugin = qgis.utils.plugins["earth_embeddings"]
    canvas = qgis.utils.iface.mapCanvas()
    lon, lat = SETUP["click"]
    pixel = canvas.getCoordinateTransform().transform(QgsPointXY(lon, lat))
    pos = QPoint(round(pixel.x()), round(pixel.y()))
    report["click_pixel"] = [pos.x(), pos.y()]
    report["view_before"] = view(canvas)
    finished = []
    plugin.search.search_finished.connect(lambda serial, shown: finished.append([serial, shown]))
    QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
    report["busy_after_click"] = plugin.search.busy()
    report["exemplars"] = [[p.x(), p.y()] for p in plugin.search.exemplars]
    report["stage"] = "clicked"
    deadline = time.monotonic() + 180

    def poll():
        if plugin.search.busy():
            report["ticks_while_searching"] += 1  # the GUI thread keeps running while the task works
        if finished:
            poller.stop()
            report["finished"] = finished
            inspect()
        elif time.monotonic() > deadline:
            poller.stop()
            fail("waiting for the search")

    poller = every(50, poll)


def inspect():
    plugin = qgis.utils.plugins["earth_embeddings"]
    layer = plugin.search.layer("similarity")
    report["layer"] = None
    if layer is not None:
        to_layer = QgsCoordinateTransform(WGS84, layer.crs(), QgsProject.instance())
        probes = {}
        for name, points in SETUP["probes"].items():
            values = []
            for lon, lat in points:
                value, ok = layer.dataProvider().sample(to_layer.transform(QgsPointXY(lon, lat)), 1)
                values.append(value if ok else None)
            probes[name] = values
        group = QgsProject.instance().layerTreeRoot().findGroup("Earth Embeddings search")
        report["layer"] = {
            "valid": layer.isValid(),
            "name": layer.name(),
            "renderer": layer.renderer().type(),
            "in_group": group is not None and group.findLayer(layer.id()) is not None,
            "group_layers": [n.name() for n in group.findLayers()] if group is not None else [],
            "expanded": [group.isExpanded()] + [n.isExpanded() for n in group.findLayers()] if group else [],
            "probes": probes,
        }
        top = plugin.search.layer("top_places")
        report["top_places"] = top.featureCount() if top is not None else 0
    canvas = qgis.utils.iface.mapCanvas()
    report["view_after"] = view(canvas)
    report["canvas_crs"] = canvas.mapSettings().destinationCrs().authid()
    report["stage"] = "rendering"

    def save():
        canvas.mapCanvasRefreshed.disconnect(save)
        canvas.saveAsImage(SETUP["screenshot"])
        report["screenshot"] = SETUP["screenshot"]
        # The whole window as the analyst sees it: map, panel, legend (a wider legend panel, and
        # without the first start's one-time notice about the optional faiss package).
        window = qgis.utils.iface.mainWindow()
        layers = window.findChild(QDockWidget, "Layers")
        if layers is not None:
            window.resizeDocks([layers], [330], Qt.Orientation.Horizontal)
        qgis.utils.iface.messageBar().clearWidgets()
        QApplication.processEvents()
        window.grab().save(SETUP["window_screenshot"])
        report["stage"] = "saved screenshot"
        QTimer.singleShot(0, reopen)

    canvas.mapCanvasRefreshed.connect(save)
    canvas.refresh()


def reopen():
    """Save the project as the desktop's Save As does, clear it, read it back: the results come back."""
    plugin = qgis.utils.plugins["earth_embeddings"]
    project = QgsProject.instance()
    project.setFileName(SETUP["project"])
    report["project_written"] = project.write()
    report["sources_saved"] = {
        role: plugin.search.layer(role).source() for role in ("similarity", "exemplars", "top_places")
    }
    project.clear()
    report["project_read"] = project.read(SETUP["project"])
    reopened = {}
    for role in ("similarity", "exemplars", "top_places"):
        layer = plugin.search.layer(role)
        reopened[role] = (
            None
            if layer is None
            else {
                "valid": layer.isValid(),
                "source": layer.source(),
                "features": layer.featureCount() if hasattr(layer, "featureCount") else None,
            }
        )
    report["reopened"] = reopened
    report["stage"] = "done"
    finish()


QTimer.singleShot(1500, setup)
