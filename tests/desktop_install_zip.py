# Run inside the QGIS desktop: install the plugin zip the way Plugins > Install from ZIP
# does, then report whether it loaded and registered its provider.
import json
import os

import pyplugin_installer
import qgis.utils
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication

REPORT = os.environ["EE_DESKTOP_REPORT"]


def install():
    pyplugin_installer.instance().installFromZipFile(os.environ["EE_PLUGIN_ZIP"])
    QTimer.singleShot(500, finish)


def finish():
    # qgis.utils.home_plugin_path in 3.22 is HOME_PLUGIN_PATH in 3.40: the profile's folder.
    plugin_dir = os.path.join(QgsApplication.qgisSettingsDirPath(), "python", "plugins", "earth_embeddings")
    report = {
        "installed_dir": os.path.isdir(plugin_dir) and not os.path.islink(plugin_dir),
        "loaded": "earth_embeddings" in qgis.utils.plugins,
        "active": "earth_embeddings" in qgis.utils.active_plugins,
        "provider": QgsApplication.processingRegistry().providerById("embeddings") is not None,
        "algorithms": sorted(
            a.id()
            for a in QgsApplication.processingRegistry().algorithms()
            if a.provider() and a.provider().id() == "embeddings"
        ),
    }
    with open(REPORT, "w") as f:
        json.dump(report, f)
    QApplication.instance().exit(0)


QTimer.singleShot(1000, install)
