"""Similarity to exemplars: a heatmap of cosine similarity, top-k places, areas above a threshold.

Scores, per pixel x (unit vector):

- mean aggregate: cos(x, p), p = the renormalised mean of the exemplars' unit vectors;
- max aggregate: the maximum over exemplars e of cos(x, e);
- with negatives, the same aggregate over the negatives is subtracted:
  cos(x, positives) - cos(x, negatives), in [-2, 2].

For the mean aggregate the score is one inner product, x . (p - n), which is what the top-k
search gives faiss. The maximum without negatives is the maximum of inner products, which
faiss searches query by query. The maximum with negatives is not an inner product with any
vector: its top-k candidates come from the block's scores with NumPy.

Exemplars are read wherever they are (inside the extent or not): a point takes the pixel
under it; a polygon the renormalised mean of the de-quantized pixels whose centres lie in
it (a polygon that holds no pixel centre takes the pixel under its centroid). From a
collection, those pixels are the native 10 m pixels of the UTM zone of the exemplar; from an
input raster, the raster's own pixels.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np

from .errors import EmbeddingsError
from .grid import DEFAULT_MAX_PIXELS, Grid, Window, check_size, crop_grid, grid_for_extent, grid_of_raster, transformer
from .grid import utm_epsg as _utm_epsg
from .load import open_source, rio_window
from .output import open_float_output
from .polygons import Area, areas_above
from .progress import Progress
from .quant import LUT
from .reader import Block, EmbeddingSource, MosaicReader, RasterSource
from .search import Place, TopKSearch

NODATA_SCORE = -9999.0
# Pixels per run of the block kernel: (bands x run) float32 stays in cache.
CHUNK_PIXELS = 16384
AGGREGATES = ("mean", "max")
# Streaming histogram of scores for the style's robust minimum: scores lie in [-2, 2].
HIST_RANGE = (-2.0, 2.0)
HIST_BINS = 4000
LOW_PERCENTILE = 2.0


@dataclass
class Exemplar:
    """An example place: a GeoJSON Point/MultiPoint/Polygon/MultiPolygon in ``crs``, and a label
    that names it in messages (e.g. "feature 3 ('field A')")."""

    geometry: dict
    crs: str
    label: str


@dataclass
class TopPlace:
    """A top-k place at a pixel centre of the output grid."""

    rank: int
    score: float
    x: float
    y: float
    lon: float
    lat: float

    @property
    def wkt(self) -> str:
        return f"POINT ({self.x!r} {self.y!r})"


@dataclass
class SimilarityResult:
    path: str
    grid: Grid
    valid_pixels: int
    score_low: float  # the LOW_PERCENTILE percentile of valid scores (style minimum)
    score_max: float
    top: list = field(default_factory=list)  # TopPlace, best first
    areas: list = field(default_factory=list)  # polygons.Area, largest first
    search_method: str = ""


# ----------------------------------------------------------------------------- geometry


def _map_coords(coords, fn):
    if isinstance(coords[0], (int, float)):
        return fn(coords)
    return [_map_coords(c, fn) for c in coords]


def transform_geometry(geom: dict, src: str, dst: str) -> dict:
    """A GeoJSON geometry with its coordinates transformed from ``src`` to ``dst``."""
    tr = transformer(src, dst)

    def move(xy):
        x, y = tr.transform(xy[0], xy[1])
        return [float(x), float(y)]

    return {"type": geom["type"], "coordinates": _map_coords(geom["coordinates"], move)}


def _all_xy(coords) -> list:
    if isinstance(coords[0], (int, float)):
        return [coords]
    return [p for c in coords for p in _all_xy(c)]


def _ring_centroid(ring) -> tuple[float, float, float]:
    """(signed area, cx, cy) of a closed ring (shoelace)."""
    xs = np.asarray([p[0] for p in ring], dtype=np.float64)
    ys = np.asarray([p[1] for p in ring], dtype=np.float64)
    x0, y0 = xs.mean(), ys.mean()  # shift for numerical stability with UTM coordinates
    xs, ys = xs - x0, ys - y0
    cross = xs * np.roll(ys, -1) - np.roll(xs, -1) * ys
    a = cross.sum() / 2.0
    if abs(a) < 1e-12:
        return 0.0, x0 + xs.mean(), y0 + ys.mean()
    cx = ((xs + np.roll(xs, -1)) * cross).sum() / (6.0 * a)
    cy = ((ys + np.roll(ys, -1)) * cross).sum() / (6.0 * a)
    return a, x0 + cx, y0 + cy


def centroid(geom: dict) -> tuple[float, float]:
    """Area-weighted centroid of a (Multi)Polygon; mean of the points of a (Multi)Point."""
    t = geom["type"]
    if t in ("Point", "MultiPoint"):
        pts = np.asarray(_all_xy(geom["coordinates"]), dtype=np.float64)
        return float(pts[:, 0].mean()), float(pts[:, 1].mean())
    polys = [geom["coordinates"]] if t == "Polygon" else geom["coordinates"]
    total = sx = sy = 0.0
    for rings in polys:
        for i, ring in enumerate(rings):
            a, cx, cy = _ring_centroid(ring)
            a = abs(a) if i == 0 else -abs(a)  # holes subtract
            total += a
            sx += a * cx
            sy += a * cy
    if abs(total) < 1e-12:
        pts = np.asarray(_all_xy(geom["coordinates"]), dtype=np.float64)
        return float(pts[:, 0].mean()), float(pts[:, 1].mean())
    return sx / total, sy / total


# ----------------------------------------------------------------------------- exemplars


def _local_grid(source: EmbeddingSource, bounds, crs: str) -> Grid | None:
    """The pixels to read around bounds in ``crs``: the input raster's own, or native UTM 10 m.

    ``crs`` is the raster's CRS for an input raster, else a UTM zone. None: off the raster.
    """
    x0, y0, x1, y1 = bounds
    if isinstance(source, RasterSource):
        full = grid_of_raster(source.path)
        pad = full.resolution * 1e-4
        try:
            return crop_grid(full, (x0 - pad, y0 - pad, x1 + pad, y1 + pad), crs)
        except EmbeddingsError:
            return None
    return grid_for_extent((x0 - 1e-3, y0 - 1e-3, x1 + 1e-3, y1 + 1e-3), crs, crs, 10.0)


def _grid_crs_for(source: EmbeddingSource, geom: dict, crs: str) -> str:
    if isinstance(source, RasterSource):
        return grid_of_raster(source.path).crs
    cx, cy = centroid(geom)
    lon, lat = transformer(crs, "EPSG:4326").transform(cx, cy)
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise EmbeddingsError("An exemplar cannot be placed on Earth; check the exemplar layer's CRS.")
    return _utm_epsg(lon, lat)


@contextlib.contextmanager
def _reading(source: EmbeddingSource, grid: Grid | None, progress: Progress):
    """A reader of a small grid, or None when no embeddings cover it."""
    if grid is None:
        yield None
        return
    reader = MosaicReader(source, grid, progress)
    try:
        reader.__enter__()
    except EmbeddingsError as exc:
        if "No embeddings cover" not in str(exc):
            raise
        yield None
        return
    try:
        yield reader
    finally:
        reader.__exit__(None, None, None)


def _pixel_at(source: EmbeddingSource, x: float, y: float, crs: str, progress: Progress):
    """(values (bands,), valid) of the pixel under a point, or None when nothing covers it."""
    grid = _local_grid(source, (x, y, x, y), crs)
    with _reading(source, grid, progress) as reader:
        if reader is None:
            return None
        row, col = grid.index_of(x, y)
        row, col = min(max(row, 0), grid.height - 1), min(max(col, 0), grid.width - 1)
        block = reader.read(Window(col, row, 1, 1))
    return block.values()[:, 0, 0], bool(block.valid[0, 0])


def exemplar_vector(source: EmbeddingSource, exemplar: Exemplar, progress: Progress | None = None) -> np.ndarray:
    """The unit vector (bands,) of one exemplar; an error that names it when it has no data."""
    from rasterio import features

    progress = progress or Progress()
    geom = exemplar.geometry
    kind = geom.get("type") if isinstance(geom, dict) else None
    if kind not in ("Point", "MultiPoint", "Polygon", "MultiPolygon"):
        raise EmbeddingsError(
            f"The exemplar {exemplar.label} is a {kind or 'missing'} geometry; exemplars must be points or polygons."
        )
    if not geom.get("coordinates"):
        raise EmbeddingsError(f"The exemplar {exemplar.label} has an empty geometry; remove it or draw it again.")
    gcrs = _grid_crs_for(source, geom, exemplar.crs)
    local = transform_geometry(geom, exemplar.crs, gcrs)
    pts = np.asarray(_all_xy(local["coordinates"]), dtype=np.float64)
    if not np.isfinite(pts).all():
        raise EmbeddingsError(f"The exemplar {exemplar.label} cannot be placed on Earth; check its layer's CRS.")
    outside = (
        f"The exemplar {exemplar.label} lies outside the coverage of {source.label}; "
        "move it onto the embeddings or remove it."
    )
    nodata = (
        f"The exemplar {exemplar.label} falls on no-data in {source.label}; "
        "move it onto a place with embeddings or remove it."
    )
    total = None
    count = 0
    if kind in ("Point", "MultiPoint"):
        for x, y in pts:
            read = _pixel_at(source, x, y, gcrs, progress)
            if read is None:
                raise EmbeddingsError(outside)
            if not read[1]:
                raise EmbeddingsError(nodata)
            total = read[0].astype(np.float64) + (0.0 if total is None else total)
            count += 1
    else:
        grid = _local_grid(source, (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()), gcrs)
        centres_inside = 0
        with _reading(source, grid, progress) as reader:
            if reader is None:
                raise EmbeddingsError(outside)
            # Block by block, so that a large polygon costs one block of memory.
            for block in reader.blocks():
                inside = features.geometry_mask(
                    [local],
                    out_shape=block.valid.shape,
                    transform=grid.window_transform(block.window),
                    invert=True,
                )
                centres_inside += int(inside.sum())
                ok = inside & block.valid
                if ok.any():
                    part = block.values()[:, ok].astype(np.float64).sum(axis=1)
                    total = part if total is None else total + part
                    count += int(ok.sum())
        if centres_inside == 0:
            # Smaller than a pixel (no pixel centre inside): the pixel under the centroid.
            cx, cy = centroid(local)
            read = _pixel_at(source, cx, cy, gcrs, progress)
            if read is None:
                raise EmbeddingsError(outside)
            if not read[1]:
                raise EmbeddingsError(nodata)
            total, count = read[0].astype(np.float64), 1
        elif count == 0:
            raise EmbeddingsError(nodata)
    mean = total / count
    norm = np.linalg.norm(mean)
    if not np.isfinite(norm) or norm == 0:
        raise EmbeddingsError(f"The exemplar {exemplar.label} has no usable embedding; move it or remove it.")
    return (mean / norm).astype(np.float32)


def exemplar_vectors(source: EmbeddingSource, exemplars, progress: Progress | None = None) -> np.ndarray:
    """Unit vectors (n, bands) of exemplars, in order."""
    progress = progress or Progress()
    out = []
    exemplars = list(exemplars)
    for i, ex in enumerate(exemplars):
        progress.check_cancelled()
        out.append(
            exemplar_vector(source, ex, progress.sub(100.0 * i / len(exemplars), 100.0 * (i + 1) / len(exemplars)))
        )
    return np.asarray(out, dtype=np.float32)


# ----------------------------------------------------------------------------- scores


class Scorer:
    """Scores of unit vectors against exemplars (and negatives) for one aggregate."""

    def __init__(self, positives: np.ndarray, negatives: np.ndarray | None = None, aggregate: str = "mean"):
        if aggregate not in AGGREGATES:
            raise EmbeddingsError(f"The aggregate must be one of {', '.join(AGGREGATES)}.")
        if positives is None or len(positives) == 0:
            raise EmbeddingsError("Give at least one exemplar (a point or a polygon).")
        self.aggregate = aggregate
        self.has_negatives = negatives is not None and len(negatives) > 0
        pos = np.asarray(positives, dtype=np.float32)
        neg = np.asarray(negatives, dtype=np.float32) if self.has_negatives else None
        if aggregate == "mean":
            q = _unit(pos.mean(axis=0))
            if neg is not None:
                q = q - _unit(neg.mean(axis=0))
            self.matrix = q[None, :].astype(np.float32)
            self.n_pos = 1
        else:
            self.matrix = pos if neg is None else np.concatenate([pos, neg])
            self.n_pos = len(pos)
        self.matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)

    @property
    def search_queries(self) -> np.ndarray | None:
        """Query vectors whose inner products bound the score (see search.TopKSearch), or None."""
        if self.aggregate == "mean":
            return self.matrix
        if not self.has_negatives:
            return self.matrix
        return None

    def scores(self, unit_vectors: np.ndarray) -> np.ndarray:
        """float32 scores (n,) of unit vectors (n, bands)."""
        return self._combine((unit_vectors @ self.matrix.T).T)

    def _combine(self, s: np.ndarray) -> np.ndarray:
        """Scores (n,) from inner products (queries, n) with the matrix's rows."""
        if self.aggregate == "mean":
            return s[0]
        pos = s[: self.n_pos].max(axis=0)
        if self.matrix.shape[0] > self.n_pos:
            pos = pos - s[self.n_pos :].max(axis=0)
        return pos

    def block_scores(self, block: Block) -> np.ndarray:
        """float32 (h, w) scores of a block's pixels, NaN where it has no data.

        The same scores as ``scores(block.unit_vectors())`` up to rounding, computed over
        contiguous runs of pixels in the block's own (bands, pixels) layout: gathering the
        valid pixels into (n, bands) rows costs more than the products themselves, and
        dividing the products by the norms is cheaper than normalising the vectors.
        """
        h, w = block.valid.shape
        n = h * w
        data = block.data.reshape(block.data.shape[0], n)
        valid = block.valid.ravel()
        out = np.full(n, np.nan, dtype=np.float32)
        for start in range(0, n, CHUNK_PIXELS):
            sl = slice(start, min(n, start + CHUNK_PIXELS))
            if not valid[sl].any():
                continue
            v = np.take(LUT, data[:, sl].view(np.uint8)) if block.quantised else data[:, sl].astype(np.float32)
            norm = np.sqrt(np.einsum("bn,bn->n", v, v))
            # A zero vector keeps a zero score, as unit_vectors leaves it zero.
            norm[norm == 0] = 1.0
            s = self.matrix @ v
            s /= norm
            out[sl] = self._combine(s)
        out[~valid] = np.nan
        return out.reshape(h, w)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not math.isfinite(n) or n == 0:
        raise EmbeddingsError("The exemplars cancel out (their mean is zero); choose other exemplars.")
    return v / n


