"""Messages to the user, and Qt slots that never open QGIS's Python error dialog."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from qgis.core import Qgis, QgsMessageLog

from ..processing.resources import LOG_TAG

F = TypeVar("F", bound=Callable[..., Any])


def show_warning(iface: Any, title: str, message: str, duration: int = 0) -> None:
    """One sentence in the log and, in the desktop (``iface`` not None), the message bar."""
    QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Warning)
    bar = iface.messageBar() if iface is not None else None
    if bar is not None:
        bar.pushMessage(title, message, level=Qgis.MessageLevel.Warning, duration=duration)


def guarded(what: str) -> Callable[[F], F]:
    """Decorate a slot: an unexpected exception is logged with its traceback and reported as
    one sentence ("<what> failed unexpectedly ...") through the object's ``show_error``."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as e:  # noqa: BLE001 - last line of defence for a Qt slot
                QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.MessageLevel.Critical)
                self.show_error(f"{what} failed unexpectedly ({e}); the details are in the log ({LOG_TAG}).")
                return None

        return wrapper  # type: ignore[return-value]

    return decorate
