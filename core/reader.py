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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
from affine import Affine

from .arrays import Array
from .block import Block
from .errors import EmbeddingsError, NoCoverage
from .grid import DEFAULT_BLOCK, Bounds, Grid, Window, crs_name, same_crs, transform_bounds, transformer
from .progress import Progress
from .quant import LUT, NODATA, quantize, renormalise
from .remote import gdal_http_options
from .tile import Tile


@dataclass
class Plan:
    """What a reader will read: the overlapping tiles in priority order and how to sample them."""

    grid: Grid
    tiles: list[Tile]
    bands: int
    quantised: bool
    band_names: list[str]
    factor: int  # samples per output pixel per axis
    level_factor: int  # overview decimation used (1 = full resolution)
    read_bytes: int

    def describe(self) -> str:
        g = self.grid
        mb_in = self.read_bytes / 1e6
        mb_out = g.pixels * self.bands / 1e6
        text = (
            f"Planned: {g.width} x {g.height} = {g.pixels:,} pixels at {g.resolution:g} m in {crs_name(g.crs)}; "
            f"{len(self.tiles)} tile(s); about {mb_in:,.1f} MB of embeddings to read (uncompressed), "
            f"{mb_out:,.1f} MB of int8 output."
        )
        if self.factor > 1 or self.level_factor > 1:
            text += f" Each output pixel averages {self.factor} x {self.factor} samples" + (
                f" from overview 1/{self.level_factor}." if self.level_factor > 1 else " of native pixels."
            )
        return text

    def reads(self) -> str:
        """A short line for logs that name several readers."""
        return f"{len(self.tiles)} tile(s), about {self.read_bytes / 1e6:,.1f} MB of embeddings to read"


def _overlap_area(tile: Tile, grid: Grid) -> float:
    gb = grid.bounds if same_crs(tile.crs, grid.crs) else transform_bounds(grid.bounds, grid.crs, tile.crs)
    tb = tile.bounds
    ix = min(gb[2], tb[2]) - max(gb[0], tb[0])
    iy = min(gb[3], tb[3]) - max(gb[1], tb[1])
    return ix * iy if ix > 0 and iy > 0 else 0.0


def make_plan(label: str, tiles: Sequence[Tile], grid: Grid) -> Plan:
    """The tiles overlapping ``grid`` (target-CRS tiles first, then by position and name,
    stable across runs and years), their band count and kind, and the sampling for the grid's
    resolution."""
    overlapping = [(t, a) for t in tiles if (a := _overlap_area(t, grid)) > 0]
    if not overlapping:
        raise NoCoverage(
            f"No embeddings cover this extent in {label}; move the extent onto the collection's coverage "
            "(check the year too)."
        )
    # By CRS, then position (west, then north), then name: so the years of a collection, whose tiles
    # lie at the same places under other names, mosaic in the same order (and their windows
    # follow the same tiles' blocks).
    overlapping.sort(
        key=lambda ta: (
            not same_crs(ta[0].crs, grid.crs),
            ta[0].crs,  # zones in order (positions compare only within one CRS)
            round(ta[0].bounds[0]),
            -round(ta[0].bounds[3]),
            ta[0].label,
        )
    )
    first = overlapping[0][0].meta
    bands = first.count
    for tile, _ in overlapping:
        if tile.meta.count != bands:
            raise EmbeddingsError(
                f"The tile {tile.label} has {tile.meta.count} bands where the others have {bands}; "
                "the collection mixes different products."
            )
    native = first.native_res
    level_factor, factor = _sampling(grid, [t for t, _ in overlapping], native)
    # The overlap area is in each tile's own CRS units (degrees squared for a geographic tile):
    # divided by the area of the tile's own pixel, it counts pixels.
    read_bytes = sum(
        int(area / abs(t.meta.transform.a * t.meta.transform.e) / level_factor**2 * bands) for t, area in overlapping
    )
    names = list(first.descriptions)
    if not all(names):
        names = [f"b{i + 1:02d}" for i in range(bands)]
    return Plan(grid, [t for t, _ in overlapping], bands, first.quantised, names, factor, level_factor, read_bytes)


