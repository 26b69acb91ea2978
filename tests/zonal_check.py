"""An independent computation of zonal statistics for the tests: rasterio to read, numpy only."""

import json

import numpy as np
import rasterio

from earth_embeddings.core.grid import transformer
from earth_embeddings.core.quant import NODATA


def centres_inside(px, py, rings):
    """Even-odd point-in-polygon of points against closed rings (holes included)."""
    result = np.zeros(px.shape, bool)
    for ring in rings:
        r = np.asarray(ring, float)[:, :2]
        for (ax, ay), (bx, by) in zip(r[:-1], r[1:]):
            crosses = (ay > py) != (by > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                x_at = ax + (py - ay) * (bx - ax) / (by - ay)
            result ^= crosses & (px < x_at)
    return result


def expected_stats(raster_path, geom):
    """(count, mean, std) of a raster's pixels whose centres fall in ``geom`` (numpy only).

    int8 rasters are de-quantized with the AEF formula (no-data -128 excluded); float rasters
    are taken as they are (NaN excluded). No centre inside: the pixel under the centroid.
    """
    with rasterio.open(raster_path) as ds:
        data = ds.read()
        t = ds.transform
    if data.dtype == np.int8:
        valid = (data != NODATA).all(axis=0)
        values = np.sign(data.astype(np.float64)) * (data.astype(np.float64) / 127.5) ** 2
    else:
        valid = np.isfinite(data).all(axis=0)
        values = data.astype(np.float64)
    rows, cols = np.mgrid[0 : data.shape[1], 0 : data.shape[2]]
    px = t.c + (cols + 0.5) * t.a
    py = t.f + (rows + 0.5) * t.e
    polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
    inside = np.zeros(px.shape, bool)
    for rings in polys:
        inside |= centres_inside(px, py, rings)
    if not inside.any():
        pts = np.asarray(polys[0][0], float)
        # The test's own centroid of a (convex, simple) polygon: the shoelace formula.
        x, y = pts[:, 0] - pts[0, 0], pts[:, 1] - pts[0, 1]
        cross = x[:-1] * y[1:] - x[1:] * y[:-1]
        a = cross.sum() / 2
        cx = pts[0, 0] + ((x[:-1] + x[1:]) * cross).sum() / (6 * a)
        cy = pts[0, 1] + ((y[:-1] + y[1:]) * cross).sum() / (6 * a)
        inside[int((cy - t.f) // t.e), int((cx - t.c) // t.a)] = True
    sel = inside & valid
    if not sel.any():
        return 0, None, None
    v = values[:, sel]
    return int(sel.sum()), v.mean(axis=1), v.std(axis=1)


def sample_zones(sample_dir):
    feats = json.loads((sample_dir / "zones.geojson").read_text())["features"]
    lons = [p[0] for f in feats for p in f["geometry"]["coordinates"][0]]
    lats = [p[1] for f in feats for p in f["geometry"]["coordinates"][0]]
    return feats, (min(lons), min(lats), max(lons), max(lats))


def to_crs(geom, crs):
    t = transformer("EPSG:4326", crs)

    def ring(r):
        x, y = t.transform([p[0] for p in r], [p[1] for p in r])
        return [[float(a), float(b)] for a, b in zip(x, y)]

    return {"type": "Polygon", "coordinates": [ring(r) for r in geom["coordinates"]]}
