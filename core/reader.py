"""Windowed, mosaicking reads of embeddings onto a target grid.

For each output block, the reader maps the centres of the block's pixels into each
candidate tile's own pixel grid and takes the code under each centre (nearest
neighbour on int8 codes, which is the only resampling the AEF quantisation allows).
Tiles in the target CRS come first, then the others in path order; a pixel is taken
from the first tile that has valid data there, so overlapping tiles and tiles of
neighbouring UTM zones mosaic deterministically and without gaps along seams.

Rows are computed from each tile's own transform, so bottom-up tiles (positive y
resolution, as the AEF product is stored) read correctly. No GDAL warping is involved,
so no-data can never turn into the valid code 0.

At a resolution coarser than the tiles, each output pixel averages f x f samples of
de-quantized values (from the overview closest to the resolution when the tiles have
overviews, which hold renormalised means) and renormalises the mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .collection import Collection, TileRef
from .errors import EmbeddingsError, NoCoverage
from .grid import DEFAULT_BLOCK, Grid, Window, crs_from, same_crs, transform_bounds, transformer
from .progress import Progress
from .quant import LUT, NODATA, quantize, renormalise
from .remote import gdal_http_options

GDAL_CACHE_MB = 256
AEF_TAG = "AEF_QUANTIZATION"


def _rasterio():
    import rasterio

    return rasterio


# ----------------------------------------------------------------------------- tiles


class Tile:
    """One raster of a source (a collection tile or an input raster), opened lazily."""

    def __init__(self, gdal_path: str, label: str, crs: str | None = None, bounds=None):
        self.gdal_path = gdal_path
        self.label = label
        self._crs = crs
        self._bounds = bounds  # pixel-array bounds in the tile's CRS, if known
        self._levels: dict[int, object] = {}
        self._meta = None

    # Opening ----------------------------------------------------------------
    def _open(self, level: int = 0):
        ds = self._levels.get(level)
        if ds is None:
            rio = _rasterio()
            try:
                if level == 0:
                    ds = rio.open(self.gdal_path)
                else:
                    ds = rio.open(self.gdal_path, overview_level=level - 1)
            except Exception as exc:
                raise EmbeddingsError(
                    f"The tile {self.label} cannot be opened ({_gdal_message(exc)}); check that it "
                    "exists and is a GeoTIFF, or that the server is reachable."
                ) from None
            self._levels[level] = ds
        return ds

    def close(self) -> None:
        for ds in self._levels.values():
            ds.close()
        self._levels.clear()

    @property
    def meta(self) -> dict:
        if self._meta is None:
            ds = self._open(0)
            if ds.crs is None:
                raise EmbeddingsError(f"The raster {self.label} has no coordinate reference system.")
            t = ds.transform
            dtype = ds.dtypes[0]
            nodata = ds.nodata
            tags = ds.tags()
            quantised = dtype == "int8" or (AEF_TAG in tags and np.issubdtype(np.dtype(dtype), np.integer))
            if quantised and nodata is None:
                nodata = NODATA
            self._meta = {
                "crs": self._crs or ds.crs.to_string(),
                "transform": t,
                "width": ds.width,
                "height": ds.height,
                "count": ds.count,
                "dtype": dtype,
                "nodata": nodata,
                "quantised": quantised,
                "descriptions": list(ds.descriptions),
                "overviews": list(ds.overviews(1)) if ds.count else [],
                "rotated": bool(t.b or t.d),
                "native_res": math.sqrt(abs(t.a * t.e - t.b * t.d)),
            }
        return self._meta

    @property
    def crs(self) -> str:
        return self._crs or self.meta["crs"]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        if self._bounds is None:
            m = self.meta
            t = m["transform"]
            xs = [t.c, t.c + t.a * m["width"] + t.b * m["height"]]
            ys = [t.f, t.f + t.d * m["width"] + t.e * m["height"]]
            self._bounds = (min(xs), min(ys), max(xs), max(ys))
        return self._bounds

    def level_for(self, wanted_factor: int) -> tuple[int, int]:
        """(level, factor): the coarsest overview whose factor divides into ``wanted_factor``."""
        if wanted_factor <= 1:
            return 0, 1
        best = (0, 1)
        for i, f in enumerate(self.meta["overviews"]):
            if f <= wanted_factor and f > best[1]:
                best = (i + 1, f)
        return best

    def read(self, level: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """All bands of rows [r0, r1) x cols [c0, c1) at an overview level, as stored."""
        ds = self._open(level)
        try:
            data = ds.read(window=((rows[0], rows[1]), (cols[0], cols[1])))
        except Exception as exc:
            raise EmbeddingsError(
                f"The tile {self.label} could not be read ({_gdal_message(exc)}); it may be truncated "
                "or the server may have failed. Try again, or remove the tile from the collection."
            ) from None
        if data.dtype != np.int8 and self.meta["quantised"]:
            data = data.astype(np.int16).clip(-128, 127).astype(np.int8)
        return data

    def level_transform(self, level: int):
        return self._open(level).transform if level else self.meta["transform"]

    def level_shape(self, level: int) -> tuple[int, int]:
        if level == 0:
            return self.meta["height"], self.meta["width"]
        ds = self._open(level)
        return ds.height, ds.width


def _gdal_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text if len(text) < 240 else text[:240] + "..."


# ----------------------------------------------------------------------------- sources


class EmbeddingSource:
    """Where embeddings come from: a collection for one year, or one raster."""

    label = "embeddings"

    def tiles_for(self, grid: Grid) -> list[Tile]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class CollectionSource(EmbeddingSource):
    """The tiles of one year of a collection."""

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

    def refs_for(self, grid: Grid, pad_deg: float = 0.02) -> list[TileRef]:
        w, s, e, n = grid.bounds_in("EPSG:4326")
        # Footprints in the index are clipped to the UTM zone while the pixels run past
        # it: pad the query so that tiles already in the target CRS are found near seams.
        pad = pad_deg + 0.01 * max(e - w, n - s)
        return self.collection.query(self.year, w - pad, s - pad, e + pad, n + pad)

    def tiles_for(self, grid: Grid) -> list[Tile]:
        return [self._tile(ref) for ref in self.refs_for(grid)]

    def points_tiles(self, lon: float, lat: float) -> list[Tile]:
        refs = self.collection.query(self.year, lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001)
        return [self._tile(r) for r in refs]

    def close(self) -> None:
        for t in self._tiles.values():
            t.close()


def looks_like_image(tile: Tile) -> bool:
    """True for photos and maps: unsigned bytes/shorts with colour bands, or a palette.

    Embeddings are signed int8 (AEF) or floats; an RGB(A) or paletted integer raster
    without the AEF tag is almost certainly an image chosen by mistake.
    """
    m = tile.meta
    if m["quantised"] or not np.issubdtype(np.dtype(m["dtype"]), np.integer):
        return False
    ds = tile._open(0)
    colours = {ci.name for ci in ds.colorinterp}
    if colours & {"red", "green", "blue", "alpha", "palette"}:
        return True
    return m["dtype"] in ("uint8", "uint16") and m["count"] <= 4


class RasterSource(EmbeddingSource):
    """Any GDAL raster with two or more bands: int8 (no-data -128) is AEF-quantised."""

    def __init__(self, path: str):
        self.path = str(path)
        self.label = self.path
        self.tile = Tile(self.path, self.path)
        m = self.tile.meta
        if m["count"] < 2:
            raise EmbeddingsError(
                f"The raster {self.path} has {m['count']} band; an embedding raster has one band per "
                "dimension (64 for AEF). Choose a raster written by 'Load embeddings for extent' or an export."
            )
        if looks_like_image(self.tile):
            raise EmbeddingsError(
                f"The raster {self.path} looks like an image ({m['count']} bands of {m['dtype']}), not embeddings; "
                "choose a raster written by 'Load embeddings for extent' or an embedding export."
            )

    def tiles_for(self, grid: Grid) -> list[Tile]:
        return [self.tile]

    def close(self) -> None:
        self.tile.close()


# ----------------------------------------------------------------------------- blocks


@dataclass
class Block:
    """Embeddings for one window of the target grid.

    ``data`` is (bands, h, w): int8 codes with -128 where invalid when ``quantised``,
    else float32 with NaN where invalid. ``valid`` is (h, w).
    """

    window: Window
    data: np.ndarray
    valid: np.ndarray
    quantised: bool

    def values(self) -> np.ndarray:
        """float32 (bands, h, w), NaN where invalid."""
        if self.quantised:
            return LUT[self.data.view(np.uint8)]
        return self.data

    def unit_vectors(self) -> np.ndarray:
        """float32 (n_valid, bands): the valid pixels' vectors renormalised to unit length."""
        if self.quantised:
            v = LUT[self.data[:, self.valid].view(np.uint8)].T
        else:
            v = self.data[:, self.valid].T
        v = np.ascontiguousarray(v, dtype=np.float32)
        norm = np.sqrt(np.einsum("ij,ij->i", v, v))
        norm[norm == 0] = 1.0
        v /= norm[:, None]
        return v

    def codes(self) -> np.ndarray:
        """int8 codes (bands, h, w), quantising float data if needed."""
        if self.quantised:
            return self.data
        return quantize(self.data)