def _sampling(grid: Grid, tiles: Sequence[Tile], native: float) -> tuple[int, int]:
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
    candidates = sorted({f for t in tiles for f in t.meta.overviews if whole % f == 0}, reverse=True)
    for k in candidates:
        step = native * k
        aligned = all(
            k in t.meta.overviews
            and not t.meta.rotated
            and all(
                abs(off / step - round(off / step)) <= 1e-6
                for off in (t.meta.transform.c - grid.transform.c, t.meta.transform.f - grid.transform.f)
            )
            for t in same
        )
        if aligned:
            return k, whole // k
    return 1, whole


Rect = tuple[float, float, float, float]  # rows [r0, r1) x columns [c0, c1), in grid pixels


def _intersect(a: Rect, b: Rect) -> Rect | None:
    r0, r1, c0, c1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (r0, r1, c0, c1) if r1 - r0 > 1e-6 and c1 - c0 > 1e-6 else None


def _minus(a: Rect, b: Rect) -> list[Rect]:
    """``a`` less ``b``: up to four rectangles."""
    cut = _intersect(a, b)
    if cut is None:
        return [a]
    r0, r1, c0, c1 = cut
    pieces = [(a[0], r0, a[2], a[3]), (r1, a[1], a[2], a[3]), (r0, r1, a[2], c0), (r0, r1, c1, a[3])]
    return [p for p in pieces if p[1] - p[0] > 1e-6 and p[3] - p[2] > 1e-6]


def _disjoint(a: Bounds, b: Bounds) -> bool:
    return a[0] >= b[2] or a[2] <= b[0] or a[1] >= b[3] or a[3] <= b[1]


