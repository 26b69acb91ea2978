"""Embedding statistics per polygon (mean, population std, pixel count) and PCA of the means.

How the pixels are found and read:

- The grid covers the zones' bounding box (snapped to the resolution, so that at 10 m in
  the tiles' UTM zone it lines up with the product's pixels). Nothing is allocated over
  the grid itself: it only numbers pixels.
- Each zone gets a window: the pixels whose centres fall within its bounding box, plus the
  pixel under its centroid. Windows are grouped by the 512-px blocks they touch, blocks
  by chunks of 4 x 4 blocks; chunks are visited in spatial order, each with its own
  ``MosaicReader`` on a sub-grid, and in each block only the bounding box of the windows
  of the zones there is read. Blocks no zone touches are never read, so sparse zones
  over a huge extent stay cheap, and the pixel limit applies to what is read.
- Each zone is rasterised on its own window (pixel-centre rule, GDAL's all_touched=False):
  zones may overlap, so there is no shared label raster.
- Count, sum and sum of squares per band accumulate in float64 on de-quantized values
  (no-data excluded). A zone crossing blocks, chunks, tiles or UTM zones (the reader
  mosaics them onto the one grid) pools its pixels. A zone is finished as soon as its
  last block is done, so working memory holds only the zones open at once; the results
  are float32 arrays (n, bands).
- A zone without any pixel centre inside (smaller than a pixel, or a thin sliver) takes
  the pixel under its centroid, with a count of 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import Array
from .block import Block
from .errors import EmbeddingsError, NoCoverage
from .geometry import Geometry, as_geojson, polygon_centroid, polygons_bounds, polygons_of, transform_geometry
from .grid import (
    DEFAULT_MAX_PIXELS,
    Bounds,
    Grid,
    Window,
    centre_utm,
    crs_from,
    crs_name,
    projected_crs,
    same_crs,
    snap_grid,
)
from .progress import Progress
from .quant import LUT_ZERO
from .reader import MosaicReader
from .source import EmbeddingSource, SourceSpec, open_source

BLOCK_PX = 512
CHUNK_BLOCKS = 4
# Bands de-quantized at once per block when summing per zone (8 x pixels float64 in memory).
BAND_GROUP = 8
_LUT64 = LUT_ZERO.astype(np.float64)


@dataclass(frozen=True)
class ZonalRequest:
    """Statistics of a source within polygons. ``zones`` are GeoJSON Polygon/MultiPolygon dicts
    in ``zones_crs`` (repaired already); the result rows follow their order."""

    source: SourceSpec
    zones: Sequence[Geometry]
    zones_crs: str
    target_crs: str | None = None
    resolution_m: float = 10.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    pca_components: int = 0


def zones_frame(
    source: EmbeddingSource, zones_bounds: Bounds, zones_crs: str, target_crs: str | None = None
) -> tuple[str, tuple[float, float]]:
    """The CRS to compute in and the grid anchor: ``target_crs`` if given, else the input
    raster's own CRS, else the UTM zone of the zones' centre; the anchor is the raster's pixel
    lattice whenever the CRS is the raster's (so its pixels are read as they are)."""
    native = source.native_grid()
    if target_crs:
        crs = projected_crs(target_crs, "the UTM zone of the polygons")
    elif native is not None and not crs_from(native.crs).is_geographic:
        crs = native.crs
    else:
        crs = centre_utm(zones_bounds, zones_crs, "the polygons")
    if native is not None and same_crs(native.crs, crs):
        return crs, (native.transform.c, native.transform.f)
    return crs, (0.0, 0.0)


# ----------------------------------------------------------------------------- results


@dataclass
class ZonalStats:
    """Per-zone results, in the order of the zones given.

    ``mean``/``std`` are float32 (n, bands), NaN for zones without a valid pixel; ``std`` is
    the population standard deviation. ``pcs`` is (n, k) or None; ``explained`` holds the
    fraction of the variance of the zones' means that each component explains.
    """

    band_names: list[str]
    pixel_count: Array
    mean: Array
    std: Array
    pcs: Array | None
    explained: Array | None
    empty_zones: int
    centroid_zones: int
    pixels_read: int
    grid: Grid

    def spread(self, rows: Array, n: int) -> ZonalStats:
        """The same results for ``n`` zones of which these were ``rows``; the others empty."""

        def put(values: Array, fill: float) -> Array:
            out = np.full((n, *values.shape[1:]), fill, values.dtype)
            out[rows] = values
            return out

        return ZonalStats(
            self.band_names,
            put(self.pixel_count, 0),
            put(self.mean, np.nan),
            put(self.std, np.nan),
            None if self.pcs is None else put(self.pcs, np.nan),
            self.explained,
            self.empty_zones + n - len(rows),
            self.centroid_zones,
            self.pixels_read,
            self.grid,
        )


