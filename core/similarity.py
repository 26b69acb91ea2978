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

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from affine import Affine

from .arrays import Array
from .block import CHUNK_PIXELS, Block
from .dask_run import TASK_PX, ClusterRun, check_whole_raster, client_pixel_limit, run_tasks
from .errors import EmbeddingsError, NoCoverage
from .geometry import POINT_TYPES, POLYGON_TYPES, Geometry, all_xy, bounds, centroid, transform_geometry
from .grid import DEFAULT_BLOCK, Grid, GridSpec, Window, transformer
from .output import open_float_output
from .pipeline import reading, stream, windows_for
from .polygons import Area, areas_above
from .progress import Progress
from .reader import MosaicReader
from .search import Place, TopKSearch
from .source import EmbeddingSource, SourceSpec, open_on_grid
from .stats import StreamingHistogram

NODATA_SCORE = -9999.0
AGGREGATES = ("mean", "max")
LOW_PERCENTILE = 2.0  # the style's robust minimum


@dataclass(frozen=True)
class Exemplar:
    """An example place: a GeoJSON Point/MultiPoint/Polygon/MultiPolygon in ``crs``, a label
    that names it in messages (e.g. "feature 3 ('field A')"), and its kind ("exemplar", or
    "negative" for a place that must score low)."""

    geometry: Geometry
    crs: str
    label: str
    kind: str = "exemplar"

    @property
    def name(self) -> str:
        return f"{self.kind} {self.label}"


@dataclass(frozen=True)
class SimilarityRequest:
    """Score every pixel of the grid against the exemplars, find the top places and the areas.

    ``source`` is a collection year or an input raster (its own grid, cropped to the extent if
    one is given); ``top_k`` 0 = no search; ``threshold`` None = no areas; ``use_faiss`` None =
    faiss when importable.
    """

    exemplars: Sequence[Exemplar]
    output: str
    source: SourceSpec = SourceSpec()
    grid: GridSpec = GridSpec()
    negatives: Sequence[Exemplar] = ()
    aggregate: str = "mean"
    top_k: int = 0
    min_separation_m: float = 100.0
    threshold: float | None = None
    use_faiss: bool | None = None
    exclude_radius_m: float = 0.0  # top places keep this far from the exemplars and negatives
    min_area_m2: float = 0.0  # areas above the threshold smaller than this are dropped
    block_size: int = DEFAULT_BLOCK
    scheduler: str | None = None  # a Dask scheduler's address (core.dask_run); None = this computer
    task_px: int = TASK_PX


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
    top: list[TopPlace] = field(default_factory=list)  # best first
    areas: list[Area] = field(default_factory=list)  # largest first
    search_method: str = ""


# ----------------------------------------------------------------------------- exemplars


class _Sum:
    """The running sum of an exemplar's de-quantized pixels."""

    def __init__(self) -> None:
        self.total: Array | None = None
        self.count = 0

    def add(self, values: Array, count: int) -> None:
        self.total = values if self.total is None else self.total + values
        self.count += count


def _add_pixel(
    source: EmbeddingSource, exemplar: Exemplar, x: float, y: float, crs: str, acc: _Sum, lattice: Grid | None = None
) -> None:
    read = source.pixel_at(x, y, crs) if lattice is None else _lattice_pixel(source, lattice, x, y, crs)
    if read is None:
        raise EmbeddingsError(_outside(source, exemplar))
    if not read[1]:
        raise EmbeddingsError(_on_nodata(source, exemplar))
    acc.add(read[0].astype(np.float64), 1)


