"""Change between two embeddings: 1 - cosine per pixel, streamed block by block.

For unit vectors a and b, 1 - cos(a, b) = |a - b|^2 / 2. The kernel computes the right
hand side from renormalised vectors: it equals the cosine form up to rounding, keeps full
float32 precision near 0 (where stable land lies, about 0.04) instead of subtracting two
numbers close to 1, and is exactly 0 for identical vectors.

Percentiles come from a fixed histogram over [0, 2] filled block by block, so the summary
costs the same memory for a city as for a province.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .collection import open_collection
from .errors import EmbeddingsError
from .grid import DEFAULT_BLOCK, DEFAULT_MAX_PIXELS, Grid, check_size, grid_for_extent, grid_of_raster
from .load import rio_window
from .output import open_float_output
from .progress import Progress
from .quant import LUT
from .reader import Block, CollectionSource, EmbeddingSource, MosaicReader, RasterSource, _crs_name

NODATA_CHANGE = -9999.0
DEFAULT_THRESHOLD = 0.25
DEFAULT_MIN_AREA_M2 = 500.0
# Histogram bins over [0, 2]: 2 / 65536 = 3.1e-5 wide, far below the differences users read.
HIST_BINS = 65536
HIST_MAX = 2.0
# Pixels per kernel step: 64 bands x 16384 px of float32 = 4 MB per temporary, cache-sized.
CHUNK_PIXELS = 16384


@dataclass
class ChangeSummary:
    """What a change run wrote and measured."""

    path: str
    grid: Grid
    label_a: str
    label_b: str
    valid_pixels: int
    p50: float
    p90: float
    p99: float
    threshold: float
    above_pixels: int
    areas: list = field(default_factory=list)  # core.polygons.Area, largest first

    @property
    def pixel_area_m2(self) -> float:
        return self.grid.resolution**2

    @property
    def above_m2(self) -> float:
        return self.above_pixels * self.pixel_area_m2

    def describe(self) -> str:
        """The closing log lines: valid pixels, percentiles, area above the threshold."""
        total = max(self.grid.pixels, 1)
        lines = [
            f"Change {self.label_a} -> {self.label_b}: {self.valid_pixels:,} valid pixels "
            f"({100.0 * self.valid_pixels / total:.1f} % of {self.grid.pixels:,}).",
        ]
        if self.valid_pixels:
            share = 100.0 * self.above_pixels / self.valid_pixels
            lines.append(f"Change (1 - cosine): p50 {self.p50:.3f}, p90 {self.p90:.3f}, p99 {self.p99:.3f}.")
            lines.append(
                f"Above {self.threshold:g}: {self.above_pixels:,} pixels = {self.above_m2 / 1e6:,.4f} km2 "
                f"({share:.2f} % of the valid pixels)"
                + (f", in {len(self.areas):,} area(s) kept as polygons." if self.areas else ".")
            )
        return "\n".join(lines)


class StreamingHistogram:
    """Percentiles of values in [0, ``top``] without keeping the values."""

    def __init__(self, bins: int = HIST_BINS, top: float = HIST_MAX):
        self.bins = bins
        self.top = top
        self.counts = np.zeros(bins, dtype=np.int64)

    def add(self, values: np.ndarray) -> None:
        idx = (values.astype(np.float64) * (self.bins / self.top)).astype(np.int64)
        np.clip(idx, 0, self.bins - 1, out=idx)
        self.counts += np.bincount(idx, minlength=self.bins)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100), linear within its bin; NaN when empty."""
        n = self.total
        if n == 0:
            return float("nan")
        # The value of (1-based) rank 1 + q/100 (n - 1), numpy's "linear" convention; the
        # tolerance keeps 99.9/100 * n from rounding past the rank into a later (sparse) bin.
        target = 1.0 + q / 100.0 * (n - 1) - 1e-9 * n
        cum = np.cumsum(self.counts)
        i = int(np.searchsorted(cum, target, side="left"))
        i = min(i, self.bins - 1)
        before = cum[i - 1] if i > 0 else 0
        inside = self.counts[i]
        frac = (target - before) / inside if inside else 0.0
        width = self.top / self.bins
        return float((i + min(max(frac, 0.0), 1.0)) * width)


