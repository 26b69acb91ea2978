"""Where embeddings come from: one year of a collection, or one embedding raster.

A source knows what it is: its tiles for a grid, the CRS and grid of its native pixels around
a place, the pixel under a point, and the lifetime of the readers made on it (``reader``).
``open_source`` makes one from what the user chose (``SourceSpec``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from .arrays import Array
from .collection import Collection, TileRef, open_collection
from .errors import EmbeddingsError, NoCoverage
from .grid import (
    Bounds,
    Grid,
    GridSpec,
    Window,
    crop_grid,
    grid_for_extent,
    resolve_grid,
    same_crs,
    transformer,
    utm_epsg,
)
from .progress import Progress
from .reader import MosaicReader
from .tile import Tile

S = TypeVar("S", bound="EmbeddingSource")


@dataclass(frozen=True)
class SourceSpec:
    """A collection (index file, its folder or URL; empty = the public product) and a year, or
    an embedding raster (``raster``), which then wins."""

    collection: str | None = None
    year: int | None = None
    raster: str | None = None


class EmbeddingSource:
    """Base class of the sources; use as a context manager (closes the tiles)."""

    label = "embeddings"

    def tiles_for(self, grid: Grid) -> list[Tile]:
        """The tiles that may hold pixels of ``grid``."""
        raise NotImplementedError

    def native_grid(self) -> Grid | None:
        """The source's own pixels as one grid (an input raster), or None (a mosaic of tiles)."""
        return None

    def local_crs(self, x: float, y: float, crs: str) -> str:
        """The CRS of the native pixels at a point given in ``crs``."""
        raise NotImplementedError

    def grid_around(self, bounds: Bounds, crs: str) -> Grid | None:
        """The native pixels around ``bounds`` given in ``local_crs``; None when off the source."""
        raise NotImplementedError

    def reader(self, grid: Grid, progress: Progress | None = None) -> MosaicReader:
        """A reader of this source onto ``grid`` (a context manager; ``NoCoverage`` on entry
        when no tile covers the grid)."""
        return MosaicReader(self.label, self.tiles_for(grid), grid, progress)

    def pixel_at(self, x: float, y: float, crs: str) -> tuple[Array, bool] | None:
        """(de-quantized values (bands,), valid) of the native pixel under a point given in
        ``crs``, or None where the source has no tile."""
        local = self.local_crs(x, y, crs)
        lx, ly = transformer(crs, local).transform(x, y)
        if not (math.isfinite(lx) and math.isfinite(ly)):
            return None
        grid = self.grid_around((lx, ly, lx, ly), local)
        if grid is None:
            return None
        row, col = grid.index_of(lx, ly)
        row, col = min(max(row, 0), grid.height - 1), min(max(col, 0), grid.width - 1)
        try:
            with self.reader(grid) as reader:
                block = reader.read(Window(col, row, 1, 1))
        except NoCoverage:
            return None
        return block.values()[:, 0, 0], bool(block.valid[0, 0])

    def close(self) -> None:
        """Release the open tiles (they reopen on demand)."""

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class CollectionSource(EmbeddingSource):
    """The tiles of one year of a collection, native pixels at 10 m in each tile's UTM zone."""

    def __init__(self, collection: Collection, year: int):
        collection.check_year(year)
        self.collection = collection
        self.year = int(year)
        self.label = f"{collection.label} ({year})"
        self._tiles: dict[str, Tile] = {}

    def _tile(self, ref: TileRef) -> Tile:
        tile = self._tiles.get(ref.location)
        if tile is None:
            tile = Tile(ref.gdal_path, ref.location, ref.crs, ref.utm_bounds)
            self._tiles[ref.location] = tile
        return tile

    def tiles_for(self, grid: Grid) -> list[Tile]:
        w, s, e, n = grid.bounds_in("EPSG:4326")
        # Footprints in the index are clipped to the UTM zone while the pixels run past
        # it: pad the query so that tiles already in the target CRS are found near seams.
        pad = 0.02 + 0.01 * max(e - w, n - s)
        return [self._tile(ref) for ref in self.collection.query(self.year, w - pad, s - pad, e + pad, n + pad)]

    def local_crs(self, x: float, y: float, crs: str) -> str:
        lon, lat = transformer(crs, "EPSG:4326").transform(x, y)
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise EmbeddingsError("A place cannot be put on Earth; check its layer's CRS.")
        return utm_epsg(lon, lat)

    def grid_around(self, bounds: Bounds, crs: str) -> Grid | None:
        x0, y0, x1, y1 = bounds
        return grid_for_extent((x0 - 1e-3, y0 - 1e-3, x1 + 1e-3, y1 + 1e-3), crs, crs, 10.0)

    def close(self) -> None:
        for t in self._tiles.values():
            t.close()


