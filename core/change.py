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
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .arrays import Array
from .block import CHUNK_PIXELS, Block
from .dask_run import TASK_PX, ClusterRun, check_whole_raster, client_pixel_limit, run_tasks
from .errors import EmbeddingsError
from .grid import DEFAULT_BLOCK, Grid, GridSpec, Window, crs_name, resolve_grid
from .output import open_float_output
from .pipeline import reading, stream, windows_for
from .polygons import Area, areas_above
from .progress import Progress
from .reader import MosaicReader
from .source import EmbeddingSource, RasterSource, SourceSpec, open_years
from .stats import StreamingHistogram

NODATA_CHANGE = -9999.0
DEFAULT_THRESHOLD = 0.25
DEFAULT_MIN_AREA_M2 = 500.0


@dataclass(frozen=True)
class ChangeRequest:
    """Two years of a collection on the grid of ``grid``, or two embedding rasters
    (``input_a``/``input_b``: the map then has ``input_a``'s grid). ``min_area_m2`` None: no
    change polygons."""

    output: str
    grid: GridSpec = GridSpec()
    collection: str | None = None
    year_a: int | None = None
    year_b: int | None = None
    input_a: str | None = None
    input_b: str | None = None
    threshold: float = DEFAULT_THRESHOLD
    min_area_m2: float | None = DEFAULT_MIN_AREA_M2
    block_size: int = DEFAULT_BLOCK
    report: str | None = None  # an HTML change report to write (core.report)
    scheduler: str | None = None  # a Dask scheduler's address (core.dask_run); None = this computer
    task_px: int = TASK_PX


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
    areas: list[Area] = field(default_factory=list)  # largest first
    histogram: StreamingHistogram = field(default_factory=StreamingHistogram)
    report: str | None = None

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


