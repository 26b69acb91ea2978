# Run by QGIS (PYQGIS_STARTUP) before plugins load: record every log message to a file,
# so that tests see Python errors raised while the plugin loads.
import os

from qgis.core import QgsApplication

_LOG = os.environ["EE_DESKTOP_LOG"]


def _record(message, tag, level):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(f"{tag}\t{int(level)}\t{message!r}\n")


QgsApplication.messageLog().messageReceived.connect(_record)
