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


def write_places(path, places, field="class"):
    """A GeoJSON file of lon/lat points or polygons: [(geometry or (lon, lat), class value)]."""
    import json

    features = []
    for geom, value in places:
        if not isinstance(geom, dict):
            geom = {"type": "Point", "coordinates": [float(geom[0]), float(geom[1])]}
        features.append({"type": "Feature", "properties": {field: value}, "geometry": geom})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return str(path)


def class_points(truth, year, per_class, seed=0, names=True):
    """``per_class`` interior points of every planted class: [((lon, lat), class name or index)]."""
    from earth_embeddings.scripts.sample import CLASSES, class_interior_points

    out = []
    for c, name in enumerate(CLASSES):
        for p in class_interior_points(truth, c, year, per_class, seed=seed + c):
            out.append((p, name if names else c))
    return out