def change_of_blocks(a: Block, b: Block) -> Array:
    """float32 (h, w) 1 - cos(a, b) in [0, 2]; NaN where either block has no data.

    A zero vector has no direction, so it counts as no data rather than as a cosine.
    """
    h, w = a.valid.shape
    n = h * w
    out = np.full(n, np.nan, dtype=np.float32)
    both = (a.valid & b.valid).ravel()
    # Contiguous runs of pixels (slices, not gathers) small enough to stay in cache; pixels
    # without data are computed too (as NaN) and masked at the end, which is cheaper than
    # gathering the valid ones.
    for start in range(0, n, CHUNK_PIXELS):
        sl = slice(start, min(n, start + CHUNK_PIXELS))
        ok = both[sl]
        if not ok.any():
            continue
        va = a.chunk_directions(sl)
        vb = b.chunk_directions(sl)
        # 1 - a.b / (|a| |b|) in one pass over each chunk: the three sums, then per pixel.
        dot = np.einsum("bn,bn->n", va, vb)
        aa = np.einsum("bn,bn->n", va, va)
        bb = np.einsum("bn,bn->n", vb, vb)
        ok = ok & (aa > 0) & (bb > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            change = 1.0 - dot / np.sqrt(aa * bb)
        np.clip(change, 0.0, 2.0, out=change)
        out[sl] = np.where(ok, change, np.float32(np.nan))
    return out.reshape(h, w)


@dataclass
class ChangeTally:
    """What the change pass adds up besides the raster: tallies of separate windows (or of
    separate tasks, see ``change_task``) add up to the whole map's."""

    threshold: float
    hist: StreamingHistogram = field(default_factory=lambda: StreamingHistogram(0.0, 2.0))
    above: int = 0

    def window(self, block_a: Block, block_b: Block) -> Array:
        """The raster block of one window (no-data -9999), added to the tally."""
        change = change_of_blocks(block_a, block_b)
        ok = np.isfinite(change)
        values = change[ok]
        self.hist.add(values)
        self.above += int(np.count_nonzero(values > self.threshold))
        return np.where(ok, change, np.float32(NODATA_CHANGE))

    def merge(self, part: dict[str, Any]) -> None:
        """Add a task's tallies (see ``change_task``)."""
        self.hist.add_counts(*part["hist"])
        self.above += int(part["above"])


def change_task(
    readers: Sequence[MosaicReader], grid: Grid, windows: Sequence[Window], params: dict[str, Any]
) -> dict[str, Any]:
    """A Dask task's windows of the change map (core.dask_tasks): their blocks and tallies."""
    tally = ChangeTally(float(params["threshold"]))
    blocks = [
        ((w.col_off, w.row_off, w.width, w.height), tally.window(a, b))
        for w, (a, b) in stream(readers, windows, Progress())
    ]
    return {"blocks": blocks, "hist": tally.hist.nonzero(), "above": tally.above}


def compute_change(
    source_a: EmbeddingSource,
    source_b: EmbeddingSource,
    grid: Grid,
    output: str,
    threshold: float = DEFAULT_THRESHOLD,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
    block_size: int = DEFAULT_BLOCK,
    cluster: ClusterRun | None = None,
) -> ChangeSummary:
    """Write 1 - cos(a, b) on ``grid`` to a float32 GeoTIFF and summarise it.

    Both sources are read onto the same grid (nearest neighbour on codes, mosaicked) in
    pairs of blocks; no-data (-9999) wherever either has none. Memory holds two blocks of
    int8 codes and one block of output, whatever the grid's size. With ``cluster`` the same
    windows are computed by Dask workers (core.dask_run) and written here as they arrive.
    """
    progress = progress or Progress()
    tally = ChangeTally(float(threshold))
    with reading([source_a, source_b], grid) as readers:
        pa, pb = (r.plan for r in readers)
        if pa.bands != pb.bands:
            raise EmbeddingsError(
                f"{source_a.label} has {pa.bands} bands and {source_b.label} has {pb.bands}; "
                "compare two embeddings of the same product."
            )
        progress.info(
            f"Planned: {grid.width} x {grid.height} = {grid.pixels:,} pixels at {grid.resolution:g} m in "
            f"{crs_name(grid.crs)}; A: {pa.reads()}; B: {pb.reads()}."
        )
        all_tags = {"CHANGE": "1 - cosine similarity of renormalised vectors, 0..2", **(tags or {})}
        with open_float_output(output, grid, ("change",), NODATA_CHANGE, all_tags) as out:
            windows = windows_for(grid, readers, block_size)
            if cluster is not None:
                params = {"threshold": float(threshold)}
                run_tasks(cluster, "change", params, grid, readers, windows, out, tally.merge, progress)
            else:
                for window, (block_a, block_b) in stream(readers, windows, progress):
                    out.write(tally.window(block_a, block_b)[None], window)
            progress.check_cancelled()
    hist = tally.hist
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
        above_pixels=tally.above,
        histogram=hist,
    )


def _check(request: ChangeRequest) -> None:
    threshold = float(request.threshold)
    if math.isnan(threshold) or not (0.0 <= threshold <= 2.0):
        raise EmbeddingsError("The change threshold must be between 0 and 2 (1 - cosine); 0.25 is a good start.")
    if not str(request.output).lower().endswith((".tif", ".tiff")):
        raise EmbeddingsError("The change map must be written as a GeoTIFF (.tif); choose another output file.")
    if request.report and not str(request.report).lower().endswith((".html", ".htm")):
        raise EmbeddingsError("The change report is an HTML file (.html); choose another report file.")
    if bool(request.input_a) != bool(request.input_b):
        given, missing = ("INPUT_A", "INPUT_B") if request.input_a else ("INPUT_B", "INPUT_A")
        raise EmbeddingsError(
            f"{given} is set but {missing} is not: give two embedding rasters to compare, "
            "or none and two years of a collection."
        )
    if not request.input_a:
        if request.year_a is None or request.year_b is None:
            raise EmbeddingsError("Choose two years to compare (YEAR_A and YEAR_B), or two embedding rasters.")
        if int(request.year_a) == int(request.year_b):
            raise EmbeddingsError(
                f"Year A and year B are both {int(request.year_a)}; choose two different years to see what changed."
            )


