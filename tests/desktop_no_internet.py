# Run inside the QGIS desktop (qgis --code): with an empty Collection (the public product, whose
# address the test points at a closed local port), click the map; report what the panel and the
# message bar say once the search has failed, then quit.
import json
import os
import time

import qgis.utils
from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication

REPORT = os.environ["EE_DESKTOP_REPORT"]
report = {"stage": "start"}
timers = []


def finish():
    with open(REPORT, "w") as f:
        json.dump(report, f)
    QApplication.instance().exit(0)


def click():
    plugin = qgis.utils.plugins["earth_embeddings"]
    dock = plugin.search_dock
    dock.source.setText("")
    dock.source.editingFinished.emit()
    canvas = qgis.utils.iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    canvas.setExtent(QgsRectangle(-90.05, 44.43, -89.95, 44.47))
    plugin.search_action.trigger()
    finished = []
    plugin.search.search_finished.connect(lambda serial, shown: finished.append([serial, shown]))
    QTest.mouseClick(
        canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, canvas.rect().center()
    )
    started = time.monotonic()
    deadline = started + 120

    def poll():
        if finished or time.monotonic() > deadline:
            timer.stop()
            report["finished"] = finished
            report["seconds"] = time.monotonic() - started  # reported, not asserted
            QTimer.singleShot(500, look)  # the queued warning lands after QGIS's own reports

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(50)
    timers.append(timer)


def look():
    plugin = qgis.utils.plugins["earth_embeddings"]
    bar = qgis.utils.iface.messageBar()
    current = bar.currentItem()
    report["status"] = plugin.search_dock.status.text()
    report["front"] = current.text() if current is not None else None
    report["front_title"] = current.title() if current is not None else None
    report["bar"] = [item.title() + ": " + item.text() for item in bar.items()]
    report["stage"] = "done"
    finish()


QTimer.singleShot(1500, click)