class _Acc:
    """Running sums of one open zone."""

    __slots__ = ("sums", "squares", "count", "inside", "centroid")

    def __init__(self, bands: int):
        self.sums = np.zeros(bands, np.float64)
        self.squares = np.zeros(bands, np.float64)
        self.count = 0
        self.inside = 0
        self.centroid: Array | None = None  # de-quantized vector under the centroid, if valid


@dataclass
class _Layout:
    """Zone windows on the grid and the blocks to read, in visiting order."""

    windows: Array  # (n, 4) r0, r1, c0, c1 (end exclusive)
    centroid_px: Array  # (n, 2) row, col
    blocks: list[tuple[int, Window, Array]]  # (chunk key, window to read, zone indices)
    remaining: Array  # blocks left per zone
    pixels_read: int


def _layout(grid: Grid, boxes: Array, centroids: Array, block_px: int, chunk_blocks: int) -> _Layout:
    res = grid.resolution
    x0, y1 = grid.transform.c, grid.transform.f
    # Pixels whose centres fall in the zone's box (pixel-centre rule on the box).
    c0 = np.ceil((boxes[:, 0] - x0) / res - 0.5)
    c1 = np.floor((boxes[:, 2] - x0) / res - 0.5) + 1
    r0 = np.ceil((y1 - boxes[:, 3]) / res - 0.5)
    r1 = np.floor((y1 - boxes[:, 1]) / res - 0.5) + 1
    cc = np.clip(np.floor((centroids[:, 0] - x0) / res), 0, grid.width - 1)
    cr = np.clip(np.floor((y1 - centroids[:, 1]) / res), 0, grid.height - 1)
    c0 = np.clip(c0, 0, grid.width)
    c1 = np.clip(c1, 0, grid.width)
    r0 = np.clip(r0, 0, grid.height)
    r1 = np.clip(r1, 0, grid.height)
    empty = (c1 <= c0) | (r1 <= r0)
    # The centroid pixel joins every window (it decides zones without a centre inside).
    c0 = np.where(empty, cc, np.minimum(c0, cc))
    c1 = np.where(empty, cc + 1, np.maximum(c1, cc + 1))
    r0 = np.where(empty, cr, np.minimum(r0, cr))
    r1 = np.where(empty, cr + 1, np.maximum(r1, cr + 1))
    windows = np.stack([r0, r1, c0, c1], axis=1).astype(np.int64)
    centroid_px = np.stack([cr, cc], axis=1).astype(np.int64)

    # (zone, block) pairs.
    br0, br1 = windows[:, 0] // block_px, (windows[:, 1] - 1) // block_px
    bc0, bc1 = windows[:, 2] // block_px, (windows[:, 3] - 1) // block_px
    nbr = br1 - br0 + 1
    nbc = bc1 - bc0 + 1
    per_zone = nbr * nbc
    zone_of = np.repeat(np.arange(len(windows)), per_zone)
    k = np.arange(len(zone_of)) - np.repeat(np.cumsum(per_zone) - per_zone, per_zone)
    brow = br0[zone_of] + k // nbc[zone_of]
    bcol = bc0[zone_of] + k % nbc[zone_of]
    nbcols = math.ceil(grid.width / block_px)
    block_id = brow * nbcols + bcol
    chunk_cols = math.ceil(nbcols / chunk_blocks)
    chunk_id = (brow // chunk_blocks) * chunk_cols + bcol // chunk_blocks
    order = np.lexsort((zone_of, block_id, chunk_id))
    zone_of, block_id, chunk_id = zone_of[order], block_id[order], chunk_id[order]
    starts = np.flatnonzero(np.r_[True, block_id[1:] != block_id[:-1]])
    ends = np.r_[starts[1:], len(block_id)]

    blocks = []
    pixels = 0
    for s, e in zip(starts, ends):
        zs = zone_of[s:e]
        b = int(block_id[s])
        bro, bco = (b // nbcols) * block_px, (b % nbcols) * block_px
        w = windows[zs]
        rr0 = max(int(w[:, 0].min()), bro)
        rr1 = min(int(w[:, 1].max()), bro + block_px)
        cc0 = max(int(w[:, 2].min()), bco)
        cc1 = min(int(w[:, 3].max()), bco + block_px)
        win = Window(cc0, rr0, cc1 - cc0, rr1 - rr0)
        pixels += win.width * win.height
        blocks.append((int(chunk_id[s]), win, zs))
    return _Layout(windows, centroid_px, blocks, per_zone.astype(np.int64), pixels)


# ----------------------------------------------------------------------------- computing


class _Zones:
    """The zones' geometries, their open accumulators and their results."""

    def __init__(self, geoms: list[Geometry], lay: _Layout):
        self.geoms = geoms
        self.lay = lay
        n = len(geoms)
        self.remaining = lay.remaining.copy()
        self.open: dict[int, _Acc] = {}
        self.pixel_count = np.zeros(n, np.int64)
        self.mean: Array | None = None
        self.std: Array | None = None
        self.band_names: list[str] | None = None
        self.centroid_zones = 0

    def start(self, reader: MosaicReader) -> None:
        """Allocate the results once the band count is known (from the first reader)."""
        if self.mean is None:
            n, bands = len(self.geoms), reader.plan.bands
            self.band_names = list(reader.plan.band_names)
            self.mean = np.full((n, bands), np.nan, np.float32)
            self.std = np.full((n, bands), np.nan, np.float32)

    def acc(self, z: int, bands: int) -> _Acc:
        acc = self.open.get(z)
        if acc is None:
            acc = self.open[z] = _Acc(bands)
        return acc

    def block_done(self, zs: Array) -> None:
        """One block of these zones is done; zones with no block left are finished."""
        for z in zs:
            self.remaining[z] -= 1
            if self.remaining[z] == 0:
                self.finish(int(z))

    def finish(self, z: int) -> None:
        acc = self.open.pop(z, None)
        if acc is None or self.mean is None or self.std is None:
            return
        if acc.inside == 0:
            # No pixel centre inside (smaller than a pixel): the pixel under the centroid.
            if acc.centroid is not None:
                self.pixel_count[z] = 1
                self.mean[z] = acc.centroid
                self.std[z] = 0.0
                self.centroid_zones += 1
            return
        if acc.count == 0:
            return
        m = acc.sums / acc.count
        self.pixel_count[z] = acc.count
        self.mean[z] = m
        self.std[z] = np.sqrt(np.maximum(acc.squares / acc.count - m * m, 0.0))


def _chunks(lay: _Layout) -> Iterator[list[tuple[int, Window, Array]]]:
    """The layout's blocks, grouped by chunk (consecutive in the visiting order)."""
    i, total = 0, len(lay.blocks)
    while i < total:
        j = i
        while j < total and lay.blocks[j][0] == lay.blocks[i][0]:
            j += 1
        yield lay.blocks[i:j]
        i = j


def compute_zonal(
    source: EmbeddingSource,
    zones: Sequence[Any],
    crs: str,
    resolution_m: float = 10.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pca_components: int = 0,
    progress: Progress | None = None,
    anchor: tuple[float, float] = (0.0, 0.0),
    block_px: int = BLOCK_PX,
    chunk_blocks: int = CHUNK_BLOCKS,
) -> ZonalStats:
    """Statistics of ``source`` within each zone.

    ``zones`` are GeoJSON Polygon/MultiPolygon dicts (or objects with ``__geo_interface__``)
    in ``crs``, which is also the CRS of the grid, at ``resolution_m`` with lines on
    ``anchor`` + multiples of the resolution. ``max_pixels`` limits the pixels read.
    """
    progress = progress or Progress()
    n = len(zones)
    if n == 0:
        raise EmbeddingsError("There are no zones; choose a layer with polygons.")
    geoms: list[Geometry] = []
    boxes = np.empty((n, 4))
    centroids = np.empty((n, 2))
    for i, g in enumerate(zones):
        if i % 1000 == 0:
            progress.check_cancelled()
        geom = as_geojson(g)
        polys = polygons_of(geom, f"Zone {i + 1}")
        geoms.append(geom)
        boxes[i] = polygons_bounds(polys)
        centroids[i] = polygon_centroid(polys)
    if not np.isfinite(boxes).all():
        bad = int((~np.isfinite(boxes).all(axis=1)).sum())
        raise EmbeddingsError(f"{bad} zone(s) have coordinates that are not finite; check the zones' CRS.")
    bounds = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
    grid = snap_grid(bounds, projected_crs(crs, "the UTM zone of the polygons"), resolution_m, anchor)
    lay = _layout(grid, boxes, centroids, block_px, chunk_blocks)
    if max_pixels and lay.pixels_read > max_pixels:
        raise EmbeddingsError(
            f"The zones need {lay.pixels_read:,} pixels read at {grid.resolution:g} m, above the limit of "
            f"{int(max_pixels):,} pixels; use fewer or smaller zones, a coarser resolution, or raise the limit."
        )
    progress.info(
        f"{n:,} zone(s) on a {grid.width} x {grid.height} grid at {grid.resolution:g} m in {crs_name(crs)}; reading "
        f"{len(lay.blocks):,} block part(s), {lay.pixels_read:,} pixels."
    )
    table = _Zones(geoms, lay)
    covered = False
    done = 0
    for part in _chunks(lay):
        # One reader per chunk, on the sub-grid its blocks need.
        r0 = min(w.row_off for _, w, _ in part)
        r1 = max(w.row_off + w.height for _, w, _ in part)
        c0 = min(w.col_off for _, w, _ in part)
        c1 = max(w.col_off + w.width for _, w, _ in part)
        sub = Window(c0, r0, c1 - c0, r1 - r0)
        subgrid = Grid(grid.crs, grid.window_transform(sub), sub.width, sub.height)
        with ExitStack() as stack:
            try:
                reader: MosaicReader | None = stack.enter_context(source.reader(subgrid))
            except NoCoverage:
                reader = None
            for _, win, zs in part:
                progress.check_cancelled()
                if reader is not None:
                    covered = True
                    table.start(reader)
                    block = reader.read(Window(win.col_off - c0, win.row_off - r0, win.width, win.height))
                    _accumulate(block, win, zs, grid, table, progress)
                table.block_done(zs)
                done += 1
                progress.set_progress(95.0 * done / len(lay.blocks))
    if not covered or table.mean is None or table.std is None or table.band_names is None:
        raise EmbeddingsError(
            f"None of the zones lies on the coverage of {source.label}; check the zones' location and the year."
        )
    empty = int((table.pixel_count == 0).sum())
    if table.centroid_zones:
        progress.info(
            f"{table.centroid_zones:,} zone(s) contain no pixel centre and took the pixel under their centroid."
        )
    if empty:
        progress.warning(f"{empty:,} of {n:,} zone(s) have no valid pixel; their statistics are left empty (NULL).")
    pcs = explained = None
    if pca_components:
        pcs, explained = pca_of_means(table.mean, int(pca_components), progress)
    progress.set_progress(100.0)
    return ZonalStats(
        table.band_names,
        table.pixel_count,
        table.mean,
        table.std,
        pcs,
        explained,
        empty,
        table.centroid_zones,
        lay.pixels_read,
        grid,
    )


@dataclass
class _Sums:
    """Per-zone sums of one block: index 0 is "no zone", j + 1 the block's j-th zone."""

    inside: Array  # pixel centres inside (valid or not)
    count: Array  # valid pixels
    sums: Array  # (zones + 1, bands)
    squares: Array


def _single_sums(block: Block, labels: Array, single: Array, n_loc: int) -> _Sums:
    """Sums over the pixels covered by exactly one zone, from the label raster.

    Pixels sorted by zone (stable: each zone's pixels keep their order), then summed per zone
    with reduceat over contiguous runs, a few bands at a time: one pass per group of bands
    instead of two bincounts per band.
    """
    data, valid = block.data, block.valid
    bands = data.shape[0]
    inside = np.bincount(labels[single], minlength=n_loc + 1)
    sel = single & valid
    lab = labels[sel]
    count = np.bincount(lab, minlength=n_loc + 1)
    order = np.argsort(lab, kind="stable")
    pix = np.flatnonzero(sel.ravel())[order]
    lab = lab[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]]) if lab.size else np.zeros(0, np.int64)
    present = lab[starts]
    flat = data.reshape(bands, -1)
    sums = np.zeros((n_loc + 1, bands))
    squares = np.zeros((n_loc + 1, bands))
    if lab.size:
        for b0 in range(0, bands, BAND_GROUP):
            b1 = min(bands, b0 + BAND_GROUP)
            picked = flat[b0:b1, pix]
            v = _LUT64[picked.view(np.uint8)] if block.quantised else picked.astype(np.float64)
            sums[present, b0:b1] = np.add.reduceat(v, starts, axis=1).T
            v *= v
            squares[present, b0:b1] = np.add.reduceat(v, starts, axis=1).T
    return _Sums(inside, count, sums, squares)


