"""Load embeddings for an extent into one GeoTIFF on a clean grid."""

from __future__ import annotations

from dataclasses import dataclass

from .collection import open_collection
from .errors import EmbeddingsError
from .grid import DEFAULT_MAX_PIXELS, Grid, check_size, grid_for_extent
from .output import open_embedding_output
from .progress import Progress
from .reader import CollectionSource, EmbeddingSource, MosaicReader, RasterSource


@dataclass
class LoadResult:
    path: str
    grid: Grid
    valid_pixels: int
    band_names: list


def open_source(
    source: str | None = None, year: int | None = None, input_path: str | None = None, progress: Progress | None = None
) -> EmbeddingSource:
    """A collection for one year (``source`` + ``year``) or an embedding raster (``input_path``)."""
    if input_path:
        return RasterSource(input_path)
    if year is None:
        raise EmbeddingsError("Choose a year of the collection, or an embedding raster as input.")
    collection = open_collection(source, progress)
    return CollectionSource(collection, int(year))


def rio_window(window):
    from rasterio.windows import Window as RioWindow

    return RioWindow(window.col_off, window.row_off, window.width, window.height)


def load_embeddings(
    source: str | None,
    year: int,
    extent: tuple[float, float, float, float],
    extent_crs: str,
    output: str,
    target_crs: str | None = None,
    resolution_m: float = 10.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
) -> LoadResult:
    """Read ``year`` of a collection for ``extent`` and write a 64-band int8 GeoTIFF.

    The output keeps the AEF quantisation (int8, -128 no-data, band names A00..A63),
    on a north-up grid in ``target_crs`` (default: the UTM zone of the extent's centre)
    snapped to ``resolution_m``. Memory stays at one block whatever the extent.
    """
    progress = progress or Progress()
    grid = grid_for_extent(extent, extent_crs, target_crs, resolution_m)
    check_size(grid, max_pixels)
    src = open_source(source, year, progress=progress.sub(0, 5))
    valid = 0
    try:
        with MosaicReader(src, grid, progress.sub(5, 100)) as reader:
            plan = reader.plan
            progress.info(plan.describe())
            tags = {"EMBEDDINGS_SOURCE": src.label, "EMBEDDINGS_YEAR": str(year)}
            with open_embedding_output(output, grid, plan.band_names, tags) as ds:
                for block in reader.blocks():
                    ds.write(block.codes(), window=rio_window(block.window))
                    valid += int(block.valid.sum())
    finally:
        src.close()
    progress.info(
        f"Wrote {grid.width} x {grid.height} pixels ({valid:,} with data, "
        f"{100.0 * valid / max(grid.pixels, 1):.1f} %) to {output}."
    )
    return LoadResult(str(output), grid, valid, plan.band_names)
