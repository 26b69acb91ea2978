"""One raster of a source (a collection tile or an input raster): opened lazily, described once."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from pyproj import Geod

from .arrays import Array
from .blocks import _OWNERS, CACHE, TileBlocks
from .errors import EmbeddingsError
from .grid import Bounds, Grid, crs_from, north_up_grid
from .quant import NODATA
from .tiff import Layout

AEF_TAG = "AEF_QUANTIZATION"


@dataclass(frozen=True)
class TileMeta:
    """What the reader needs to know of a raster, read from its header once."""

    crs: str
    transform: Affine
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    quantised: bool  # AEF int8 codes (-128 no-data), else float values
    descriptions: list[str]
    overviews: list[int]  # decimation factors of the overview levels
    tags: dict[str, str]

    @property
    def rotated(self) -> bool:
        return bool(self.transform.b or self.transform.d)

    @property
    def native_res(self) -> float:
        """Pixel size in metres; in a geographic CRS (degrees), measured on the ellipsoid at the
        raster's centre (at 52 N a pixel of 0.0001 degree is about 6.9 m by 11.1 m)."""
        t = self.transform
        size = math.sqrt(abs(t.a * t.e - t.b * t.d))
        crs = crs_from(self.crs)
        if not crs.is_geographic:
            return size
        geod = crs.get_geod() or Geod(ellps="WGS84")
        x0, y0 = t * (self.width / 2, self.height / 2)
        x1, y1 = t * (self.width / 2 + 1, self.height / 2)
        x2, y2 = t * (self.width / 2, self.height / 2 + 1)
        across = geod.inv(x0, y0, x1, y1)[2]
        down = geod.inv(x0, y0, x2, y2)[2]
        return float(math.sqrt(abs(across * down)))