def _add_overlap(
    block: Block, win: Window, part: Window, geom: Geometry, grid: Grid, multi: Array, k: int, s: _Sums
) -> None:
    """Add a zone's pixels that other zones cover too (overlaps), from the zone's own mask."""
    from rasterio.features import geometry_mask

    r0, c0 = part.row_off - win.row_off, part.col_off - win.col_off
    r1, c1 = r0 + part.height, c0 + part.width
    mask = geometry_mask(
        [geom],
        out_shape=(part.height, part.width),
        transform=grid.window_transform(part),
        all_touched=False,
        invert=True,
    )
    mask &= multi[r0:r1, c0:c1]
    s.inside[k] += int(mask.sum())
    mask &= block.valid[r0:r1, c0:c1]
    if mask.any():
        sub = block.data[:, r0:r1, c0:c1][:, mask]
        v = _LUT64[sub.view(np.uint8)] if block.quantised else sub.astype(np.float64)
        s.sums[k] += v.sum(axis=1)
        s.squares[k] += np.einsum("ij,ij->i", v, v)
        s.count[k] += v.shape[1]


def _accumulate(block: Block, win: Window, zs: Array, grid: Grid, table: _Zones, progress: Progress) -> None:
    """Add one block's pixels to the zones that touch it.

    All the block's zones are burnt in one pass as labels, and in another as a coverage
    count; pixels covered once take the label's zone. Pixels covered by several zones
    (overlaps) are added, per zone, from that zone's own mask, so overlapping zones each get
    all their pixels and nothing is counted twice.
    """
    from rasterio.enums import MergeAlg
    from rasterio.features import rasterize

    bands = block.data.shape[0]
    shape = (win.height, win.width)
    transform = grid.window_transform(win)
    geoms = table.geoms
    labels = rasterize(
        ((geoms[z], j + 1) for j, z in enumerate(zs)), out_shape=shape, transform=transform, fill=0, dtype="int32"
    )
    progress.check_cancelled()
    multi = None
    if len(zs) > 1:
        cover = rasterize(
            ((geoms[z], 1) for z in zs),
            out_shape=shape,
            transform=transform,
            fill=0,
            dtype="int32",
            merge_alg=MergeAlg.add,
        )
        single, multi = cover == 1, cover > 1
    else:
        single = labels > 0
    s = _single_sums(block, labels, single, len(zs))
    sat = None
    if multi is not None and multi.any():
        # Summed-area table: does a zone's part hold any overlap pixel?
        sat = np.zeros((shape[0] + 1, shape[1] + 1), np.int64)
        sat[1:, 1:] = multi.cumsum(0).cumsum(1)
    for j, z in enumerate(zs):
        if j % 512 == 511:
            progress.check_cancelled()
        z = int(z)
        acc = table.acc(z, bands)
        zr0, zr1, zc0, zc1 = table.lay.windows[z]
        r0, r1 = max(zr0, win.row_off) - win.row_off, min(zr1, win.row_off + win.height) - win.row_off
        c0, c1 = max(zc0, win.col_off) - win.col_off, min(zc1, win.col_off + win.width) - win.col_off
        k = j + 1
        if sat is not None and r1 > r0 and c1 > c0 and sat[r1, c1] - sat[r0, c1] - sat[r1, c0] + sat[r0, c0] > 0:
            assert multi is not None
            part = Window(int(c0 + win.col_off), int(r0 + win.row_off), int(c1 - c0), int(r1 - r0))
            _add_overlap(block, win, part, geoms[z], grid, multi, k, s)
        acc.inside += int(s.inside[k])
        if s.count[k]:
            acc.sums += s.sums[k]
            acc.squares += s.squares[k]
            acc.count += int(s.count[k])
        cr, cc = table.lay.centroid_px[z]
        lr, lc = cr - win.row_off, cc - win.col_off
        if 0 <= lr < win.height and 0 <= lc < win.width and block.valid[lr, lc]:
            vec = block.data[:, lr, lc]
            acc.centroid = _LUT64[vec.view(np.uint8)] if block.quantised else vec.astype(np.float64)


