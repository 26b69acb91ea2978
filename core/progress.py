"""Progress, cancellation and log messages, without QGIS.

Core functions take a ``Progress``; the Processing layer passes one that forwards to
``QgsProcessingFeedback``. The default one is silent and never cancels.
"""

from __future__ import annotations

from .errors import Cancelled


class Progress:
    """Silent progress reporter; subclass and override the four hooks."""

    def set_progress(self, percent: float) -> None:
        """Report overall progress in percent (0-100)."""

    def is_cancelled(self) -> bool:
        return False

    def info(self, message: str) -> None:
        """A line for the log."""

    def warning(self, message: str) -> None:
        """A line for the log that the user should notice."""

    def check_cancelled(self) -> None:
        """Raise ``Cancelled`` when the user asked to stop."""
        if self.is_cancelled():
            raise Cancelled()

    def sub(self, start: float, end: float) -> Progress:
        """A reporter whose 0-100 maps onto ``start``-``end`` of this one."""
        return SubProgress(self, start, end)


class SubProgress(Progress):
    """One step of a multi-step operation."""

    def __init__(self, parent: Progress, start: float, end: float):
        self.parent = parent
        self.start = start
        self.end = end

    def set_progress(self, percent: float) -> None:
        percent = min(max(percent, 0.0), 100.0)
        self.parent.set_progress(self.start + (self.end - self.start) * percent / 100.0)

    def is_cancelled(self) -> bool:
        return self.parent.is_cancelled()

    def info(self, message: str) -> None:
        self.parent.info(message)

    def warning(self, message: str) -> None:
        self.parent.warning(message)