@dataclass
class Plan:
    grid: Grid
    tiles: list
    bands: int
    quantised: bool
    band_names: list
    factor: int
    level_factor: int
    read_bytes: int
    notes: list = field(default_factory=list)

    def describe(self) -> str:
        g = self.grid
        mb_in = self.read_bytes / 1e6
        mb_out = g.pixels * self.bands / 1e6
        text = (
            f"Planned: {g.width} x {g.height} = {g.pixels:,} pixels at {g.resolution:g} m in {_crs_name(g.crs)}; "
            f"{len(self.tiles)} tile(s); about {mb_in:,.1f} MB of embeddings to read (uncompressed), "
            f"{mb_out:,.1f} MB of int8 output."
        )
        if self.factor > 1 or self.level_factor > 1:
            text += f" Each output pixel averages {self.factor} x {self.factor} samples" + (
                f" from overview 1/{self.level_factor}." if self.level_factor > 1 else " of native pixels."
            )
        return text


def _crs_name(crs: str) -> str:
    try:
        c = crs_from(crs)
        auth = c.to_authority()
        return f"{auth[0]}:{auth[1]}" if auth else c.name
    except Exception:
        return crs


class MosaicReader:
    """Reads a source onto a grid block by block. Use as a context manager."""

    def __init__(
        self, source: EmbeddingSource, grid: Grid, progress: Progress | None = None, block_size: int = DEFAULT_BLOCK
    ):
        self.source = source
        self.grid = grid
        self.progress = progress or Progress()
        self.block_size = block_size
        self._env = None
        self.plan: Plan | None = None
        self._close_after: dict[Window, list[Tile]] = {}

    # Context -------------------------------------------------------------------
    def __enter__(self) -> MosaicReader:
        rio = _rasterio()
        # rasterio hands an integer GDAL_CACHEMAX to GDAL as bytes (256 would be a 256-byte
        # cache: no block caching at all, and rasterize working scanline by scanline).
        self._env = rio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024, **gdal_http_options())
        self._env.__enter__()
        try:
            self.plan = self._make_plan()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        # The tiles were opened under this reader's GDAL settings: close them with it.
        for tile in self.plan.tiles if self.plan is not None else ():
            tile.close()
        if self._env is not None:
            self._env.__exit__(*exc) if exc and exc[0] else self._env.__exit__(None, None, None)
            self._env = None

    # Planning ------------------------------------------------------------------
    def _make_plan(self) -> Plan:
        grid = self.grid
        tiles = self.source.tiles_for(grid)
        overlapping = []
        read_bytes = 0
        for tile in tiles:
            gb = transform_bounds(grid.bounds, grid.crs, tile.crs) if not same_crs(tile.crs, grid.crs) else grid.bounds
            tb = tile.bounds
            ix = min(gb[2], tb[2]) - max(gb[0], tb[0])
            iy = min(gb[3], tb[3]) - max(gb[1], tb[1])
            if ix > 0 and iy > 0:
                overlapping.append((tile, ix * iy))
        if not overlapping:
            raise NoCoverage(
                f"No embeddings cover this extent in {self.source.label}; move the extent onto the "
                "collection's coverage (check the year too)."
            )
        # Target-CRS tiles first; then by label, which is stable across runs.
        overlapping.sort(key=lambda ta: (not same_crs(ta[0].crs, grid.crs), ta[0].label))
        first = overlapping[0][0].meta
        bands = first["count"]
        for tile, _ in overlapping:
            if tile.meta["count"] != bands:
                raise EmbeddingsError(
                    f"The tile {tile.label} has {tile.meta['count']} bands where the others have {bands}; "
                    "the collection mixes different products."
                )
        native = first["native_res"]
        level_factor, factor = self._sampling(grid, [t for t, _ in overlapping], native)
        for _, area in overlapping:
            read_bytes += int(area / (native * level_factor) ** 2 * bands)
        names = [d or "" for d in first["descriptions"]]
        if not all(names):
            names = [f"b{i + 1:02d}" for i in range(bands)]
        plan = Plan(
            grid=grid,
            tiles=[t for t, _ in overlapping],
            bands=bands,
            quantised=bool(first["quantised"]),
            band_names=names,
            factor=factor,
            level_factor=level_factor,
            read_bytes=read_bytes,
        )
        self._tile_bounds_in_grid = {}
        for t in plan.tiles:
            self._tile_bounds_in_grid[id(t)] = (
                t.bounds if same_crs(t.crs, grid.crs) else transform_bounds(t.bounds, t.crs, grid.crs)
            )
        return plan

    @staticmethod
    def _sampling(grid: Grid, tiles, native: float) -> tuple[int, int]:
        """(overview factor, samples per output pixel per axis) for a resolution.

        An overview holds renormalised means of k x k pixels, which equal what averaging
        would give only if its pixels line up with the output's; so an overview is used
        only when it is aligned for every tile in the target CRS. Otherwise each output
        pixel averages f x f native samples.
        """
        ratio = grid.resolution / native
        whole = round(ratio)
        if abs(ratio - whole) > 1e-6 or whole < 2:
            return 1, max(1, int(math.ceil(ratio - 1e-6)))
        same = [t for t in tiles if same_crs(t.crs, grid.crs)]
        candidates = sorted({f for t in tiles for f in t.meta["overviews"] if whole % f == 0}, reverse=True)
        for k in candidates:
            step = native * k
            ok = True
            for t in same:
                tr = t.meta["transform"]
                if k not in t.meta["overviews"] or t.meta["rotated"]:
                    ok = False
                    break
                for off in (tr.c - grid.transform.c, tr.f - grid.transform.f):
                    rem = abs(off / step - round(off / step))
                    if rem > 1e-6:
                        ok = False
                if not ok:
                    break
            if ok:
                return k, whole // k
        return 1, whole

    # Reading -------------------------------------------------------------------
    def blocks(self, block_size: int | None = None):
        """Yield a ``Block`` per output window, with progress and cancellation."""
        plan = self.plan
        size = block_size or self.block_size
        if plan.factor > 1:
            size = max(8, size // plan.factor)
        windows = list(self.grid.blocks(size))
        self.expect(windows)
        for i, w in enumerate(windows):
            self.progress.check_cancelled()
            yield self.read(w)
            self.progress.set_progress(100.0 * (i + 1) / len(windows))

    def expect(self, windows) -> None:
        """Say in which order ``read`` will be called, so that each tile is closed after the
        last window that needs it.

        An open tile holds GDAL's buffers and cached blocks; without this every tile the
        extent crosses stays open until the reader exits, and memory grows with the extent.
        Reading other windows, or again, still works: a closed tile reopens when needed.
        """
        last: dict[int, Window] = {}
        for w in windows:
            wb = self.grid.window_bounds(w)
            for key, tb in self._tile_bounds_in_grid.items():
                if not (tb[0] >= wb[2] or tb[2] <= wb[0] or tb[1] >= wb[3] or tb[3] <= wb[1]):
                    last[key] = w
        tiles = {id(t): t for t in self.plan.tiles}
        self._close_after = {}
        for key, w in last.items():
            self._close_after.setdefault(w, []).append(tiles[key])

    def read(self, window: Window) -> Block:
        plan = self.plan
        f = plan.factor
        if f == 1:
            data, valid = self._read_fine(self.grid, window)
        else:
            fine_grid = self.grid.refined(f)
            fine_window = Window(window.col_off * f, window.row_off * f, window.width * f, window.height * f)
            data, valid = self._read_fine(fine_grid, fine_window)
            data, valid = self._aggregate(data, valid, f, plan.quantised)
        for tile in self._close_after.pop(window, ()):
            tile.close()
        return Block(window, data, valid, plan.quantised)

    def _aggregate(self, data, valid, f, quantised):
        b, hf, wf = data.shape
        h, w = hf // f, wf // f
        values = LUT[data.view(np.uint8)] if quantised else data
        values = np.where(valid[None], values, 0.0).astype(np.float32)
        summed = values.reshape(b, h, f, w, f).sum(axis=(2, 4))
        count = valid.reshape(h, f, w, f).sum(axis=(1, 3))
        ok = count > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = summed / np.where(ok, count, 1)[None]
        mean = renormalise(mean, axis=0)
        ok &= np.isfinite(mean).all(axis=0)
        mean[:, ~ok] = np.nan
        if quantised:
            return quantize(mean), ok
        return mean.astype(np.float32), ok

    def _read_fine(self, grid: Grid, window: Window):
        plan = self.plan
        h, w = window.height, window.width
        quantised = plan.quantised
        if quantised:
            out = np.full((plan.bands, h, w), NODATA, dtype=np.int8)
        else:
            out = np.full((plan.bands, h, w), np.nan, dtype=np.float32)
        filled = np.zeros((h, w), dtype=bool)
        wb = grid.window_bounds(window)
        xs, ys = grid.centres(window)
        mesh = {}
        for tile in plan.tiles:
            tb = self._tile_bounds_in_grid[id(tile)]
            if tb[0] >= wb[2] or tb[2] <= wb[0] or tb[1] >= wb[3] or tb[3] <= wb[1]:
                continue
            level, _ = tile.level_for(plan.level_factor)
            t = tile.level_transform(level)
            th, tw = tile.level_shape(level)
            if same_crs(tile.crs, grid.crs) and not (t.b or t.d):
                self._fill_separable(tile, level, t, th, tw, xs, ys, out, filled)
            else:
                if tile.crs not in mesh:
                    gx, gy = np.meshgrid(xs, ys)
                    tx, ty = transformer(grid.crs, tile.crs).transform(gx, gy)
                    mesh[tile.crs] = (np.asarray(tx), np.asarray(ty))
                tx, ty = mesh[tile.crs]
                self._fill_general(tile, level, t, th, tw, tx, ty, out, filled)
            if filled.all():
                break
        return out, filled

    def _valid_of(self, tile: Tile, data: np.ndarray) -> np.ndarray:
        nodata = tile.meta["nodata"]
        if self.plan.quantised:
            return ~(data == NODATA).any(axis=0)
        ok = np.isfinite(data).all(axis=0)
        if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
            ok &= ~(data == nodata).any(axis=0)
        return ok

    def _cast(self, data: np.ndarray) -> np.ndarray:
        if self.plan.quantised:
            return data
        return data.astype(np.float32, copy=False)

    def _fill_separable(self, tile, level, t, th, tw, xs, ys, out, filled):
        # Same CRS, no rotation: columns depend on x only and rows on y only.
        cols = np.floor((xs - t.c) / t.a).astype(np.int64)
        rows = np.floor((ys - t.f) / t.e).astype(np.int64)
        cin = (cols >= 0) & (cols < tw)
        rin = (rows >= 0) & (rows < th)
        if not cin.any() or not rin.any():
            return
        ci = np.nonzero(cin)[0]
        ri = np.nonzero(rin)[0]
        c_lo, c_hi = ci[0], ci[-1] + 1  # output columns covered (contiguous: monotone map)
        r_lo, r_hi = ri[0], ri[-1] + 1
        need = ~filled[r_lo:r_hi, c_lo:c_hi]
        if not need.any():
            return
        tc = cols[c_lo:c_hi]
        tr = rows[r_lo:r_hi]
        c0, c1 = int(tc.min()), int(tc.max()) + 1
        r0, r1 = int(tr.min()), int(tr.max()) + 1
        data = self._cast(tile.read(level, (r0, r1), (c0, c1)))
        lc = tc - c0
        lr = tr - r0
        if np.array_equal(lc, np.arange(c1 - c0)):
            col_index = slice(None)
        else:
            col_index = lc
        if np.array_equal(lr, np.arange(r1 - r0)):
            sub = data[:, :, col_index] if isinstance(col_index, slice) else data[:, :, col_index]
        elif np.array_equal(lr, np.arange(r1 - r0)[::-1]):
            # Bottom-up tile: output row 0 (north) is the tile's last row.
            sub = data[:, ::-1, :][:, :, col_index]
        else:
            sub = data[:, lr, :][:, :, col_index]
        ok = self._valid_of(tile, sub) & need
        region = out[:, r_lo:r_hi, c_lo:c_hi]
        if ok.all():
            region[...] = sub
        else:
            region[:, ok] = sub[:, ok]
        filled[r_lo:r_hi, c_lo:c_hi] |= ok

    def _fill_general(self, tile, level, t, th, tw, tx, ty, out, filled):
        inv = ~t
        col_f, row_f = inv * (tx, ty)
        with np.errstate(invalid="ignore"):
            cols = np.floor(col_f)
            rows = np.floor(row_f)
            inside = (cols >= 0) & (cols < tw) & (rows >= 0) & (rows < th) & ~filled
        if not inside.any():
            return
        cols = cols[inside].astype(np.int64)
        rows = rows[inside].astype(np.int64)
        c0, c1 = int(cols.min()), int(cols.max()) + 1
        r0, r1 = int(rows.min()), int(rows.max()) + 1
        data = self._cast(tile.read(level, (r0, r1), (c0, c1)))
        picked = data[:, rows - r0, cols - c0]  # (bands, n)
        ok = self._valid_of(tile, picked[:, :, None])[:, 0]
        target = np.nonzero(inside)
        tr = target[0][ok]
        tc = target[1][ok]
        out[:, tr, tc] = picked[:, ok]
        filled[tr, tc] = True

    # Point reads -----------------------------------------------------------------
    def close(self) -> None:
        self.source.close()


def read_points(source: EmbeddingSource, points, crs: str, progress: Progress | None = None) -> np.ndarray:
    """De-quantized vectors (n, bands) at points given in ``crs``; NaN rows where no data.

    Each point is read on a one-pixel grid in the UTM zone of the point at 10 m, i.e. the
    pixel under the point, wherever the point is (inside or outside any extent).
    """
    from .grid import grid_for_extent, utm_epsg

    pts = list(points)
    result = None
    to_ll = transformer(crs, "EPSG:4326")
    for i, (x, y) in enumerate(pts):
        lon, lat = to_ll.transform(x, y)
        zone = utm_epsg(lon, lat)
        ux, uy = transformer(crs, zone).transform(x, y)
        g = grid_for_extent((ux - 1e-3, uy - 1e-3, ux + 1e-3, uy + 1e-3), zone, zone, 10.0)
        try:
            with MosaicReader(source, g, progress) as reader:
                block = reader.read(Window(0, 0, g.width, g.height))
        except NoCoverage:
            block = None
        if result is None and block is not None:
            result = np.full((len(pts), block.data.shape[0]), np.nan, dtype=np.float32)
        if block is not None and block.valid[0, 0]:
            result[i] = block.values()[:, 0, 0]
    if result is None:
        raise EmbeddingsError("None of the points lies on the collection's coverage.")
    return result