def _lattice_pixel(source: EmbeddingSource, lattice: Grid, x: float, y: float, crs: str) -> tuple[Array, bool] | None:
    """(values, valid) of the pixel of ``lattice`` (the output grid, extended anywhere) under a
    point: the same averaged vector the map has there, also for a point off the extent."""
    lx, ly = transformer(crs, lattice.crs).transform(x, y)
    if not (math.isfinite(lx) and math.isfinite(ly)):
        return None
    t = lattice.transform
    col, row = math.floor((lx - t.c) / t.a), math.floor((ly - t.f) / t.e)
    one = Grid(lattice.crs, t * Affine.translation(col, row), 1, 1)
    try:
        with source.reader(one) as reader:
            block = reader.read(Window(0, 0, 1, 1))
    except NoCoverage:
        return None
    return block.values()[:, 0, 0], bool(block.valid[0, 0])


def _outside(source: EmbeddingSource, exemplar: Exemplar) -> str:
    return f"The {exemplar.name} lies outside the coverage of {source.label}; move it onto the embeddings or remove it."


def _on_nodata(source: EmbeddingSource, exemplar: Exemplar) -> str:
    return f"The {exemplar.name} falls on no-data in {source.label}; move it onto a place with embeddings or remove it."


def _add_polygon(source: EmbeddingSource, exemplar: Exemplar, local: Geometry, crs: str, acc: _Sum) -> None:
    """The pixels whose centres lie in the polygon, block by block (a large polygon costs one
    block of memory); a polygon holding no pixel centre takes the pixel under its centroid."""
    from rasterio import features

    grid = source.grid_around(bounds(local), crs)
    if grid is None:
        raise EmbeddingsError(_outside(source, exemplar))
    centres_inside = 0
    try:
        with reading([source], grid) as readers:
            for _, (block,) in stream(readers, windows_for(grid, readers), Progress()):
                inside = features.geometry_mask(
                    [local], out_shape=block.valid.shape, transform=grid.window_transform(block.window), invert=True
                )
                centres_inside += int(inside.sum())
                ok = inside & block.valid
                if ok.any():
                    acc.add(block.values()[:, ok].astype(np.float64).sum(axis=1), int(ok.sum()))
    except NoCoverage:
        raise EmbeddingsError(_outside(source, exemplar)) from None
    if centres_inside == 0:
        cx, cy = centroid(local)
        _add_pixel(source, exemplar, cx, cy, crs, acc)
    elif acc.count == 0:
        raise EmbeddingsError(_on_nodata(source, exemplar))


def exemplar_vector(source: EmbeddingSource, exemplar: Exemplar, lattice: Grid | None = None) -> Array:
    """The unit vector (bands,) of one exemplar; an error that names it when it has no data.

    A point takes the pixel under it (of ``lattice`` when given: the output grid at a coarser
    resolution, so that the exemplar is the averaged vector the map shows); a polygon the
    renormalised mean of the pixels whose centres lie in it, read in the source's native
    pixels around the exemplar.
    """
    geom = exemplar.geometry
    kind = geom.get("type") if isinstance(geom, dict) else None
    if kind not in POINT_TYPES + POLYGON_TYPES:
        raise EmbeddingsError(
            f"The {exemplar.name} is a {kind or 'missing'} geometry; exemplars must be points or polygons."
        )
    if not geom.get("coordinates"):
        raise EmbeddingsError(f"The {exemplar.name} has an empty geometry; remove it or draw it again.")
    cx, cy = centroid(geom)
    try:
        crs = source.local_crs(cx, cy, exemplar.crs)
    except EmbeddingsError:
        raise EmbeddingsError(f"The {exemplar.name} cannot be placed on Earth; check its layer's CRS.") from None
    local = transform_geometry(geom, exemplar.crs, crs)
    pts = np.asarray(all_xy(local["coordinates"]), dtype=np.float64)
    if not np.isfinite(pts).all():
        raise EmbeddingsError(f"The {exemplar.name} cannot be placed on Earth; check its layer's CRS.")
    acc = _Sum()
    if kind in POINT_TYPES:
        for x, y in pts:
            _add_pixel(source, exemplar, float(x), float(y), crs, acc, lattice)
    else:
        _add_polygon(source, exemplar, local, crs, acc)
    assert acc.total is not None
    mean = acc.total / acc.count
    norm = np.linalg.norm(mean)
    if not np.isfinite(norm) or norm == 0:
        raise EmbeddingsError(f"The {exemplar.name} has no usable embedding; move it or remove it.")
    return np.asarray(mean / norm, dtype=np.float32)