def gdal_message(exc: BaseException) -> str:
    """The first line of a GDAL/rasterio error, shortened for a sentence."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text if len(text) < 240 else text[:240] + "..."


def _quantisation(dtype: str, tags: dict[str, str], nodata: float | None) -> tuple[bool, float | None]:
    """Whether a raster holds AEF codes (int8, or integers tagged so), and its no-data (-128 for
    codes when the file declares none)."""
    quantised = dtype == "int8" or (AEF_TAG in tags and bool(np.issubdtype(np.dtype(dtype), np.integer)))
    return quantised, NODATA if quantised and nodata is None else nodata


class Tile:
    """A raster opened lazily; ``close`` releases it (it reopens on demand).

    GeoTIFFs the reader can decode itself (``core.tiff``: the product's layout and most
    embedding exports) are read block by block through ``core.blocks``: the header once, each
    block fetched and decoded once, on several threads. Other rasters go through GDAL, one
    rasterio dataset per overview level, one reader at a time."""

    def __init__(self, gdal_path: str, label: str, crs: str | None = None, bounds: Bounds | None = None):
        self.gdal_path = gdal_path
        self.label = label
        self._crs = crs
        self._bounds = bounds  # pixel-array bounds in the tile's CRS, if known (from an index)
        self._levels: dict[int, Any] = {}
        self._meta: TileMeta | None = None
        self._blocks: TileBlocks | None | bool = False  # False: not open (or not tried) yet
        self._layout: Layout | None = None  # the parsed header, kept across close and reopen
        self._gdal_only = False
        self._lock = threading.RLock()
        self._own_meta = False
        self._owner = next(_OWNERS)  # this tile's key in the block cache
        # Set by the reader before each window: whether a later window needs a block (level,
        # block row, block column), so that a block used here in part is kept for it; None: keep.
        self.keep_block: Callable[[int, int, int], bool] | None = None

    def blocks(self) -> TileBlocks | None:
        """The block reader of this file, or None when GDAL reads it."""
        with self._lock:
            if self._blocks is False and not self._gdal_only:
                self._blocks = TileBlocks.open(self.gdal_path, self.label, self._layout, self._owner)
                if isinstance(self._blocks, TileBlocks):
                    self._layout = self._blocks.layout
                else:
                    self._gdal_only = True
            return self._blocks if isinstance(self._blocks, TileBlocks) else None

    def layout(self) -> Layout | None:
        """The parsed header when the block reader reads this file (kept across close: asking
        for it does not reopen a closed tile), else None."""
        with self._lock:
            if self._layout is None and not self._gdal_only:
                self.blocks()
            return None if self._gdal_only else self._layout

    def dataset(self, level: int = 0) -> Any:
        """The open rasterio dataset of an overview level (0 = full resolution)."""
        with self._lock:
            ds = self._levels.get(level)
            if ds is None:
                import rasterio

                from .remote import gdal_http_options

                try:
                    # Each thread needs the HTTP settings (User-Agent...) entered on it.
                    with rasterio.Env(**gdal_http_options()):
                        ds = (
                            rasterio.open(self.gdal_path)
                            if level == 0
                            else rasterio.open(self.gdal_path, overview_level=level - 1)
                        )
                except Exception as exc:
                    raise EmbeddingsError(
                        f"The tile {self.label} cannot be opened ({gdal_message(exc)}); check that it "
                        "exists and is a GeoTIFF, or that the server is reachable."
                    ) from None
                self._levels[level] = ds
            return ds

    def is_open(self) -> bool:
        """True while the tile holds an open file (or GDAL dataset)."""
        return bool(self._levels) or isinstance(self._blocks, TileBlocks)

    def close(self, drop_cache: bool = True) -> None:
        """Close the file; ``drop_cache=False`` keeps its decoded blocks in the (bounded) block
        cache for when it reopens (after planning, or between an exemplar read and the map)."""
        with self._lock:
            for ds in self._levels.values():
                ds.close()
            self._levels.clear()
            if isinstance(self._blocks, TileBlocks):
                self._blocks.close(drop_cache)
                self._blocks = False
            elif drop_cache:
                CACHE.drop(self._owner)

    @property
    def meta(self) -> TileMeta:
        with self._lock:
            if self._meta is None:
                own = self._meta_from_layout()
                self._own_meta = own is not None
                self._meta = own or self._meta_from_gdal()
            return self._meta

    def _meta_from_layout(self) -> TileMeta | None:
        """The description from the header the block reader parsed (no GDAL open: for a remote
        tile the header is fetched once), when it says everything GDAL would."""
        blocks = self.blocks()
        if blocks is None:
            return None
        lay = blocks.layout
        crs = self._crs or (f"EPSG:{lay.epsg}" if lay.epsg else None)
        if crs is None or lay.transform is None or lay.pixel_is_point:
            return None
        base = lay.levels[0]
        dtype = str(base.dtype.newbyteorder("="))
        dtype = {"<i1": "int8", "|i1": "int8"}.get(dtype, np.dtype(dtype).name)
        quantised, nodata = _quantisation(dtype, lay.tags, lay.nodata)
        return TileMeta(
            crs=crs,
            transform=lay.transform,
            width=base.width,
            height=base.height,
            count=base.bands,
            dtype=dtype,
            nodata=nodata,
            quantised=quantised,
            descriptions=list(lay.descriptions),
            overviews=[int(round(base.width / lv.width)) for lv in lay.levels[1:]],
            tags=dict(lay.tags),
        )

    def _meta_from_gdal(self) -> TileMeta:
        ds = self.dataset(0)
        if ds.crs is None:
            raise EmbeddingsError(f"The raster {self.label} has no coordinate reference system.")
        dtype = str(ds.dtypes[0])
        tags = dict(ds.tags())
        quantised, nodata = _quantisation(dtype, tags, ds.nodata)
        return TileMeta(
            crs=self._crs or ds.crs.to_string(),
            transform=ds.transform,
            width=ds.width,
            height=ds.height,
            count=ds.count,
            dtype=dtype,
            nodata=nodata,
            quantised=quantised,
            descriptions=[d or "" for d in ds.descriptions],
            overviews=list(ds.overviews(1)) if ds.count else [],
            tags=tags,
        )

    @property
    def crs(self) -> str:
        return self._crs or self.meta.crs

    @property
    def bounds(self) -> Bounds:
        if self._bounds is None:
            m = self.meta
            t = m.transform
            xs = [t.c, t.c + t.a * m.width + t.b * m.height]
            ys = [t.f, t.f + t.d * m.width + t.e * m.height]
            self._bounds = (min(xs), min(ys), max(xs), max(ys))
        return self._bounds

    def north_up_grid(self) -> Grid:
        """The raster's own pixels as a north-up grid."""
        m = self.meta
        return north_up_grid(m.crs, m.transform, m.width, m.height, self.label)

    def level_for(self, wanted_factor: int) -> tuple[int, int]:
        """(level, factor): the coarsest overview whose factor divides into ``wanted_factor``."""
        if wanted_factor <= 1:
            return 0, 1
        best = (0, 1)
        for i, f in enumerate(self.meta.overviews):
            if f <= wanted_factor and f > best[1]:
                best = (i + 1, f)
        return best

    def block_shape(self, level: int) -> tuple[int, int] | None:
        """(rows, columns) of the level's internal blocks when the block reader reads it."""
        layout = self.layout()
        if layout is None:
            return None
        lv = layout.levels[level]
        return lv.block_height, lv.block_width

    def direct(self, out_dtype: np.dtype[Any]) -> bool:
        """True when ``read_into`` can write into an array of ``out_dtype`` without conversion
        rules of its own (codes into codes, floats into floats)."""
        if self.blocks() is None:
            return False
        dt = np.dtype(self.meta.dtype)
        if self.meta.quantised:
            return dt == np.int8 and out_dtype == np.int8
        return dt.kind == "f" and np.dtype(out_dtype).kind == "f"

    def read_into(self, level: int, rows: tuple[int, int], cols: tuple[int, int], out: Array) -> None:
        """Like ``read``, into ``out`` (any view of shape (bands, r1 - r0, c1 - c0))."""
        blocks = self.blocks()
        if blocks is None:
            out[...] = self.read(level, rows, cols)
        else:
            blocks.read_into(level, rows, cols, out, self.keep_block, crop=True)

    def read(self, level: int, rows: tuple[int, int], cols: tuple[int, int]) -> Array:
        """All bands of rows [r0, r1) x cols [c0, c1) at an overview level, as stored."""
        blocks = self.blocks()
        if blocks is not None:
            lv = blocks.layout.levels[level]
            data = np.empty((lv.bands, rows[1] - rows[0], cols[1] - cols[0]), dtype=lv.dtype.newbyteorder("="))
            blocks.read_into(level, rows, cols, data, self.keep_block)
        else:
            import rasterio

            from .remote import gdal_http_options

            with self._lock, rasterio.Env(**gdal_http_options()):
                ds = self.dataset(level)
                try:
                    data = ds.read(window=((rows[0], rows[1]), (cols[0], cols[1])))
                except Exception as exc:
                    raise EmbeddingsError(
                        f"The tile {self.label} could not be read ({gdal_message(exc)}); it may be truncated "
                        "or the server may have failed. Try again, or remove the tile from the collection."
                    ) from None
        if data.dtype != np.int8 and self.meta.quantised:
            data = data.astype(np.int16).clip(-128, 127).astype(np.int8)
        return np.asarray(data)

    def level_transform(self, level: int) -> Affine:
        if level == 0:
            return self.meta.transform
        layout = self.layout()
        m = self.meta
        if layout is not None and self._own_meta:
            lv = layout.levels[level]
            return m.transform * Affine.scale(m.width / lv.width, m.height / lv.height)
        return self.dataset(level).transform

    def level_shape(self, level: int) -> tuple[int, int]:
        if level == 0:
            return self.meta.height, self.meta.width
        layout = self.layout()
        if layout is not None:
            lv = layout.levels[level]
            return lv.height, lv.width
        ds = self.dataset(level)
        return int(ds.height), int(ds.width)

    def looks_like_image(self) -> bool:
        """True for photos and maps: unsigned bytes/shorts with colour bands, or a palette.

        Embeddings are signed int8 (AEF) or floats; an RGB(A) or paletted integer raster
        without the AEF tag is almost certainly an image chosen by mistake.
        """
        m = self.meta
        if m.quantised or not np.issubdtype(np.dtype(m.dtype), np.integer):
            return False
        colours = {ci.name for ci in self.dataset(0).colorinterp}
        if colours & {"red", "green", "blue", "alpha", "palette"}:
            return True
        return m.dtype in ("uint8", "uint16") and m.count <= 4
