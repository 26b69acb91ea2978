"""Small helpers the algorithm tests share: parameter values, a recording feedback."""

from qgis.core import QgsProcessingFeedback


def extent_param(bounds, crs="EPSG:4326"):
    """(west, south, east, north) as a Processing extent: "xmin,xmax,ymin,ymax [CRS]"."""
    w, s, e, n = bounds
    return f"{w},{e},{s},{n} [{crs}]"


class Recorder(QgsProcessingFeedback):
    """A feedback that keeps the log lines and warnings an algorithm pushes."""

    def __init__(self):
        super().__init__()
        self.lines = []
        self.warnings = []

    def pushInfo(self, info):  # noqa: N802
        self.lines.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning):  # noqa: N802
        self.warnings.append(warning)
        super().pushWarning(warning)