class RasterSource(EmbeddingSource):
    """Any GDAL raster with two or more bands: int8 (no-data -128) is AEF-quantised."""

    def __init__(self, path: str):
        self.path = str(path)
        self.label = self.path
        if not self.path.startswith("/vsi") and not Path(self.path).exists():
            raise EmbeddingsError(f"The embedding raster {self.path} does not exist; choose an existing file.")
        self.tile = Tile(self.path, self.path)
        m = self.tile.meta
        if m.count < 2:
            raise EmbeddingsError(
                f"The raster {self.path} has {m.count} band; an embedding raster has one band per "
                "dimension (64 for AEF). Choose a raster written by 'Load embeddings for extent' or an export."
            )
        if self.tile.looks_like_image():
            raise EmbeddingsError(
                f"The raster {self.path} looks like an image ({m.count} bands of {m.dtype}), not embeddings; "
                "choose a raster written by 'Load embeddings for extent' or an embedding export."
            )
        self._grid = self.tile.north_up_grid()

    @property
    def year_tag(self) -> str | None:
        """The year ``embeddings:load`` recorded in the raster, if any."""
        return self.tile.meta.tags.get("EMBEDDINGS_YEAR")

    def tiles_for(self, grid: Grid) -> list[Tile]:
        return [self.tile]

    def native_grid(self) -> Grid:
        return self._grid

    def local_crs(self, x: float, y: float, crs: str) -> str:
        return self._grid.crs

    def grid_around(self, bounds: Bounds, crs: str) -> Grid | None:
        x0, y0, x1, y1 = bounds
        pad = self._grid.resolution * 1e-4
        try:
            return crop_grid(self._grid, (x0 - pad, y0 - pad, x1 + pad, y1 + pad), crs)
        except EmbeddingsError:
            return None

    def close(self) -> None:
        self.tile.close()


def open_years(
    collection: str | None, years: Sequence[int], progress: Progress | None = None
) -> list[CollectionSource]:
    """Sources for several years of one collection (its index is opened once)."""
    opened = open_collection(collection, progress)
    distinct = sorted({int(y) for y in years})
    if opened.any_year and len(distinct) > 1:
        raise EmbeddingsError(
            f"The files under {opened.label} carry no year, so they are one collection for any year: "
            f"{distinct[0]} and {distinct[-1]} would read the same embeddings. Put each year's files in a "
            "folder named after the year (2017/, 2024/) or give the years in the file names (tile_2024.tif)."
        )
    return [CollectionSource(opened, int(y)) for y in years]


def open_source(spec: SourceSpec, progress: Progress | None = None) -> EmbeddingSource:
    """The source a ``SourceSpec`` names: its raster, else its collection for its year."""
    if spec.raster:
        return RasterSource(spec.raster)
    if spec.year is None:
        raise EmbeddingsError("Choose a year of the collection, or an embedding raster as input.")
    return open_years(spec.collection, [spec.year], progress)[0]


def open_on_grid(
    spec: SourceSpec, grid: GridSpec, progress: Progress | None = None, alternative: str = ""
) -> tuple[EmbeddingSource, Grid]:
    """The source and the output grid (see ``resolve_grid``): an input raster's own grid cropped
    to the extent, else the extent's grid, resolved before the collection's index is opened, so
    that a wrong or too large extent is refused without downloading anything."""
    if spec.raster:
        raster = RasterSource(spec.raster)
        try:
            return raster, resolve_grid(grid, raster.native_grid(), alternative)
        except BaseException:
            raster.close()
            raise
    resolved = resolve_grid(grid, None, alternative)
    source = open_source(spec, progress)
    if grid.align_to_tiles and resolved.resolution > 10.0:
        try:
            anchor = tile_anchor(source, resolved)
            if anchor is not None:
                resolved = resolve_grid(grid, None, alternative, anchor)
        except BaseException:
            source.close()
            raise
    return source, resolved


def tile_anchor(source: EmbeddingSource, grid: Grid) -> tuple[float, float] | None:
    """The origin of the tile in the grid's CRS that covers most of ``grid`` (its pixel lattice
    is where its overviews' pixels lie), or None when no tile in that CRS covers it."""
    best: tuple[float, Tile] | None = None
    gx0, gy0, gx1, gy1 = grid.bounds
    for tile in source.tiles_for(grid):
        if not same_crs(tile.crs, grid.crs):
            continue
        tx0, ty0, tx1, ty1 = tile.bounds
        overlap = max(0.0, min(gx1, tx1) - max(gx0, tx0)) * max(0.0, min(gy1, ty1) - max(gy0, ty0))
        if overlap > 0 and (best is None or overlap > best[0]):
            best = (overlap, tile)
    if best is None:
        return None
    t = best[1].meta.transform
    return (float(t.c), float(t.f))