class MosaicReader:
    """Reads tiles onto a grid window by window. A context manager: entering plans the read
    (``NoCoverage`` when no tile overlaps) under the reader's GDAL settings; leaving closes
    the tiles."""

    def __init__(self, label: str, tiles: Sequence[Tile], grid: Grid, progress: Progress | None = None):
        self.label = label
        self.grid = grid
        self.progress = progress or Progress()
        self._tiles = list(tiles)
        self._env: Any = None
        self._plan: Plan | None = None
        self._tile_bounds: dict[int, Bounds] = {}
        self._close_after: dict[Window, list[Tile]] = {}
        self._window_index: dict[Window, int] = {}
        self._last_use: dict[int, tuple[int, dict[tuple[int, int], int]]] = {}

    @property
    def plan(self) -> Plan:
        if self._plan is None:
            raise RuntimeError("a MosaicReader is used inside its with block")
        return self._plan

    def __enter__(self) -> MosaicReader:
        import rasterio

        # GDAL's HTTP settings for the rasters GDAL reads (core.blocks reads the rest itself,
        # holding its own decoded blocks: GDAL's block cache, process-wide and shared with
        # QGIS's rendering, is left as QGIS set it).
        self._env = rasterio.Env(**gdal_http_options())
        self._env.__enter__()
        try:
            self._plan = make_plan(self.label, self._tiles, self.grid)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        for t in self._tiles:
            t.close(drop_cache=False)  # planning read their headers; each reopens when a window needs it
        for t in self._plan.tiles:
            self._tile_bounds[id(t)] = (
                t.bounds if same_crs(t.crs, self.grid.crs) else transform_bounds(t.bounds, t.crs, self.grid.crs)
            )
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # The tiles were opened under this reader's GDAL settings: close them with it. After a
        # pass over windows (``expect``) nothing decoded is needed again; after single reads (a
        # pixel under an exemplar) the blocks stay in the bounded cache for the map that follows.
        for tile in self._plan.tiles if self._plan is not None else ():
            tile.close(drop_cache=bool(self._window_index))
        if self._env is not None:
            self._env.__exit__(kind, exc, tb)
            self._env = None

    def window_size(self, block_size: int = DEFAULT_BLOCK) -> int:
        """Output window size: coarse resolutions read f x f finer samples per pixel, so smaller."""
        return max(8, block_size // self.plan.factor) if self.plan.factor > 1 else block_size

    def block_spans(self, axis: int) -> list[tuple[int, int, int, int]]:
        """Where the tiles' internal blocks fall on the grid along one axis (0: rows,
        1: columns): (first, stop, phase, block size) in grid pixels for each tile, in
        priority order, that lies on the grid's own pixels (same CRS, same pixel size,
        whole-pixel offset, read by the block reader); see pipeline.windows_for."""
        plan = self.plan
        if plan.factor != 1:
            return []
        g = self.grid.transform
        spans = []
        for tile in plan.tiles:
            level, _ = tile.level_for(plan.level_factor)
            shape = tile.block_shape(level)
            t = tile.level_transform(level)
            if shape is None or not same_crs(tile.crs, self.grid.crs) or t.b or t.d:
                continue
            pixel, origin, grid_origin = (t.e, t.f, g.f) if axis == 0 else (t.a, t.c, g.c)
            grid_pixel = g.e if axis == 0 else g.a
            if abs(abs(pixel) - abs(grid_pixel)) > 1e-9 * abs(grid_pixel):
                continue
            at = (origin - grid_origin) / grid_pixel  # the tile's row/column 0 edge, in grid pixels
            if abs(at - round(at)) > 1e-6:
                continue
            n = tile.level_shape(level)[0 if axis == 0 else 1]
            block = shape[0 if axis == 0 else 1]
            edge = int(round(at))
            if pixel * grid_pixel > 0:  # the tile counts the same way as the grid
                spans.append((edge, edge + n, edge % block, block))
            else:  # a bottom-up tile: its row 0 is its last row on the grid
                spans.append((edge - n, edge, edge % block, block))
        return spans

    def expect(self, windows: Sequence[Window]) -> None:
        """Say in which order ``read`` will be called, so that each tile is closed after the
        last window that needs it.

        An open tile holds GDAL's buffers and cached blocks; without this every tile the
        extent crosses stays open until the reader exits, and memory grows with the extent.
        Reading other windows, or again, still works: a closed tile reopens when needed.
        """
        last: dict[int, Window] = {}
        for w in windows:
            wb = self.grid.window_bounds(w)
            for key, tb in self._tile_bounds.items():
                if not _disjoint(tb, wb):
                    last[key] = w
        tiles = {id(t): t for t in self.plan.tiles}
        self._close_after = {}
        for key, w in last.items():
            self._close_after.setdefault(w, []).append(tiles[key])
        self._block_last_use(windows)

    def _block_last_use(self, windows: Sequence[Window]) -> None:
        """For each tile, the last window (by position) that reads each of its blocks, so that a
        block a window uses in part is kept for a later window only if one needs it (see read).

        A window reads a tile where no tile before it (in priority order, in the grid's CRS)
        covers the window: the same order ``_read_fine`` fills pixels in. Holes of no-data in a
        tile are not foreseen; a block they make a window read is then decoded again, never
        read wrong."""
        self._window_index = {w: i for i, w in enumerate(windows)}
        self._last_use = {}
        f = self.plan.factor
        grid = self.grid if f == 1 else self.grid.refined(f)
        inverse_grid = ~grid.transform
        info = []
        for tile in self.plan.tiles:
            level, _ = tile.level_for(self.plan.level_factor)
            shape = tile.block_shape(level)
            tb = self._tile_bounds[id(tile)]
            xs, ys = zip(*(inverse_grid * (x, y) for x in (tb[0], tb[2]) for y in (tb[1], tb[3])))
            rect = (min(ys), max(ys), min(xs), max(xs))  # in grid pixels (rows, then columns)
            info.append((tile, level, shape, rect, same_crs(tile.crs, grid.crs)))
            self._last_use[id(tile)] = (level, {})
        for i, w in enumerate(windows):
            left: list[Rect] = [(w.row_off * f, (w.row_off + w.height) * f, w.col_off * f, (w.col_off + w.width) * f)]
            whole = list(left)
            for tile, level, shape, rect, same in info:
                # A tile in another CRS may fill holes of no-data the tiles before it leave:
                # foreseen under all of the window (its blocks then stay in the bounded cache).
                parts = [p for p in (_intersect(a, rect) for a in (left if same else whole)) if p is not None]
                if not parts:
                    continue
                if shape is not None:
                    self._note_blocks(tile, level, shape, grid, parts, i, same)
                if same:
                    left = [piece for a in left for piece in _minus(a, rect)]

    def _note_blocks(
        self,
        tile: Tile,
        level: int,
        shape: tuple[int, int],
        grid: Grid,
        parts: list[Rect],
        index: int,
        same: bool,
    ) -> None:
        bh, bw = shape
        inverse = ~tile.level_transform(level)
        th, tw = tile.level_shape(level)
        last = self._last_use[id(tile)][1]
        t = grid.transform
        for r0, r1, c0, c1 in parts:
            b = (t.c + c0 * t.a, t.f + r1 * t.e, t.c + c1 * t.a, t.f + r0 * t.e)
            if not same:
                b = transform_bounds(b, grid.crs, tile.crs)
            xs, ys = zip(*(inverse * (x, y) for x in (b[0], b[2]) for y in (b[1], b[3])))
            # Exact where the grids line up; elsewhere a block misjudged at the edge is decoded again.
            tc0, tc1 = max(0, math.floor(min(xs) + 1e-6)), min(tw, math.ceil(max(xs) - 1e-6))
            tr0, tr1 = max(0, math.floor(min(ys) + 1e-6)), min(th, math.ceil(max(ys) - 1e-6))
            if tr1 <= tr0 or tc1 <= tc0:
                continue
            for brow in range(tr0 // bh, (tr1 - 1) // bh + 1):
                for bcol in range(tc0 // bw, (tc1 - 1) // bw + 1):
                    last[(brow, bcol)] = index

    def _keep_for_later(self, tile: Tile, index: int | None) -> Callable[[int, int, int], bool] | None:
        """Whether a window after window ``index`` needs a block of ``tile`` (None: unknown)."""
        entry = self._last_use.get(id(tile))
        if entry is None or index is None:
            return None
        level_used, last = entry

        def later(level: int, brow: int, bcol: int) -> bool:
            return level != level_used or last.get((brow, bcol), -1) > index

        return later

    def read(self, window: Window) -> Block:
        """The block of one window of the grid."""
        plan = self.plan
        f = plan.factor
        index = self._window_index.get(window)
        for tile in plan.tiles:
            tile.keep_block = self._keep_for_later(tile, index)
        if f == 1:
            data, valid = self._read_fine(self.grid, window)
        else:
            fine_window = Window(window.col_off * f, window.row_off * f, window.width * f, window.height * f)
            data, valid = self._read_fine(self.grid.refined(f), fine_window)
            data, valid = _aggregate(data, valid, f, plan.quantised)
        for tile in self._close_after.pop(window, ()):
            tile.close()
        return Block(window, data, valid, plan.quantised)

    def _read_fine(self, grid: Grid, window: Window) -> tuple[Array, Array]:
        plan = self.plan
        h, w = window.height, window.width
        # Not pre-filled (64 bands of a 1024 px window are 64 MB to write once more): pixels no
        # tile fills are set to no-data at the end.
        out = np.empty((plan.bands, h, w), dtype=np.int8 if plan.quantised else np.float32)
        filled = np.zeros((h, w), dtype=bool)
        wb = grid.window_bounds(window)
        xs, ys = grid.centres(window)
        mesh: dict[str, tuple[Array, Array]] = {}
        for tile in plan.tiles:
            if _disjoint(self._tile_bounds[id(tile)], wb):
                continue
            level, _ = tile.level_for(plan.level_factor)
            t = tile.level_transform(level)
            shape = tile.level_shape(level)
            if same_crs(tile.crs, grid.crs) and not (t.b or t.d):
                _fill_separable(tile, level, t, shape, xs, ys, out, filled, plan.quantised)
            else:
                if tile.crs not in mesh:
                    gx, gy = np.meshgrid(xs, ys)
                    tx, ty = transformer(grid.crs, tile.crs).transform(gx, gy)
                    mesh[tile.crs] = (np.asarray(tx), np.asarray(ty))
                _fill_general(tile, level, t, shape, *mesh[tile.crs], out, filled, plan.quantised)
            if filled.all():
                break
        if not filled.all():
            np.copyto(out, NODATA if plan.quantised else np.nan, where=~filled[None])
        return out, filled


def _aggregate(data: Array, valid: Array, f: int, quantised: bool) -> tuple[Array, Array]:
    """Each f x f group of samples -> the renormalised mean of its valid de-quantized vectors."""
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


def _valid_of(tile: Tile, data: Array, quantised: bool) -> Array:
    """(h, w) True where every band has data (codes: not -128; floats: finite, not no-data)."""
    # Reductions over the band axis, band by band: no (bands, h, w) temporary of booleans.
    if quantised:
        return np.asarray(data.min(axis=0) != NODATA)
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.isfinite(data.sum(axis=0, dtype=np.float64))  # NaN or inf in any band
    nodata = tile.meta.nodata
    if nodata is not None and not math.isnan(nodata):
        for band in data:
            ok &= band != nodata
    return np.asarray(ok)


def _read_as(tile: Tile, level: int, rows: tuple[int, int], cols: tuple[int, int], quantised: bool) -> Array:
    data = tile.read(level, rows, cols)
    return data if quantised else data.astype(np.float32, copy=False)


def _fill_separable(
    tile: Tile,
    level: int,
    t: Affine,
    shape: tuple[int, int],
    xs: Array,
    ys: Array,
    out: Array,
    filled: Array,
    quantised: bool,
) -> None:
    """Fill from a tile in the grid's CRS: columns depend on x only and rows on y only."""
    th, tw = shape
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
    if not need.all():  # read only the rows and columns still to fill (holes left by other tiles)
        rows_any = np.nonzero(need.any(axis=1))[0]
        cols_any = np.nonzero(need.any(axis=0))[0]
        r_lo, r_hi = r_lo + rows_any[0], r_lo + rows_any[-1] + 1
        c_lo, c_hi = c_lo + cols_any[0], c_lo + cols_any[-1] + 1
        need = ~filled[r_lo:r_hi, c_lo:c_hi]
    tc = cols[c_lo:c_hi]
    tr = rows[r_lo:r_hi]
    c0, c1 = int(tc.min()), int(tc.max()) + 1
    r0, r1 = int(tr.min()), int(tr.max()) + 1
    lc = tc - c0
    lr = tr - r0
    cols_same = np.array_equal(lc, np.arange(c1 - c0))
    rows_same = np.array_equal(lr, np.arange(r1 - r0))
    rows_flipped = not rows_same and np.array_equal(lr, np.arange(r1 - r0)[::-1])
    region = out[:, r_lo:r_hi, c_lo:c_hi]
    if need.all() and cols_same and (rows_same or rows_flipped) and tile.direct(out.dtype):
        # The common case (the first tile over this part of the window, same pixels): decode
        # straight into the output, flipping bottom-up rows on the way; no copy of the window.
        tile.read_into(level, (r0, r1), (c0, c1), region if rows_same else region[:, ::-1, :])
        ok = _valid_of(tile, region, quantised)
        if not ok.all():  # a masked copy: no index arrays of 64 bands' pixels
            np.copyto(region, NODATA if quantised else np.nan, where=~ok[None])
        filled[r_lo:r_hi, c_lo:c_hi] |= ok
        return
    data = _read_as(tile, level, (r0, r1), (c0, c1), quantised)
    col_index: slice | Array = slice(None) if cols_same else lc
    if rows_same:
        sub = data[:, :, col_index]
    elif rows_flipped:
        # Bottom-up tile: output row 0 (north) is the tile's last row.
        sub = data[:, ::-1, :][:, :, col_index]
    else:
        sub = data[:, lr, :][:, :, col_index]
    ok = _valid_of(tile, sub, quantised) & need
    if ok.all():
        region[...] = sub
    else:
        np.copyto(region, sub, where=ok[None])
    filled[r_lo:r_hi, c_lo:c_hi] |= ok


def _fill_general(
    tile: Tile,
    level: int,
    t: Affine,
    shape: tuple[int, int],
    tx: Array,
    ty: Array,
    out: Array,
    filled: Array,
    quantised: bool,
) -> None:
    """Fill from a tile in another CRS (or rotated): each pixel centre mapped on its own."""
    th, tw = shape
    col_f, row_f = ~t * (tx, ty)
    with np.errstate(invalid="ignore"):
        cols = np.floor(col_f)
        rows = np.floor(row_f)
        inside = (cols >= 0) & (cols < tw) & (rows >= 0) & (rows < th) & ~filled
    if not inside.any():
        return
    icols = cols[inside].astype(np.int64)
    irows = rows[inside].astype(np.int64)
    c0, c1 = int(icols.min()), int(icols.max()) + 1
    r0, r1 = int(irows.min()), int(irows.max()) + 1
    data = _read_as(tile, level, (r0, r1), (c0, c1), quantised)
    picked = data[:, irows - r0, icols - c0]  # (bands, n)
    ok = _valid_of(tile, picked[:, :, None], quantised)[:, 0]
    target = np.nonzero(inside)
    tr = target[0][ok]
    tc = target[1][ok]
    out[:, tr, tc] = picked[:, ok]
    filled[tr, tc] = True
