# Run inside the QGIS desktop (qgis --code): open embeddings:similarity's dialog as the toolbox
# does (no parameters) and embeddings:load's from the toolbar; report what they show, save a
# picture of each, quit.
import json
import os

import qgis.utils
from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication

import processing

REPORT = os.environ["EE_DESKTOP_REPORT"]
SETUP = json.loads(os.environ["EE_DIALOGS"])  # index, year, bbox, screenshots
report = {"stage": "start"}
timers = []


def finish():
    with open(REPORT, "w") as f:
        json.dump(report, f)
    QApplication.instance().exit(0)


def describe(dialog, picture):
    panel = dialog.mainWidget()
    wrappers = panel.wrappers
    values = {}
    for name in ("SOURCE", "YEAR", "EXTENT"):
        wrapper = wrappers.get(name)
        try:
            value = wrapper.parameterValue() if hasattr(wrapper, "parameterValue") else wrapper.value()
        except Exception as e:  # noqa: BLE001 - reported to the test
            value = repr(e)
        values[name] = None if value is None else str(value)
    source = wrappers["SOURCE"]
    dialog.resize(700, 800)
    dialog.grab().save(picture)
    return {
        "values": values,
        "source_wrapper": type(source).__name__,
        "source_has_browse": hasattr(getattr(source, "widget", None), "browse"),
        "order": [p.name() for p in dialog.algorithm().parameterDefinitions() if not p.isDestination()],
    }


def setup():
    plugin = qgis.utils.plugins["earth_embeddings"]
    dock = plugin.search_dock
    dock.source.setText(SETUP["index"])
    dock.year.setValue(SETUP["year"])
    dock.source.editingFinished.emit()  # the panel reads the collection's years in the background
    qgis.utils.iface.addVectorLayer(SETUP["context_layer"], "Collection tiles", "ogr")
    canvas = qgis.utils.iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    canvas.setExtent(QgsRectangle(*SETUP["bbox"]))
    report["canvas_extent"] = [canvas.extent().xMinimum(), canvas.extent().xMaximum()]
    try:
        toolbox = processing.createAlgorithmDialog("embeddings:similarity", {})
        toolbox.show()
        report["toolbox"] = describe(toolbox, SETUP["toolbox_picture"])
        toolbox.close()
    except Exception as e:  # noqa: BLE001
        report["error"] = repr(e)
        finish()
        return

    def inspect_modal():
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            visible = [w for w in QApplication.topLevelWidgets() if w.isVisible() and hasattr(w, "mainWidget")]
            dialog = visible[-1] if visible else None
        if dialog is None:
            report["error"] = "no dialog from the toolbar"
            return
        try:
            report["toolbar"] = describe(dialog, SETUP["toolbar_picture"])
        except Exception as e:  # noqa: BLE001
            report["error"] = repr(e)
        dialog.close()
        dialog.reject()

    QTimer.singleShot(1500, inspect_modal)
    plugin.open_algorithm("embeddings:load")  # modal: returns when inspect_modal closed it
    report["year_range"] = [dock.year.minimum(), dock.year.maximum()]
    dock.coverage_button.click()  # Show coverage: the collection's footprints for the year
    waited = []

    def poll():
        from qgis.core import QgsProject

        layers = QgsProject.instance().mapLayersByName("Coverage 2024")
        waited.append(1)
        if layers or len(waited) > 200:
            timer.stop()
            report["coverage"] = layers[0].featureCount() if layers else None
            report["coverage_status"] = dock.status.text()
            report["stage"] = "done"
            finish()

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(50)
    timers.append(timer)


QTimer.singleShot(1500, setup)