def exemplar_vectors(
    source: EmbeddingSource,
    exemplars: Sequence[Exemplar],
    progress: Progress | None = None,
    lattice: Grid | None = None,
) -> Array:
    """Unit vectors (n, bands) of exemplars, in order (points on ``lattice``, see exemplar_vector)."""
    progress = progress or Progress()
    out = []
    for i, ex in enumerate(exemplars):
        progress.check_cancelled()
        out.append(exemplar_vector(source, ex, lattice))
        progress.set_progress(100.0 * (i + 1) / len(exemplars))
    return np.asarray(out, dtype=np.float32)


# ----------------------------------------------------------------------------- scores


class Scorer:
    """Scores of unit vectors against exemplars (and negatives) for one aggregate."""

    def __init__(self, positives: Array, negatives: Array | None = None, aggregate: str = "mean"):
        if aggregate not in AGGREGATES:
            raise EmbeddingsError(f"The aggregate must be one of {', '.join(AGGREGATES)}.")
        if positives is None or len(positives) == 0:
            raise EmbeddingsError("Give at least one exemplar (a point or a polygon).")
        self.aggregate = aggregate
        self.has_negatives = negatives is not None and len(negatives) > 0
        pos = np.asarray(positives, dtype=np.float32)
        neg = np.asarray(negatives, dtype=np.float32) if self.has_negatives else None
        self.positives, self.negatives = pos, neg  # what a Dask task rebuilds the scorer from
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
    def search_queries(self) -> Array | None:
        """Query vectors whose inner products bound the score (see search.TopKSearch), or None."""
        if self.aggregate == "mean":
            return self.matrix
        if not self.has_negatives:
            return self.matrix
        return None

    def scores(self, unit_vectors: Array) -> Array:
        """float32 scores (n,) of unit vectors (n, bands)."""
        return self._combine((unit_vectors @ self.matrix.T).T)

    def _combine(self, s: Array) -> Array:
        """Scores (n,) from inner products (queries, n) with the matrix's rows."""
        if self.aggregate == "mean":
            return np.asarray(s[0])
        pos = s[: self.n_pos].max(axis=0)
        if self.matrix.shape[0] > self.n_pos:
            pos = pos - s[self.n_pos :].max(axis=0)
        return np.asarray(pos)

    def block_scores(self, block: Block) -> Array:
        """float32 (h, w) scores of a block's pixels, NaN where it has no data.

        The same scores as ``scores(block.unit_vectors())`` up to rounding, computed over
        contiguous runs of pixels in the block's own (bands, pixels) layout: gathering the
        valid pixels into (n, bands) rows costs more than the products themselves, and
        dividing the products by the norms is cheaper than normalising the vectors. A pixel's
        score depends on its window only (not on BLAS threads), so runs on a Dask cluster
        give the same map.
        """
        h, w = block.valid.shape
        n = h * w
        valid = block.valid.ravel()
        out = np.full(n, np.nan, dtype=np.float32)
        for start in range(0, n, CHUNK_PIXELS):
            sl = slice(start, min(n, start + CHUNK_PIXELS))
            if not valid[sl].any():
                continue
            v = block.chunk_directions(sl)  # scores are cosines: any positive scale per pixel
            norm = np.sqrt(np.einsum("bn,bn->n", v, v))
            # A zero vector keeps a zero score, as unit_vectors leaves it zero.
            norm[norm == 0] = 1.0
            # einsum, not BLAS: OpenBLAS rounds some products differently with another number
            # of threads (a Dask worker runs one), einsum gives each pixel the same sum anywhere.
            s = np.einsum("qb,bn->qn", self.matrix, v)
            s /= norm
            out[sl] = self._combine(s)
        out[~valid] = np.nan
        return out.reshape(h, w)