def pca_of_means(mean: Array, k: int, progress: Progress | None = None) -> tuple[Array, Array]:
    """Principal components of the zones' mean vectors (centred), NaN rows for empty zones.

    Returns (scores (n, k) float32, explained-variance ratios (k,)). The eigenvectors of the
    bands x bands scatter matrix give the same components as an SVD of the centred means
    without an n x bands matrix of left vectors. Each component's sign is fixed so that its
    largest loading is positive (the same data always maps the same way round).
    """
    progress = progress or Progress()
    n, bands = mean.shape
    scores = np.full((n, k), np.nan, np.float32)
    ratios = np.full(k, np.nan)
    ok = np.isfinite(mean).all(axis=1)
    if ok.sum() < 2:
        progress.warning("PCA needs at least two zones with data; the pc fields are left empty (NULL).")
        return scores, ratios
    x = mean[ok].astype(np.float64)
    x -= x.mean(axis=0)
    evals, evecs = np.linalg.eigh(x.T @ x)
    order = np.argsort(evals)[::-1]
    evals = np.clip(evals[order], 0.0, None)
    evecs = evecs[:, order]
    total = evals.sum()
    if total <= 0:
        progress.warning("The zones' mean vectors are all equal; PCA has nothing to explain (pc fields left empty).")
        return scores, ratios
    kk = min(k, bands, int(ok.sum()) - 1)
    if kk < k:
        progress.warning(
            f"Only {kk} principal component(s) can be fitted on {int(ok.sum())} zone(s) with data; "
            f"pc{kk + 1}..pc{k} are left empty (NULL)."
        )
    comps = evecs[:, :kk]
    flip = np.sign(comps[np.argmax(np.abs(comps), axis=0), np.arange(kk)])
    comps = comps * np.where(flip == 0, 1.0, flip)
    scores[ok, :kk] = (x @ comps).astype(np.float32)
    ratios[:kk] = evals[:kk] / total
    progress.info(
        "PCA of the zones' mean vectors: "
        + ", ".join(f"pc{i + 1} explains {100 * r:.1f} %" for i, r in enumerate(ratios[:kk]))
        + f" of the variance ({100 * ratios[:kk].sum():.1f} % together)."
    )
    return scores, ratios


