"""One raster of a source (a collection tile or an input raster): opened lazily, described once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from pyproj import Geod

from .arrays import Array
from .errors import EmbeddingsError
from .grid import Bounds, Grid, crs_from, north_up_grid
from .quant import NODATA

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


class Tile:
    """A raster opened lazily, one dataset per overview level; ``close`` releases them (they
    reopen on demand)."""

    def __init__(self, gdal_path: str, label: str, crs: str | None = None, bounds: Bounds | None = None):
        self.gdal_path = gdal_path
        self.label = label
        self._crs = crs
        self._bounds = bounds  # pixel-array bounds in the tile's CRS, if known (from an index)
        self._levels: dict[int, Any] = {}
        self._meta: TileMeta | None = None

    def dataset(self, level: int = 0) -> Any:
        """The open rasterio dataset of an overview level (0 = full resolution)."""
        ds = self._levels.get(level)
        if ds is None:
            import rasterio

            try:
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

    def close(self) -> None:
        for ds in self._levels.values():
            ds.close()
        self._levels.clear()

    @property
    def meta(self) -> TileMeta:
        if self._meta is None:
            ds = self.dataset(0)
            if ds.crs is None:
                raise EmbeddingsError(f"The raster {self.label} has no coordinate reference system.")
            dtype = str(ds.dtypes[0])
            nodata = ds.nodata
            tags = dict(ds.tags())
            quantised = dtype == "int8" or (AEF_TAG in tags and np.issubdtype(np.dtype(dtype), np.integer))
            if quantised and nodata is None:
                nodata = NODATA
            self._meta = TileMeta(
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
        return self._meta

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

    def read(self, level: int, rows: tuple[int, int], cols: tuple[int, int]) -> Array:
        """All bands of rows [r0, r1) x cols [c0, c1) at an overview level, as stored."""
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
        return self.dataset(level).transform if level else self.meta.transform

    def level_shape(self, level: int) -> tuple[int, int]:
        if level == 0:
            return self.meta.height, self.meta.width
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
