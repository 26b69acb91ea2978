# Run inside the QGIS desktop (qgis --code): check the plugin, write a JSON report, quit.
import json
import os

import qgis.utils
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication

REPORT = os.environ["EE_DESKTOP_REPORT"]


def finish():
    from qgis.core import QgsApplication

    plugin = qgis.utils.plugins.get("earth_embeddings")
    report = {
        "loaded": plugin is not None,
        "active": "earth_embeddings" in qgis.utils.active_plugins,
        "provider": QgsApplication.processingRegistry().providerById("embeddings") is not None,
        "actions": [a.text() for a in getattr(plugin, "actions", [])],
        "dock_visible": bool(getattr(plugin, "search_dock", None) and plugin.search_dock.isVisible()),
        "bar": [[int(i.level()), i.title() + ": " + i.text()] for i in qgis.utils.iface.messageBar().items()],
    }
    with open(REPORT, "w") as f:
        json.dump(report, f)
    QApplication.instance().exit(0)


QTimer.singleShot(1500, finish)