def _unit(v: Array) -> Array:
    n = float(np.linalg.norm(v))
    if not math.isfinite(n) or n == 0:
        raise EmbeddingsError("The exemplars cancel out (their mean is zero); choose other exemplars.")
    return v / n


# ----------------------------------------------------------------------------- main entry


def _check(request: SimilarityRequest) -> None:
    if not request.exemplars:
        raise EmbeddingsError("Give at least one exemplar (a point or a polygon).")
    if request.aggregate not in AGGREGATES:
        raise EmbeddingsError(f"The aggregate must be one of {', '.join(AGGREGATES)}.")
    if request.top_k < 0 or request.min_separation_m < 0:
        raise EmbeddingsError("The number of top places and the minimum separation cannot be negative.")
    if request.exclude_radius_m < 0 or request.min_area_m2 < 0:
        raise EmbeddingsError("The exclusion radius and the minimum area cannot be negative.")


def _scorer(src: EmbeddingSource, request: SimilarityRequest, progress: Progress, grid: Grid) -> Scorer:
    n_pos, n_all = len(request.exemplars), len(request.exemplars) + len(request.negatives)
    # From a collection at a coarser resolution than its 10 m, a clicked point is the output
    # pixel under it, as the map averages it (an input raster is read on its own pixels anyway).
    lattice = grid if src.native_grid() is None and grid.resolution > 10.0 else None
    positives = exemplar_vectors(src, request.exemplars, progress.sub(0, 100 * n_pos / n_all), lattice)
    negatives = (
        exemplar_vectors(src, request.negatives, progress.sub(100 * n_pos / n_all, 100), lattice)
        if request.negatives
        else None
    )
    if negatives is not None and request.aggregate == "max":
        progress.info(
            "The maximum with negatives is not an inner product: the top-k candidates come from "
            "each block's scores with NumPy."
        )
    return Scorer(positives, negatives, request.aggregate)


@dataclass
class _Heatmap:
    """What the scoring pass accumulates besides the raster."""

    hist: StreamingHistogram = field(default_factory=lambda: StreamingHistogram(-2.0, 2.0))
    score_max: float = -math.inf

    @property
    def valid_pixels(self) -> int:
        return self.hist.total

    def merge(self, part: dict[str, Any]) -> None:
        """Add a task's tallies (see ``similarity_task``)."""
        self.hist.add_counts(*part["hist"])
        self.score_max = max(self.score_max, float(part["score_max"]))


