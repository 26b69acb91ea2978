"""Errors the user should read.

``EmbeddingsError`` carries one sentence for a GIS user: what is wrong and what to do.
The Processing layer turns it into a ``QgsProcessingException`` without a traceback.
"""


class EmbeddingsError(Exception):
    """A problem with the user's input or environment, explained in plain words."""


class Cancelled(EmbeddingsError):
    """The user cancelled; partial outputs have been removed."""

    def __init__(self, message: str = "Cancelled by the user; no output was written."):
        super().__init__(message)


class NoCoverage(EmbeddingsError):
    """No tile of the source overlaps the requested grid (callers reading many small
    grids, such as points or zones, treat it as "no data here" rather than failing)."""
