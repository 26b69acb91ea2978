"""Qt slots that never open QGIS's Python error dialog."""

from __future__ import annotations

import functools
import traceback

from qgis.core import Qgis, QgsMessageLog

LOG_TAG = "Earth Embeddings"


def guarded(what: str):
    """Decorate a slot: an unexpected exception is logged with its traceback and reported as
    one sentence ("<what> failed unexpectedly ...") through the object's ``show_error``."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except Exception as e:  # noqa: BLE001 - last line of defence for a Qt slot
                QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.MessageLevel.Critical)
                self.show_error(f"{what} failed unexpectedly ({e}); the details are in the log ({LOG_TAG}).")
                return None

        return wrapper

    return decorate
