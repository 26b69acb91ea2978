"""GeoJSON geometry helpers: rings, areas, centroids, bounds, WKT, reprojection.

Vector inputs (exemplars, zones, training places) enter the core as GeoJSON geometry dicts
in their layer's CRS; the core reprojects them with pyproj (``transform_geometry``), the same
PROJ that QGIS uses. Geometry repair stays in the Processing layer (QGIS's makeValid), since
the core has no GEOS.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .arrays import Array
from .errors import EmbeddingsError
from .grid import same_crs, transformer

Geometry = dict[str, Any]  # a GeoJSON geometry
Polygons = list[list[Array]]  # polygons, each a list of rings as (n, 2) float64 arrays

POINT_TYPES = ("Point", "MultiPoint")
POLYGON_TYPES = ("Polygon", "MultiPolygon")


def as_geojson(geom: Any) -> Geometry:
    """A GeoJSON dict for a dict or an object with ``__geo_interface__``."""
    if hasattr(geom, "__geo_interface__"):
        return dict(geom.__geo_interface__)
    return dict(geom) if isinstance(geom, dict) else {}


def _map_coords(coords: Any, fn: Callable[[Sequence[float]], list[float]]) -> Any:
    if isinstance(coords[0], (int, float)):
        return fn(coords)
    return [_map_coords(c, fn) for c in coords]


def all_xy(coords: Any) -> list[Sequence[float]]:
    """Every (x, y) position of nested GeoJSON coordinates, flattened."""
    if isinstance(coords[0], (int, float)):
        return [coords]
    return [p for c in coords for p in all_xy(c)]


def transform_geometry(geom: Geometry, src: str, dst: str) -> Geometry:
    """A GeoJSON geometry with its coordinates transformed from ``src`` to ``dst`` (the same
    geometry when they are the same CRS: no round trip through PROJ)."""
    if same_crs(src, dst):
        return geom
    tr = transformer(src, dst)

    def move(xy: Sequence[float]) -> list[float]:
        x, y = tr.transform(xy[0], xy[1])
        return [float(x), float(y)]

    return {"type": geom["type"], "coordinates": _map_coords(geom["coordinates"], move)}


def polygons_of(geom: Geometry, what: str) -> Polygons:
    """The polygons of a GeoJSON Polygon/MultiPolygon as rings of (n, 2) float64 arrays.

    ``what`` names the feature in the error sentence (e.g. "Zone 3").
    """
    kind = geom.get("type")
    if kind == "Polygon":
        polys = [geom["coordinates"]]
    elif kind == "MultiPolygon":
        polys = geom["coordinates"]
    else:
        raise EmbeddingsError(f"{what} is a {kind or 'non-geometry'}, not a polygon; give polygons.")
    out = []
    for rings in polys:
        arrs = [np.asarray(r, dtype=np.float64)[:, :2] for r in rings if len(r)]
        if arrs and len(arrs[0]) >= 4:
            out.append(arrs)
    if not out:
        raise EmbeddingsError(f"{what} has no polygon ring with at least 4 points; repair its geometry.")
    return out


def ring_area_centroid(ring: Array, ox: float, oy: float) -> tuple[float, float, float]:
    """Signed area (shoelace) and centroid of a ring, computed relative to (ox, oy) for
    precision with large projected coordinates; the centroid is relative to (ox, oy) too."""
    x = ring[:, 0] - ox
    y = ring[:, 1] - oy
    if x[0] != x[-1] or y[0] != y[-1]:
        x = np.append(x, x[0])
        y = np.append(y, y[0])
    x, x1 = x[:-1], x[1:]
    y, y1 = y[:-1], y[1:]
    cross = x * y1 - x1 * y
    a = float(cross.sum() / 2.0)
    if a == 0:
        return 0.0, 0.0, 0.0
    return a, float(((x + x1) * cross).sum() / (6.0 * a)), float(((y + y1) * cross).sum() / (6.0 * a))


def polygons_area(polys: Polygons) -> float:
    """Planar area of polygons with holes (in the CRS's units squared)."""
    ox, oy = polys[0][0][0]
    total = 0.0
    for rings in polys:
        for k, ring in enumerate(rings):
            a = abs(ring_area_centroid(ring, ox, oy)[0])
            total += a if k == 0 else -a  # holes subtract
    return total


def polygon_area(geom: Geometry) -> float:
    """Planar area of a GeoJSON Polygon/MultiPolygon (in the CRS's units squared)."""
    return polygons_area(polygons_of(geom, "The geometry"))


def polygon_centroid(polys: Polygons) -> tuple[float, float]:
    """Area-weighted centroid of polygons with holes; the mean vertex when the area is zero."""
    ox, oy = polys[0][0][0]
    total = cx = cy = 0.0
    for rings in polys:
        for k, ring in enumerate(rings):
            a, rx, ry = ring_area_centroid(ring, ox, oy)
            w = abs(a) if k == 0 else -abs(a)  # holes subtract
            total += w
            cx += w * rx
            cy += w * ry
    if total <= 0 or not math.isfinite(total):
        pts = np.concatenate([rings[0] for rings in polys])
        return float(pts[:, 0].mean()), float(pts[:, 1].mean())
    return float(ox + cx / total), float(oy + cy / total)


def centroid(geom: Geometry) -> tuple[float, float]:
    """Area-weighted centroid of a (Multi)Polygon; mean of the points of a (Multi)Point."""
    if geom["type"] in POINT_TYPES:
        pts = np.asarray(all_xy(geom["coordinates"]), dtype=np.float64)
        return float(pts[:, 0].mean()), float(pts[:, 1].mean())
    return polygon_centroid(polygons_of(geom, "The geometry"))


def bounds(geom: Geometry) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of every position of a geometry."""
    pts = np.asarray(all_xy(geom["coordinates"]), dtype=np.float64)
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def polygons_bounds(polys: Polygons) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of the outer rings of polygons."""
    pts = np.concatenate([rings[0] for rings in polys])
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def geojson_to_wkt(geom: Geometry) -> str:
    """WKT of a GeoJSON Point, Polygon or MultiPolygon (full float precision)."""

    def ring(r: Sequence[Sequence[float]]) -> str:
        return "(" + ", ".join(f"{x!r} {y!r}" for x, y in r) + ")"

    if geom["type"] == "Polygon":
        return "POLYGON (" + ", ".join(ring(r) for r in geom["coordinates"]) + ")"
    if geom["type"] == "MultiPolygon":
        return (
            "MULTIPOLYGON (" + ", ".join("(" + ", ".join(ring(r) for r in p) + ")" for p in geom["coordinates"]) + ")"
        )
    if geom["type"] == "Point":
        x, y = geom["coordinates"][:2]
        return f"POINT ({x!r} {y!r})"
    raise ValueError(f"unsupported geometry {geom['type']}")