def _percentile_from_hist(hist: np.ndarray, percent: float) -> float:
    total = hist.sum()
    if total == 0:
        return float("nan")
    edges = np.linspace(*HIST_RANGE, HIST_BINS + 1)
    cum = np.cumsum(hist)
    i = int(np.searchsorted(cum, total * percent / 100.0, side="left"))
    return float(edges[min(i, HIST_BINS - 1)])


# ----------------------------------------------------------------------------- main entry


def similarity_map(
    exemplars,
    output: str,
    source: str | None = None,
    year: int | None = None,
    input_path: str | None = None,
    extent=None,
    extent_crs: str | None = None,
    target_crs: str | None = None,
    resolution_m: float = 10.0,
    negatives=(),
    aggregate: str = "mean",
    top_k: int = 0,
    min_separation_m: float = 100.0,
    threshold: float | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    use_faiss: bool | None = None,
    block_size: int | None = None,
    progress: Progress | None = None,
) -> SimilarityResult:
    """Write the similarity heatmap of an extent to ``output`` (float32 GeoTIFF) and find places.

    The grid is the extent's (``grid_for_extent``) for a collection, or the input raster's
    own, cropped to ``extent`` if one is given. Exemplars and negatives (``Exemplar``) are
    read wherever they lie. ``top_k`` > 0 finds the best places at least
    ``min_separation_m`` apart (in the grid's CRS units); ``threshold`` gives the areas
    above it. Memory holds one block of embeddings plus the top-k candidates.
    """
    progress = progress or Progress()
    exemplars = list(exemplars)
    negatives = list(negatives or ())
    if not exemplars:
        raise EmbeddingsError("Give at least one exemplar (a point or a polygon).")
    if aggregate not in AGGREGATES:
        raise EmbeddingsError(f"The aggregate must be one of {', '.join(AGGREGATES)}.")
    if top_k < 0 or min_separation_m < 0:
        raise EmbeddingsError("The number of top places and the minimum separation cannot be negative.")
    if input_path:
        grid = grid_of_raster(input_path)
        if extent is not None:
            grid = crop_grid(grid, extent, extent_crs or grid.crs)
    else:
        if extent is None:
            raise EmbeddingsError("Choose an extent to map (for example the map canvas extent).")
        grid = grid_for_extent(extent, extent_crs, target_crs, resolution_m)
    check_size(grid, max_pixels)

    src = open_source(source, year, input_path, progress.sub(0, 2))
    try:
        n_ex = len(exemplars) + len(negatives)
        positives = exemplar_vectors(src, exemplars, progress.sub(2, 2 + 6 * len(exemplars) / n_ex))
        neg = exemplar_vectors(src, negatives, progress.sub(2 + 6 * len(exemplars) / n_ex, 8)) if negatives else None
        scorer = Scorer(positives, neg, aggregate)
        if neg is not None and aggregate == "max":
            progress.info(
                "The maximum with negatives is not an inner product: the top-k candidates come from "
                "each block's scores with NumPy."
            )
        search = None
        if top_k > 0:
            search = TopKSearch(
                top_k, min_separation_m / grid.resolution, grid.width, scorer.search_queries, use_faiss, progress
            )
        hist = np.zeros(HIST_BINS, dtype=np.int64)
        score_max = -math.inf
        valid_pixels = 0
        heat_end = 90.0 if threshold is not None else 99.0
        with MosaicReader(src, grid, progress.sub(8, heat_end)) as reader:
            plan = reader.plan
            progress.info(plan.describe())
            tags = {
                "SIMILARITY_SOURCE": src.label,
                "SIMILARITY_AGGREGATE": aggregate,
                "SIMILARITY_EXEMPLARS": str(len(exemplars)),
                "SIMILARITY_NEGATIVES": str(len(negatives)),
                "SIMILARITY_SCORE": "cos(x, positives) - cos(x, negatives)" if negatives else "cos(x, positives)",
            }
            with open_float_output(output, grid, ("similarity",), NODATA_SCORE, tags) as ds:
                for block in reader.blocks(block_size):
                    w = block.window
                    out = np.full(w.shape, NODATA_SCORE, dtype=np.float32)
                    if block.valid.any():
                        scores = scorer.block_scores(block)[block.valid]
                        out[block.valid] = scores
                        valid_pixels += scores.size
                        hist += np.histogram(scores, bins=HIST_BINS, range=HIST_RANGE)[0]
                        score_max = max(score_max, float(scores.max()))
                        if search is not None:
                            rr, cc = np.nonzero(block.valid)
                            ids = (rr + w.row_off).astype(np.int64) * grid.width + (cc + w.col_off)
                            # Only faiss needs the vectors (as rows) to bound the candidates.
                            vectors = block.unit_vectors() if search.method == "faiss" and ids.size > search.m else None
                            search.add_block(ids, scores, vectors)
                    ds.write(out[None], window=rio_window(w))
                if valid_pixels == 0:
                    raise EmbeddingsError(
                        "The embeddings have no data anywhere in this extent; move the extent onto the coverage."
                    )
                score_low = _percentile_from_hist(hist, LOW_PERCENTILE)
                ds.update_tags(SCORE_P2=f"{score_low:.6g}", SCORE_MAX=f"{score_max:.6g}")
    finally:
        src.close()

    result = SimilarityResult(str(output), grid, valid_pixels, min(score_low, score_max), score_max)
    if search is not None:
        result.top = _to_top_places(search.places(), grid)
        result.search_method = search.method
        progress.info(
            f"Top {len(result.top)} place(s) at least {min_separation_m:g} m apart, found with {search.method}."
        )
    if threshold is not None:
        result.areas = areas_above(str(output), float(threshold), progress=progress.sub(heat_end, 100))
        progress.info(f"{len(result.areas)} area(s) score above {threshold:g}.")
    progress.set_progress(100.0)
    progress.info(
        f"Wrote {grid.width} x {grid.height} pixels ({valid_pixels:,} with data); scores from "
        f"{score_low:.3f} (p{LOW_PERCENTILE:g}) to {score_max:.3f}."
    )
    return result


def _to_top_places(places: list[Place], grid: Grid) -> list[TopPlace]:
    t = grid.transform
    out = []
    to_ll = transformer(grid.crs, "EPSG:4326")
    for p in places:
        x = t.c + t.a * (p.col + 0.5)
        y = t.f + t.e * (p.row + 0.5)
        lon, lat = to_ll.transform(x, y)
        out.append(TopPlace(p.rank, p.score, float(x), float(y), float(lon), float(lat)))
    return out


__all__ = [
    "AGGREGATES",
    "Area",
    "Exemplar",
    "NODATA_SCORE",
    "Scorer",
    "SimilarityResult",
    "TopPlace",
    "exemplar_vector",
    "exemplar_vectors",
    "similarity_map",
]