def zonal_statistics(request: ZonalRequest, progress: Progress | None = None) -> ZonalStats:
    """``compute_zonal`` on a collection year or an embedding raster, for polygons in their
    layer's CRS: the CRS to compute in follows from the source and the polygons
    (``zones_frame``), and the polygons are reprojected into it here. A polygon that cannot be
    projected gets empty statistics (counted in a warning)."""
    progress = progress or Progress()
    if not request.zones:
        raise EmbeddingsError("There are no zones; choose a layer with polygons.")
    boxes = np.array([polygons_bounds(polygons_of(g, f"Zone {i + 1}")) for i, g in enumerate(request.zones)])
    extent = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
    with open_source(request.source, progress.sub(0, 3)) as src:
        crs, anchor = zones_frame(src, extent, request.zones_crs, request.target_crs)
        local, kept = _project(request.zones, request.zones_crs, crs)
        if not local:
            raise EmbeddingsError(
                f"None of the polygons can be projected into {crs_name(crs)}; choose another target CRS."
            )
        if len(kept) < len(request.zones):
            progress.warning(
                f"{len(request.zones) - len(kept)} polygon(s) cannot be projected into {crs_name(crs)}; "
                "their statistics are empty."
            )
        stats = compute_zonal(
            src,
            local,
            crs,
            request.resolution_m,
            request.max_pixels,
            request.pca_components,
            progress.sub(3, 100),
            anchor=anchor,
        )
    return stats if len(kept) == len(request.zones) else stats.spread(np.asarray(kept), len(request.zones))


def _project(zones: Sequence[Geometry], src: str, dst: str) -> tuple[list[Geometry], list[int]]:
    """The zones in ``dst`` and the indices of those that could be projected (finite)."""
    local, kept = [], []
    for i, geom in enumerate(zones):
        moved = transform_geometry(geom, src, dst)
        if all(np.isfinite(np.asarray(r)).all() for p in polygons_of(moved, f"Zone {i + 1}") for r in p):
            local.append(moved)
            kept.append(i)
    return local, kept