def change_map(request: ChangeRequest, progress: Progress | None = None) -> ChangeSummary:
    """The change map between two years of a collection, or between two embedding rasters.

    With ``input_a``/``input_b`` the grid is ``input_a``'s and ``input_b`` is read onto it;
    otherwise ``year_a`` and ``year_b`` of the collection are read onto the grid of the extent.
    When ``min_area_m2`` is not None, the connected areas above the threshold are returned
    in ``summary.areas`` (polygons in the output's CRS, largest first).
    """
    progress = progress or Progress()
    _check(request)
    change_end = 85.0 if request.min_area_m2 is not None or request.report else 100.0
    spec = request.grid
    if request.scheduler:
        spec = replace(spec, max_pixels=client_pixel_limit(request.output))
    with ExitStack() as stack:
        if request.input_a and request.input_b:
            rasters = [stack.enter_context(RasterSource(p)) for p in (request.input_a, request.input_b)]
            sources: list[EmbeddingSource] = list(rasters)
            grid = resolve_grid(GridSpec(max_pixels=spec.max_pixels), rasters[0].native_grid())
            specs = tuple(SourceSpec(raster=p) for p in (request.input_a, request.input_b))
            labels = [r.year_tag or Path(r.path).stem for r in rasters]
            tags = {"EMBEDDINGS_INPUT_A": str(request.input_a), "EMBEDDINGS_INPUT_B": str(request.input_b)}
            step = progress
        else:
            assert request.year_a is not None and request.year_b is not None  # _check
            grid = resolve_grid(spec, alternative=", or two embedding rasters")
            years = [int(request.year_a), int(request.year_b)]
            specs = tuple(SourceSpec(request.collection, y) for y in years)
            sources = [stack.enter_context(s) for s in open_years(request.collection, years, progress.sub(0, 5))]
            labels = [str(y) for y in years]
            tags = {
                "EMBEDDINGS_SOURCE": sources[0].label,
                "EMBEDDINGS_YEAR_A": labels[0],
                "EMBEDDINGS_YEAR_B": labels[1],
            }
            step = progress.sub(5, 100)
        cluster = None
        if request.scheduler:
            if request.min_area_m2 is not None or request.report:
                check_whole_raster(grid, request.grid.max_pixels, "change areas (polygons and the report's areas)")
            cluster = ClusterRun(request.scheduler, specs, request.task_px)
        summary = compute_change(
            sources[0],
            sources[1],
            grid,
            request.output,
            request.threshold,
            step.sub(0, change_end),
            tags,
            request.block_size,
            cluster,
        )
    summary.label_a, summary.label_b = labels
    if request.min_area_m2 is not None:
        summary.areas = areas_above(
            request.output, request.threshold, float(request.min_area_m2), step.sub(change_end, 98)
        )
    if request.report:
        _write_report(request, summary, sources[0].label if not request.input_a else ", ".join(labels), step)
    step.set_progress(100.0)
    return summary


def _write_report(request: ChangeRequest, summary: ChangeSummary, source_label: str, progress: Progress) -> None:
    """The HTML report of a two-year map; its areas are the polygons' (or, without them, the
    areas above the threshold of the default minimum size)."""
    # core.report draws on this module's constants: imported here, not at the top.
    from .report import area_rows, grid_facts, write_change_report

    areas = summary.areas
    if request.min_area_m2 is None:
        areas = areas_above(request.output, request.threshold, DEFAULT_MIN_AREA_M2, progress.sub(85, 98))
    pair = f"{summary.label_a} and {summary.label_b}"
    summary.report = write_change_report(
        str(request.report),
        summary.histogram,
        summary.pixel_area_m2,
        summary.threshold,
        title=f"Change {summary.label_a} - {summary.label_b}",
        facts=[("Source", source_label), ("Years", pair), *grid_facts(summary.grid)],
        areas=area_rows(areas, summary.grid.crs),
        compared=pair,
    )