class _Exclusion:
    """The pixels whose centres lie closer than a radius to an exemplar or a negative (its
    bounding box for a polygon), kept out of the top places: "places like this, elsewhere"."""

    boxes: list[tuple[float, float, float, float]]
    radius_px: float

    @classmethod
    def from_boxes(cls, boxes: Sequence[Sequence[float]], radius_px: float) -> _Exclusion:
        """The zones again from their plain values (a Dask task's copy)."""
        out = cls.__new__(cls)
        out.boxes = [(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in boxes]
        out.radius_px = float(radius_px)
        return out

    def __init__(self, places: Sequence[Exemplar], grid: Grid, radius_m: float):
        t = grid.transform
        self.radius_px = float(radius_m) / grid.resolution
        boxes = []
        for place in places:
            x0, y0, x1, y1 = bounds(transform_geometry(place.geometry, place.crs, grid.crs))
            c0, c1 = sorted(((x0 - t.c) / t.a, (x1 - t.c) / t.a))
            r0, r1 = sorted(((y0 - t.f) / t.e, (y1 - t.f) / t.e))
            boxes.append((c0, r0, c1, r1))
        self.boxes = [b for b in boxes if all(math.isfinite(v) for v in b)]

    def keep(self, rows: Array, cols: Array) -> Array:
        """True for the pixels (grid rows and columns) outside every exclusion zone."""
        keep = np.ones(rows.shape, dtype=bool)
        cx, cy = cols + 0.5, rows + 0.5
        for c0, r0, c1, r1 in self.boxes:
            dx = np.maximum(np.maximum(c0 - cx, 0.0), cx - c1)
            dy = np.maximum(np.maximum(r0 - cy, 0.0), cy - r1)
            keep &= dx * dx + dy * dy >= self.radius_px**2
        return keep


def _score_block(
    block: Block,
    scorer: Scorer,
    grid: Grid,
    heat: _Heatmap,
    search: TopKSearch | None,
    exclusion: _Exclusion | None = None,
) -> Array:
    """The block's scores for the raster (no-data -9999), added to the summary and the search."""
    w = block.window
    out = np.full(w.shape, NODATA_SCORE, dtype=np.float32)
    if not block.valid.any():
        return out
    scores = scorer.block_scores(block)[block.valid]
    out[block.valid] = scores
    heat.hist.add(scores)
    heat.score_max = max(heat.score_max, float(scores.max()))
    if search is not None:
        rr, cc = np.nonzero(block.valid)
        ids = (rr + w.row_off).astype(np.int64) * grid.width + (cc + w.col_off)
        # Only faiss needs the vectors (as rows) to bound the candidates.
        vectors = block.unit_vectors() if search.method == "faiss" and ids.size > search.m else None
        if exclusion is not None:
            keep = exclusion.keep(rr + w.row_off, cc + w.col_off)
            ids, scores = ids[keep], scores[keep]
            vectors = None if vectors is None else vectors[keep]
        search.add_block(ids, scores, vectors)
    return out


def _search(
    top_k: int, separation_m: float, use_faiss: bool | None, scorer: Scorer, grid: Grid, progress: Progress
) -> TopKSearch | None:
    if top_k <= 0:
        return None
    return TopKSearch(top_k, separation_m / grid.resolution, grid.width, scorer.search_queries, use_faiss, progress)


def similarity_task(
    readers: Sequence[MosaicReader], grid: Grid, windows: Sequence[Window], params: dict[str, Any]
) -> dict[str, Any]:
    """A Dask task's windows of the heatmap (core.dask_tasks): their blocks, the histogram, the
    maximum and the task's top-k candidates, which merge exactly (see search.TopKSearch.merge)."""
    scorer = Scorer(params["positives"], params["negatives"], params["aggregate"])
    search = _search(
        int(params["top_k"]), float(params["min_separation_m"]), params["use_faiss"], scorer, grid, Progress()
    )
    heat = _Heatmap()
    plain = params.get("exclusion")
    exclusion = None if plain is None else _Exclusion.from_boxes(*plain)
    blocks = [
        ((w.col_off, w.row_off, w.width, w.height), _score_block(block, scorer, grid, heat, search, exclusion))
        for w, (block,) in stream(readers, windows, Progress())
    ]
    pool = None if search is None else (search.pool_ids, search.pool_scores)
    return {"blocks": blocks, "hist": heat.hist.nonzero(), "score_max": heat.score_max, "pool": pool}


def _tags(src: EmbeddingSource, request: SimilarityRequest) -> dict[str, str]:
    return {
        "SIMILARITY_SOURCE": src.label,
        "SIMILARITY_AGGREGATE": request.aggregate,
        "SIMILARITY_EXEMPLARS": str(len(request.exemplars)),
        "SIMILARITY_NEGATIVES": str(len(request.negatives)),
        "SIMILARITY_SCORE": "cos(x, positives) - cos(x, negatives)" if request.negatives else "cos(x, positives)",
    }


def similarity_map(request: SimilarityRequest, progress: Progress | None = None) -> SimilarityResult:
    """Write the similarity heatmap of an extent (float32 GeoTIFF) and find places.

    The grid is the extent's for a collection, or the input raster's own, cropped to the
    extent if one is given. Exemplars and negatives are read wherever they lie. ``top_k`` > 0
    finds the best places at least ``min_separation_m`` apart (in the grid's CRS units);
    ``threshold`` gives the areas above it. Memory holds one block of embeddings plus the
    top-k candidates.
    """
    progress = progress or Progress()
    _check(request)
    heat_end = 90.0 if request.threshold is not None else 99.0
    heat = _Heatmap()
    spec = request.grid
    if request.scheduler:
        spec = replace(spec, max_pixels=client_pixel_limit(request.output))
    src, grid = open_on_grid(request.source, spec, progress.sub(0, 2))
    with src:
        cluster = None
        if request.scheduler:
            if request.threshold is not None:
                check_whole_raster(grid, request.grid.max_pixels, "areas above the threshold")
            cluster = ClusterRun(request.scheduler, (request.source,), request.task_px)
        scorer = _scorer(src, request, progress.sub(2, 8), grid)
        search = _search(request.top_k, request.min_separation_m, request.use_faiss, scorer, grid, progress)
        with (
            reading([src], grid) as readers,
            open_float_output(request.output, grid, ("similarity",), NODATA_SCORE, _tags(src, request)) as out,
        ):
            progress.info(readers[0].plan.describe())
            windows = windows_for(grid, readers, request.block_size)
            exclusion = None
            if search is not None and request.exclude_radius_m > 0:
                exclusion = _Exclusion([*request.exemplars, *request.negatives], grid, request.exclude_radius_m)
            if cluster is not None:
                params = {
                    "positives": scorer.positives,
                    "negatives": scorer.negatives,
                    "aggregate": scorer.aggregate,
                    "top_k": request.top_k,
                    "min_separation_m": request.min_separation_m,
                    "use_faiss": request.use_faiss,
                    # Plain values: the workers' copy of the core has its own classes.
                    "exclusion": None if exclusion is None else (exclusion.boxes, exclusion.radius_px),
                }

                def merge(part: dict[str, Any]) -> None:
                    heat.merge(part)
                    if search is not None:
                        search.merge(*part["pool"])

                run_tasks(cluster, "similarity", params, grid, readers, windows, out, merge, progress.sub(8, heat_end))
            else:
                for window, (block,) in stream(readers, windows, progress.sub(8, heat_end)):
                    out.write(_score_block(block, scorer, grid, heat, search, exclusion)[None], window)
            if heat.valid_pixels == 0:
                raise EmbeddingsError(
                    "The embeddings have no data anywhere in this extent; move the extent onto the coverage."
                )
            score_low = min(heat.hist.percentile(LOW_PERCENTILE), heat.score_max)
            out.update_tags(SCORE_P2=f"{score_low:.6g}", SCORE_MAX=f"{heat.score_max:.6g}")
    result = SimilarityResult(str(request.output), grid, heat.valid_pixels, score_low, heat.score_max)
    if search is not None:
        result.top = _to_top_places(search.places(), grid)
        result.search_method = search.method
        away = f", {request.exclude_radius_m:g} m or more from the exemplars" if request.exclude_radius_m > 0 else ""
        progress.info(
            f"Top {len(result.top)} place(s) at least {request.min_separation_m:g} m apart{away}, "
            f"found with {search.method}."
        )
    if request.threshold is not None:
        result.areas = areas_above(
            str(request.output), float(request.threshold), request.min_area_m2, progress=progress.sub(heat_end, 100)
        )
        progress.info(f"{len(result.areas)} area(s) score above {request.threshold:g}.")
    progress.set_progress(100.0)
    progress.info(
        f"Wrote {grid.width} x {grid.height} pixels ({heat.valid_pixels:,} with data); scores from "
        f"{score_low:.3f} (p{LOW_PERCENTILE:g}) to {heat.score_max:.3f}."
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