def _values(codes_or_values: np.ndarray, quantised: bool) -> np.ndarray:
    """A float32 copy (the kernel works in place): codes through the LUT, NaN for no-data."""
    if quantised:
        return np.take(LUT, codes_or_values.view(np.uint8))
    return codes_or_values.astype(np.float32)


def change_of_blocks(a: Block, b: Block) -> np.ndarray:
    """float32 (h, w) 1 - cos(a, b) in [0, 2]; NaN where either block has no data.

    A zero vector has no direction, so it counts as no data rather than as a cosine.
    """
    h, w = a.valid.shape
    n = h * w
    out = np.full(n, np.nan, dtype=np.float32)
    both = (a.valid & b.valid).ravel()
    da = a.data.reshape(a.data.shape[0], n)
    db = b.data.reshape(b.data.shape[0], n)
    # Contiguous runs of pixels (slices, not gathers) small enough to stay in cache; pixels
    # without data are computed too (as NaN) and masked at the end, which is cheaper than
    # gathering the valid ones.
    for start in range(0, n, CHUNK_PIXELS):
        sl = slice(start, min(n, start + CHUNK_PIXELS))
        ok = both[sl]
        if not ok.any():
            continue
        va = _values(da[:, sl], a.quantised)
        vb = _values(db[:, sl], b.quantised)
        na = np.sqrt(np.einsum("bn,bn->n", va, va))
        nb = np.sqrt(np.einsum("bn,bn->n", vb, vb))
        ok = ok & (na > 0) & (nb > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            va /= na
            vb /= nb
        va -= vb
        change = 0.5 * np.einsum("bn,bn->n", va, va)
        np.clip(change, 0.0, 2.0, out=change)
        out[sl] = np.where(ok, change, np.float32(np.nan))
    return out.reshape(h, w)


def _reads(plan) -> str:
    return f"{len(plan.tiles)} tile(s), about {plan.read_bytes / 1e6:,.1f} MB of embeddings to read"


def compute_change(
    source_a: EmbeddingSource,
    source_b: EmbeddingSource,
    grid: Grid,
    output: str,
    threshold: float = DEFAULT_THRESHOLD,
    progress: Progress | None = None,
    tags: dict | None = None,
    block_size: int = DEFAULT_BLOCK,
) -> ChangeSummary:
    """Write 1 - cos(a, b) on ``grid`` to a float32 GeoTIFF and summarise it.

    Both sources are read onto the same grid (nearest neighbour on codes, mosaicked) in
    pairs of blocks; no-data (-9999) wherever either has none. Memory holds two blocks of
    int8 codes and one block of output, whatever the grid's size.
    """
    progress = progress or Progress()
    hist = StreamingHistogram()
    above = 0
    with MosaicReader(source_a, grid) as reader_a, MosaicReader(source_b, grid) as reader_b:
        pa, pb = reader_a.plan, reader_b.plan
        if pa.bands != pb.bands:
            raise EmbeddingsError(
                f"{source_a.label} has {pa.bands} bands and {source_b.label} has {pb.bands}; "
                "compare two embeddings of the same product."
            )
        progress.info(
            f"Planned: {grid.width} x {grid.height} = {grid.pixels:,} pixels at {grid.resolution:g} m in "
            f"{_crs_name(grid.crs)}; A: {_reads(pa)}; B: {_reads(pb)}."
        )
        # Coarse resolutions read f x f finer samples per output pixel: keep blocks small.
        size = max(8, block_size // max(pa.factor, pb.factor))
        windows = list(grid.blocks(size))
        reader_a.expect(windows)
        reader_b.expect(windows)
        all_tags = {"CHANGE": "1 - cosine similarity of renormalised vectors, 0..2"}
        all_tags.update(tags or {})
        with open_float_output(output, grid, ("change",), NODATA_CHANGE, all_tags) as ds:
            for i, window in enumerate(windows):
                progress.check_cancelled()
                change = change_of_blocks(reader_a.read(window), reader_b.read(window))
                ok = np.isfinite(change)
                values = change[ok]
                hist.add(values)
                above += int(np.count_nonzero(values > threshold))
                ds.write(np.where(ok, change, np.float32(NODATA_CHANGE))[None], window=rio_window(window))
                progress.set_progress(100.0 * (i + 1) / len(windows))
            progress.check_cancelled()
    return ChangeSummary(
        path=str(output),
        grid=grid,
        label_a=source_a.label,
        label_b=source_b.label,
        valid_pixels=hist.total,
        p50=hist.percentile(50),
        p90=hist.percentile(90),
        p99=hist.percentile(99),
        threshold=float(threshold),
        above_pixels=above,
    )


def _raster_year(path: str) -> str | None:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.tags().get("EMBEDDINGS_YEAR")


def change_map(
    output: str,
    source: str | None = None,
    year_a: int | None = None,
    year_b: int | None = None,
    extent: tuple[float, float, float, float] | None = None,
    extent_crs: str | None = None,
    target_crs: str | None = None,
    resolution_m: float = 10.0,
    input_a: str | None = None,
    input_b: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    min_area_m2: float | None = DEFAULT_MIN_AREA_M2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
    block_size: int = DEFAULT_BLOCK,
) -> ChangeSummary:
    """The change map between two years of a collection, or between two embedding rasters.

    With ``input_a``/``input_b`` the grid is ``input_a``'s and ``input_b`` is read onto it;
    otherwise ``year_a`` and ``year_b`` of ``source`` are read onto the grid of ``extent``.
    When ``min_area_m2`` is not None, the connected areas above ``threshold`` are returned
    in ``summary.areas`` (polygons in the output's CRS, largest first).
    """
    progress = progress or Progress()
    if not (0.0 <= float(threshold) <= 2.0) or math.isnan(float(threshold)):
        raise EmbeddingsError("The change threshold must be between 0 and 2 (1 - cosine); 0.25 is a good start.")
    if not str(output).lower().endswith((".tif", ".tiff")):
        raise EmbeddingsError("The change map must be written as a GeoTIFF (.tif); choose another output file.")
    if bool(input_a) != bool(input_b):
        given, missing = ("INPUT_A", "INPUT_B") if input_a else ("INPUT_B", "INPUT_A")
        raise EmbeddingsError(
            f"{given} is set but {missing} is not: give two embedding rasters to compare, "
            "or none and two years of a collection."
        )
    polygons = min_area_m2 is not None
    change_end = 85.0 if polygons else 100.0
    if input_a:
        for p in (input_a, input_b):
            if not Path(p).exists():
                raise EmbeddingsError(f"The embedding raster {p} does not exist; choose an existing file.")
        grid = grid_of_raster(input_a)
        check_size(grid, max_pixels)
        src_a = RasterSource(input_a)
        try:
            src_b = RasterSource(input_b)
        except BaseException:
            src_a.close()
            raise
        label_a = _raster_year(input_a) or Path(input_a).stem
        label_b = _raster_year(input_b) or Path(input_b).stem
        tags = {"EMBEDDINGS_INPUT_A": str(input_a), "EMBEDDINGS_INPUT_B": str(input_b)}
        step = progress
    else:
        if year_a is None or year_b is None:
            raise EmbeddingsError("Choose two years to compare (YEAR_A and YEAR_B), or two embedding rasters.")
        if int(year_a) == int(year_b):
            raise EmbeddingsError(
                f"Year A and year B are both {int(year_a)}; choose two different years to see what changed."
            )
        if extent is None:
            raise EmbeddingsError(
                "Choose an extent to map (for example the map canvas extent), or two embedding rasters."
            )
        grid = grid_for_extent(extent, extent_crs or "EPSG:4326", target_crs, resolution_m)
        check_size(grid, max_pixels)
        collection = open_collection(source, progress.sub(0, 5))
        src_a = CollectionSource(collection, int(year_a))
        src_b = CollectionSource(collection, int(year_b))
        label_a, label_b = str(int(year_a)), str(int(year_b))
        tags = {"EMBEDDINGS_SOURCE": src_a.label, "EMBEDDINGS_YEAR_A": label_a, "EMBEDDINGS_YEAR_B": label_b}
        step = progress.sub(5, 100)
    try:
        summary = compute_change(
            src_a,
            src_b,
            grid,
            output,
            threshold,
            step.sub(0, change_end),
            tags,
            block_size,
        )
    finally:
        src_a.close()
        src_b.close()
    summary.label_a, summary.label_b = label_a, label_b
    if polygons:
        from .polygons import areas_above

        summary.areas = areas_above(output, threshold, float(min_area_m2), step.sub(change_end, 100))
    return summary
