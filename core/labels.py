"""Labelled places (points or polygons with a class) and the embeddings of their pixels.

Places enter in their layer's CRS as GeoJSON with the class field's value. They are read on
the lattice of the output grid (its CRS, resolution and pixel edges), wherever they lie, so
the pixels trained on are pixels the map itself would hold:

- a point takes the pixel under it (each point of a MultiPoint its own);
- a polygon takes the pixels whose centres lie inside (GDAL's pixel-centre rule), a random
  ``cap`` of them at most (seeded), so that one large polygon does not swamp the small ones;
  a polygon that holds no pixel centre takes the pixel under its centroid.

Only the blocks that hold a place are read (one reader over the places' bounding box, on the
grid's lattice). Class values: whole numbers are codes as they are (reals with no fraction,
as GeoJSON and shapefiles store integers, count as whole numbers); text gets codes 1..N in
sorted order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .arrays import Array
from .block import Block
from .errors import EmbeddingsError, NoCoverage
from .geometry import POINT_TYPES, POLYGON_TYPES, Geometry, all_xy, bounds, centroid, transform_geometry
from .grid import Grid, Window, snap_grid
from .pipeline import reading, stream, windows_for
from .progress import Progress
from .quant import LUT
from .sampling import DEFAULT_CAP_PER_FEATURE, cap_per_feature
from .source import EmbeddingSource

ClassValue = int | float | str | None


@dataclass(frozen=True)
class LabelledPlace:
    """A point or polygon (GeoJSON in ``crs``) with its class field's value and a label that
    names it in messages ("feature 3")."""

    geometry: Geometry
    crs: str
    value: ClassValue
    label: str


@dataclass
class ClassCodes:
    """Integer codes of class values and the names shown in the legend (sorted by code)."""

    codes: Array  # (n,) int64 per place
    names: dict[int, str]
    text: bool

    def name(self, code: int) -> str:
        return self.names.get(int(code), str(int(code)))


def _whole(value: float) -> bool:
    return math.isfinite(value) and float(value).is_integer()


def class_codes(values: Sequence[ClassValue], field_name: str = "class", what: str = "training places") -> ClassCodes:
    """Codes of the class values of places (None = no class: refused here, drop them first).

    Whole numbers (also stored as reals) keep their value; any text makes every value text,
    coded 1..N in sorted order. Codes must fit a 16-bit raster (-32767..32767).
    """
    if not values:
        raise EmbeddingsError(f"The field '{field_name}' has no values in the {what}; fill in a class for each.")
    if any(isinstance(v, str) for v in values):
        text = [str(v).strip() for v in values]
        names = sorted(set(text))
        index = {n: i + 1 for i, n in enumerate(names)}
        return ClassCodes(np.array([index[t] for t in text], dtype=np.int64), dict(enumerate(names, start=1)), True)
    codes = []
    for v in values:
        if v is None or isinstance(v, bool) or not _whole(float(v)):
            raise EmbeddingsError(
                f"The field '{field_name}' holds {v!r}, which is not a whole number; class values must be "
                "whole numbers or text."
            )
        codes.append(int(v))
    arr = np.asarray(codes, dtype=np.int64)
    if arr.min() < -32767 or arr.max() > 32767:
        raise EmbeddingsError(
            f"The field '{field_name}' holds class {int(arr[np.argmax(np.abs(arr))])}, outside -32767..32767; "
            "recode the classes to smaller numbers."
        )
    return ClassCodes(arr, {int(c): str(int(c)) for c in np.unique(arr)}, False)


@dataclass
class LabelPixels:
    """The valid pixels of places: vectors (n, bands) float32, the place index of each pixel,
    and per place how many pixels it touched and how many had data (before the cap)."""

    vectors: Array
    place: Array
    touched: Array
    valid: Array
    bands: int
    capped: int = 0  # places whose pixels were capped


@dataclass
class _Shape:
    """A place on the label grid: its pixel window (r0, r1, c0, c1) and what to burn."""

    kind: str  # "points" or "polygon"
    window: tuple[int, int, int, int]
    geometry: Geometry  # in the grid's CRS
    points: Array  # (m, 2) row, col for points; the centroid pixel for a polygon


def _local(places: Sequence[LabelledPlace], crs: str, what: str) -> list[Geometry]:
    out = []
    for p in places:
        geom = p.geometry
        kind = geom.get("type") if isinstance(geom, dict) else None
        if kind not in POINT_TYPES + POLYGON_TYPES:
            raise EmbeddingsError(f"The {what} {p.label} is a {kind or 'missing'} geometry; use points or polygons.")
        if not geom.get("coordinates"):
            raise EmbeddingsError(f"The {what} {p.label} has an empty geometry; remove it or draw it again.")
        local = transform_geometry(geom, p.crs, crs)
        if not np.isfinite(np.asarray(all_xy(local["coordinates"]), dtype=np.float64)).all():
            raise EmbeddingsError(f"The {what} {p.label} cannot be placed on the map's grid; check its layer's CRS.")
        out.append(local)
    return out


def _pixel(grid: Grid, x: float, y: float) -> tuple[int, int]:
    t = grid.transform
    return int(math.floor((y - t.f) / t.e)), int(math.floor((x - t.c) / t.a))


def _shapes(geoms: list[Geometry], grid: Grid) -> list[_Shape]:
    t = grid.transform
    res = grid.resolution
    out = []
    for g in geoms:
        if g["type"] in POINT_TYPES:
            pts = np.array([_pixel(grid, float(x), float(y)) for x, y, *_ in all_xy(g["coordinates"])], dtype=np.int64)
            win = (int(pts[:, 0].min()), int(pts[:, 0].max()) + 1, int(pts[:, 1].min()), int(pts[:, 1].max()) + 1)
            out.append(_Shape("points", win, g, pts))
            continue
        x0, y0, x1, y1 = bounds(g)
        cx, cy = centroid(g)
        cr, cc = _pixel(grid, cx, cy)
        # Pixels whose centres can lie in the bounding box, and the centroid's pixel.
        c0 = min(int(math.ceil((x0 - t.c) / res - 0.5)), cc)
        c1 = max(int(math.floor((x1 - t.c) / res - 0.5)) + 1, cc + 1)
        r0 = min(int(math.ceil((t.f - y1) / res - 0.5)), cr)
        r1 = max(int(math.floor((t.f - y0) / res - 0.5)) + 1, cr + 1)
        out.append(_Shape("polygon", (r0, r1, c0, c1), g, np.array([[cr, cc]], dtype=np.int64)))
    return out


def _gather(block: Block, rr: Array, cc: Array) -> tuple[Array, Array]:
    """float32 (bands, n) vectors and validity of block pixels (rows, cols local to the block)."""
    data = block.data[:, rr, cc]
    values = LUT[data.view(np.uint8)] if block.quantised else data.astype(np.float32)
    return values, block.valid[rr, cc]


def label_pixels(
    source: EmbeddingSource,
    grid: Grid,
    places: Sequence[LabelledPlace],
    what: str = "training places",
    cap: int | None = DEFAULT_CAP_PER_FEATURE,
    seed: int = 0,
    progress: Progress | None = None,
) -> LabelPixels:
    """The embeddings of the places' pixels on ``grid``'s lattice (see the module docstring).

    ``cap`` None: every pixel of a polygon. Refuses places that no tile covers at all.
    """
    progress = progress or Progress()
    if not places:
        raise EmbeddingsError(f"There are no {what}; give a layer with labelled points or polygons.")
    geoms = _local(places, grid.crs, what)
    res = grid.resolution
    boxes = np.array([bounds(g) for g in geoms])
    union = (boxes[:, 0].min() - res, boxes[:, 1].min() - res, boxes[:, 2].max() + res, boxes[:, 3].max() + res)
    lgrid = snap_grid(union, grid.crs, res, (grid.transform.c, grid.transform.f))
    shapes = _shapes(geoms, lgrid)
    n = len(places)
    touched = np.zeros(n, dtype=np.int64)
    centres = np.zeros(n, dtype=np.int64)
    centroid_vec: dict[int, Array] = {}
    rows: list[list[Array]] = [[] for _ in range(n)]
    wins = np.array([s.window for s in shapes], dtype=np.int64)
    try:
        with reading([source], lgrid) as readers:
            bands = readers[0].plan.bands
            windows = [
                w
                for w in windows_for(lgrid, readers)
                if np.any(
                    (wins[:, 0] < w.row_off + w.height)
                    & (wins[:, 1] > w.row_off)
                    & (wins[:, 2] < w.col_off + w.width)
                    & (wins[:, 3] > w.col_off)
                )
            ]
            for window, (block,) in stream(readers, windows, progress):
                _collect(block, window, lgrid, shapes, wins, touched, centres, centroid_vec, rows)
    except NoCoverage:
        raise EmbeddingsError(
            f"None of the {what} lies on the coverage of {source.label}; check where they are, "
            "their layer's CRS and the year."
        ) from None
    place_idx, vectors = [], []
    for i, s in enumerate(shapes):
        if s.kind == "polygon" and centres[i] == 0:
            touched[i] = 1
            if i in centroid_vec:
                rows[i] = [centroid_vec[i][:, None]]
        for r in rows[i]:
            vectors.append(r)
            place_idx.append(np.full(r.shape[1], i, dtype=np.int64))
    valid = np.array([sum(r.shape[1] for r in rows[i]) for i in range(n)], dtype=np.int64)
    if not vectors:
        return LabelPixels(np.zeros((0, bands), np.float32), np.zeros(0, np.int64), touched, valid, bands)
    X = np.concatenate(vectors, axis=1).T
    place = np.concatenate(place_idx)
    capped = 0
    if cap is not None:
        keep = cap_per_feature(place, cap, seed)
        capped = int(np.count_nonzero(valid > cap))
        X, place = X[keep], place[keep]
    return LabelPixels(np.ascontiguousarray(X, dtype=np.float32), place, touched, valid, bands, capped)


def _collect(
    block: Block,
    window: Window,
    grid: Grid,
    shapes: list[_Shape],
    wins: Array,
    touched: Array,
    centres: Array,
    centroid_vec: dict[int, Array],
    rows: list[list[Array]],
) -> None:
    """Add one block's pixels to the places that touch it."""
    from rasterio.features import geometry_mask

    r_lo, c_lo = window.row_off, window.col_off
    r_hi, c_hi = r_lo + window.height, c_lo + window.width
    hit = np.flatnonzero((wins[:, 0] < r_hi) & (wins[:, 1] > r_lo) & (wins[:, 2] < c_hi) & (wins[:, 3] > c_lo))
    for i in hit:
        s = shapes[i]
        pts = s.points
        inside = (pts[:, 0] >= r_lo) & (pts[:, 0] < r_hi) & (pts[:, 1] >= c_lo) & (pts[:, 1] < c_hi)
        if s.kind == "points":
            if inside.any():
                values, ok = _gather(block, pts[inside, 0] - r_lo, pts[inside, 1] - c_lo)
                touched[i] += int(inside.sum())
                if ok.any():
                    rows[i].append(values[:, ok])
            continue
        if inside.any():  # the centroid's pixel, used when no pixel centre lies inside
            values, ok = _gather(block, pts[inside, 0] - r_lo, pts[inside, 1] - c_lo)
            if ok[0]:
                centroid_vec[int(i)] = values[:, 0]
        r0, r1 = max(int(wins[i, 0]), r_lo), min(int(wins[i, 1]), r_hi)
        c0, c1 = max(int(wins[i, 2]), c_lo), min(int(wins[i, 3]), c_hi)
        part = Window(c0, r0, c1 - c0, r1 - r0)
        mask = geometry_mask([s.geometry], out_shape=part.shape, transform=grid.window_transform(part), invert=True)
        if not mask.any():
            continue
        rr, cc = np.nonzero(mask)
        rr, cc = rr + (r0 - r_lo), cc + (c0 - c_lo)
        values, ok = _gather(block, rr, cc)
        centres[i] += rr.size
        touched[i] += rr.size
        if ok.any():
            rows[i].append(values[:, ok])
