"""Load embeddings for an extent into one GeoTIFF on a clean grid."""

from __future__ import annotations

from dataclasses import dataclass

from .grid import Grid, GridSpec
from .output import open_embedding_output
from .pipeline import reading, stream, windows_for
from .progress import Progress
from .source import SourceSpec, open_on_grid


@dataclass(frozen=True)
class LoadRequest:
    """One year of a collection (``source``) for the extent of ``grid``, written to ``output``."""

    source: SourceSpec
    grid: GridSpec
    output: str


@dataclass
class LoadResult:
    path: str
    grid: Grid
    valid_pixels: int
    band_names: list[str]


def load_embeddings(request: LoadRequest, progress: Progress | None = None) -> LoadResult:
    """Read one year of a collection for an extent and write a 64-band int8 GeoTIFF.

    The output keeps the AEF quantisation (int8, -128 no-data, band names A00..A63),
    on a north-up grid in the target CRS (default: the UTM zone of the extent's centre)
    snapped to the resolution. Memory stays at one block whatever the extent.
    """
    progress = progress or Progress()
    src, grid = open_on_grid(request.source, request.grid, progress.sub(0, 5))
    valid = 0
    with src, reading([src], grid) as (reader,):
        plan = reader.plan
        progress.info(plan.describe())
        tags = {"EMBEDDINGS_SOURCE": src.label, "EMBEDDINGS_YEAR": str(request.source.year)}
        with open_embedding_output(request.output, grid, plan.band_names, tags) as out:
            for window, (block,) in stream([reader], windows_for(grid, [reader]), progress.sub(5, 100)):
                out.write(block.codes(), window)
                valid += int(block.valid.sum())
    progress.info(
        f"Wrote {grid.width} x {grid.height} pixels ({valid:,} with data, "
        f"{100.0 * valid / max(grid.pixels, 1):.1f} %) to {request.output}."
    )
    return LoadResult(str(request.output), grid, valid, plan.band_names)
