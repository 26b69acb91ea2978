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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from affine import Affine

from .errors import EmbeddingsError, NoCoverage
from .grid import DEFAULT_MAX_PIXELS, Grid, Window, crs_from, grid_of_raster, transformer, utm_epsg
from .progress import Progress
from .quant import LUT_ZERO

BLOCK_PX = 512
CHUNK_BLOCKS = 4
# Bands de-quantized at once per block when summing per zone (8 x pixels float64 in memory).
BAND_GROUP = 8
_LUT64 = LUT_ZERO.astype(np.float64)


# ----------------------------------------------------------------------------- geometry


def _polygons(geom: dict, index: int = 0) -> list:
    """The polygons of a GeoJSON Polygon/MultiPolygon as lists of (n, 2) float64 rings."""
    if hasattr(geom, "__geo_interface__"):
        geom = geom.__geo_interface__
    kind = geom.get("type") if isinstance(geom, dict) else None
    if kind == "Polygon":
        polys = [geom["coordinates"]]
    elif kind == "MultiPolygon":
        polys = geom["coordinates"]
    else:
        raise EmbeddingsError(f"Zone {index + 1} is a {kind or 'non-geometry'}, not a polygon; give polygon zones.")
    out = []
    for rings in polys:
        arrs = [np.asarray(r, dtype=np.float64)[:, :2] for r in rings if len(r)]
        if arrs and len(arrs[0]) >= 4:
            out.append(arrs)
    if not out:
        raise EmbeddingsError(f"Zone {index + 1} has no polygon ring with at least 4 points; repair its geometry.")
    return out


def _ring_area_centroid(ring: np.ndarray, ox: float, oy: float) -> tuple[float, float, float]:
    """Signed area and centroid of a ring, computed relative to (ox, oy) for precision."""
    x = ring[:, 0] - ox
    y = ring[:, 1] - oy
    if x[0] != x[-1] or y[0] != y[-1]:
        x = np.append(x, x[0])
        y = np.append(y, y[0])
    x, x1 = x[:-1], x[1:]
    y, y1 = y[:-1], y[1:]
    cross = x * y1 - x1 * y
    a = cross.sum() / 2.0
    if a == 0:
        return 0.0, 0.0, 0.0
    return a, float(((x + x1) * cross).sum() / (6.0 * a)), float(((y + y1) * cross).sum() / (6.0 * a))


def polygon_centroid(polys: list) -> tuple[float, float]:
    """Area-weighted centroid of polygons with holes; the mean vertex when the area is zero."""
    ox, oy = polys[0][0][0]
    total = cx = cy = 0.0
    for rings in polys:
        for k, ring in enumerate(rings):
            a, rx, ry = _ring_area_centroid(ring, ox, oy)
            w = abs(a) if k == 0 else -abs(a)  # holes subtract
            total += w
            cx += w * rx
            cy += w * ry
    if total <= 0 or not math.isfinite(total):
        pts = np.concatenate([rings[0] for rings in polys])
        return float(pts[:, 0].mean()), float(pts[:, 1].mean())
    return ox + cx / total, oy + cy / total


def _bounds(polys: list) -> tuple[float, float, float, float]:
    pts = np.concatenate([rings[0] for rings in polys])
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def grid_over(bounds, crs: str, resolution_m: float, anchor: tuple[float, float] = (0.0, 0.0)) -> Grid:
    """A north-up grid over ``bounds`` whose lines fall on ``anchor`` + multiples of the resolution."""
    res = float(resolution_m)
    if not res or res <= 0 or not math.isfinite(res):
        raise EmbeddingsError("The resolution must be a positive number of metres (10 is the product's own).")
    if crs_from(crs).is_geographic:
        raise EmbeddingsError(
            f"The CRS {crs} is geographic (degrees); choose a projected CRS in metres, or leave the target CRS "
            "empty for the UTM zone of the zones."
        )
    ax, ay = anchor[0] % res, anchor[1] % res
    xmin, ymin, xmax, ymax = bounds
    eps = res * 1e-6
    gx0 = math.floor((xmin - ax + eps) / res) * res + ax
    gy0 = math.floor((ymin - ay + eps) / res) * res + ay
    gx1 = math.ceil((xmax - ax - eps) / res) * res + ax
    gy1 = math.ceil((ymax - ay - eps) / res) * res + ay
    width = max(1, int(round((gx1 - gx0) / res)))
    height = max(1, int(round((gy1 - gy0) / res)))
    return Grid(crs, Affine(res, 0.0, gx0, 0.0, -res, gy0 + height * res), width, height)


def zones_crs(
    extent, extent_crs: str, target_crs: str | None = None, input_path: str | None = None
) -> tuple[str, tuple[float, float]]:
    """The CRS to compute in and the grid anchor: ``target_crs`` if given, else the input
    raster's own CRS and pixel lattice (no resampling), else the UTM zone of the zones' centre."""
    if target_crs:
        crs = target_crs
    elif input_path:
        raster = grid_of_raster(input_path)
        t = raster.transform
        return raster.crs, (t.c, t.f)
    else:
        xmin, ymin, xmax, ymax = extent
        lon, lat = transformer(extent_crs, "EPSG:4326").transform((xmin + xmax) / 2, (ymin + ymax) / 2)
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise EmbeddingsError("The centre of the zones cannot be placed on Earth; check the zones layer's CRS.")
        crs = utm_epsg(lon, lat)
    if input_path:
        raster = grid_of_raster(input_path)
        if crs_from(raster.crs) == crs_from(crs):
            t = raster.transform
            return crs, (t.c, t.f)
    return crs, (0.0, 0.0)


def _crs_label(crs: str) -> str:
    auth = crs_from(crs).to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else crs_from(crs).name


# ----------------------------------------------------------------------------- results


@dataclass
class ZonalStats:
    """Per-zone results, in the order of the zones given.

    ``mean``/``std`` are float32 (n, bands), NaN for zones without a valid pixel; ``std`` is
    the population standard deviation. ``pcs`` is (n, k) or None; ``explained`` holds the
    fraction of the variance of the zones' means that each component explains.
    """

    band_names: list
    pixel_count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    pcs: np.ndarray | None
    explained: np.ndarray | None
    empty_zones: int
    centroid_zones: int
    pixels_read: int
    grid: Grid


class _Acc:
    """Running sums of one open zone."""

    __slots__ = ("sums", "squares", "count", "inside", "centroid")

    def __init__(self, bands: int):
        self.sums = np.zeros(bands, np.float64)
        self.squares = np.zeros(bands, np.float64)
        self.count = 0
        self.inside = 0
        self.centroid = None  # de-quantized vector under the centroid, if valid


@dataclass
class _Layout:
    """Zone windows on the grid and the blocks to read, in visiting order."""

    windows: np.ndarray  # (n, 4) r0, r1, c0, c1 (end exclusive)
    centroid_px: np.ndarray  # (n, 2) row, col
    blocks: list  # [(chunk key, Window to read, zone indices)]
    remaining: np.ndarray  # blocks left per zone
    pixels_read: int


def _layout(grid: Grid, boxes: np.ndarray, centroids: np.ndarray, block_px: int, chunk_blocks: int) -> _Layout:
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


def compute_zonal(
    source,
    zones: Sequence,
    crs: str,
    resolution_m: float = 10.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pca_components: int = 0,
    progress: Progress | None = None,
    anchor: tuple[float, float] = (0.0, 0.0),
    block_px: int = BLOCK_PX,
    chunk_blocks: int = CHUNK_BLOCKS,
) -> ZonalStats:
    """Statistics of ``source`` (an ``EmbeddingSource``) within each zone.

    ``zones`` are GeoJSON Polygon/MultiPolygon dicts (or objects with ``__geo_interface__``)
    in ``crs``, which is also the CRS of the grid, at ``resolution_m`` with lines on
    ``anchor`` + multiples of the resolution. ``max_pixels`` limits the pixels read.
    """
    from .reader import MosaicReader

    progress = progress or Progress()
    n = len(zones)
    if n == 0:
        raise EmbeddingsError("There are no zones; choose a layer with polygons.")
    geoms = []
    boxes = np.empty((n, 4))
    centroids = np.empty((n, 2))
    for i, g in enumerate(zones):
        if i % 1000 == 0:
            progress.check_cancelled()
        g = g.__geo_interface__ if hasattr(g, "__geo_interface__") else g
        p = _polygons(g, i)
        geoms.append(g)
        boxes[i] = _bounds(p)
        centroids[i] = polygon_centroid(p)
    if not np.isfinite(boxes).all():
        bad = int((~np.isfinite(boxes).all(axis=1)).sum())
        raise EmbeddingsError(f"{bad} zone(s) have coordinates that are not finite; check the zones' CRS.")
    bounds = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
    grid = grid_over(bounds, crs, resolution_m, anchor)
    lay = _layout(grid, boxes, centroids, block_px, chunk_blocks)
    if max_pixels and lay.pixels_read > max_pixels:
        raise EmbeddingsError(
            f"The zones need {lay.pixels_read:,} pixels read at {grid.resolution:g} m, above the limit of "
            f"{int(max_pixels):,} pixels; use fewer or smaller zones, a coarser resolution, or raise the limit."
        )
    progress.info(
        f"{n:,} zone(s) on a {grid.width} x {grid.height} grid at {grid.resolution:g} m in {_crs_label(crs)}; reading "
        f"{len(lay.blocks):,} block part(s), {lay.pixels_read:,} pixels."
    )

    pixel_count = np.zeros(n, np.int64)
    mean = std = None
    band_names = None
    remaining = lay.remaining.copy()
    open_acc: dict[int, _Acc] = {}
    covered = False
    centroid_zones = 0

    def finish(z: int) -> None:
        nonlocal centroid_zones
        acc = open_acc.pop(z, None)
        if acc is None:
            return
        if acc.inside == 0:
            if acc.centroid is not None:
                pixel_count[z] = 1
                mean[z] = acc.centroid
                std[z] = 0.0
                centroid_zones += 1
            return
        if acc.count == 0:
            return
        m = acc.sums / acc.count
        pixel_count[z] = acc.count
        mean[z] = m
        std[z] = np.sqrt(np.maximum(acc.squares / acc.count - m * m, 0.0))

    done = 0
    total = len(lay.blocks)
    i = 0
    while i < total:
        chunk = lay.blocks[i][0]
        j = i
        while j < total and lay.blocks[j][0] == chunk:
            j += 1
        part = lay.blocks[i:j]
        # One reader per chunk, on the sub-grid its blocks need.
        r0 = min(w.row_off for _, w, _ in part)
        r1 = max(w.row_off + w.height for _, w, _ in part)
        c0 = min(w.col_off for _, w, _ in part)
        c1 = max(w.col_off + w.width for _, w, _ in part)
        sub = Window(c0, r0, c1 - c0, r1 - r0)
        subgrid = Grid(grid.crs, grid.window_transform(sub), sub.width, sub.height)
        try:
            reader = MosaicReader(source, subgrid).__enter__()
        except NoCoverage:
            reader = None
        try:
            if reader is not None and mean is None:
                plan = reader.plan
                band_names = list(plan.band_names)
                mean = np.full((n, plan.bands), np.nan, np.float32)
                std = np.full((n, plan.bands), np.nan, np.float32)
            for _, win, zs in part:
                progress.check_cancelled()
                if reader is not None:
                    covered = True
                    block = reader.read(Window(win.col_off - c0, win.row_off - r0, win.width, win.height))
                    _accumulate(block, win, zs, grid, lay, geoms, open_acc, progress)
                for z in zs:
                    remaining[z] -= 1
                    if remaining[z] == 0:
                        finish(int(z))
                done += 1
                progress.set_progress(95.0 * done / total)
        finally:
            if reader is not None:
                reader.__exit__(None, None, None)
        i = j
    if not covered:
        raise EmbeddingsError(
            f"None of the zones lies on the coverage of {source.label}; check the zones' location and the year."
        )
    empty = int((pixel_count == 0).sum())
    if centroid_zones:
        progress.info(f"{centroid_zones:,} zone(s) contain no pixel centre and took the pixel under their centroid.")
    if empty:
        progress.warning(f"{empty:,} of {n:,} zone(s) have no valid pixel; their statistics are left empty (NULL).")
    pcs = explained = None
    if pca_components:
        pcs, explained = pca_of_means(mean, int(pca_components), progress)
    progress.set_progress(100.0)
    return ZonalStats(band_names, pixel_count, mean, std, pcs, explained, empty, centroid_zones, lay.pixels_read, grid)


def _accumulate(block, win: Window, zs, grid: Grid, lay: _Layout, geoms, open_acc, progress) -> None:
    """Add one block's pixels to the zones that touch it.

    All the block's zones are burnt in one pass as labels, and in another as a coverage
    count; pixels covered once take the label's zone (summed per zone with bincount).
    Pixels covered by several zones (overlaps) are added, per zone, from that zone's own
    mask, so overlapping zones each get all their pixels and nothing is counted twice.
    """
    from rasterio.enums import MergeAlg
    from rasterio.features import geometry_mask, rasterize

    data, valid = block.data, block.valid
    bands = data.shape[0]
    shape = (win.height, win.width)
    transform = grid.window_transform(win)
    n_loc = len(zs)
    labels = rasterize(
        ((geoms[z], j + 1) for j, z in enumerate(zs)), out_shape=shape, transform=transform, fill=0, dtype="int32"
    )
    progress.check_cancelled()
    if n_loc > 1:
        cover = rasterize(
            ((geoms[z], 1) for z in zs),
            out_shape=shape,
            transform=transform,
            fill=0,
            dtype="int32",
            merge_alg=MergeAlg.add,
        )
        single = cover == 1
        multi = cover > 1
    else:
        single = labels > 0
        multi = None
    inside = np.bincount(labels[single], minlength=n_loc + 1)
    sel = single & valid
    lab = labels[sel]
    count = np.bincount(lab, minlength=n_loc + 1)
    # Pixels sorted by zone (stable: each zone's pixels keep their order), then summed per
    # zone with reduceat over contiguous runs, a few bands at a time: one pass per group of
    # bands instead of two bincounts per band.
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
        del picked, v

    if multi is not None and multi.any():
        # Summed-area table: does a zone's part hold any overlap pixel?
        sat = np.zeros((shape[0] + 1, shape[1] + 1), np.int64)
        sat[1:, 1:] = multi.cumsum(0).cumsum(1)
    else:
        sat = None
    for j, z in enumerate(zs):
        if j % 512 == 511:
            progress.check_cancelled()
        z = int(z)
        acc = open_acc.get(z)
        if acc is None:
            acc = open_acc[z] = _Acc(bands)
        zr0, zr1, zc0, zc1 = lay.windows[z]
        r0, r1 = max(zr0, win.row_off) - win.row_off, min(zr1, win.row_off + win.height) - win.row_off
        c0, c1 = max(zc0, win.col_off) - win.col_off, min(zc1, win.col_off + win.width) - win.col_off
        k = j + 1
        if sat is not None and r1 > r0 and c1 > c0 and sat[r1, c1] - sat[r0, c1] - sat[r1, c0] + sat[r0, c0] > 0:
            part = Window(int(c0 + win.col_off), int(r0 + win.row_off), int(c1 - c0), int(r1 - r0))
            mask = geometry_mask(
                [geoms[z]],
                out_shape=(part.height, part.width),
                transform=grid.window_transform(part),
                all_touched=False,
                invert=True,
            )
            mask &= multi[r0:r1, c0:c1]
            inside[k] += int(mask.sum())
            mask &= valid[r0:r1, c0:c1]
            if mask.any():
                sub = data[:, r0:r1, c0:c1][:, mask]
                v = _LUT64[sub.view(np.uint8)] if block.quantised else sub.astype(np.float64)
                sums[k] += v.sum(axis=1)
                squares[k] += np.einsum("ij,ij->i", v, v)
                count[k] += v.shape[1]
        acc.inside += int(inside[k])
        if count[k]:
            acc.sums += sums[k]
            acc.squares += squares[k]
            acc.count += int(count[k])
        cr, cc = lay.centroid_px[z]
        lr, lc = cr - win.row_off, cc - win.col_off
        if 0 <= lr < win.height and 0 <= lc < win.width and valid[lr, lc]:
            vec = data[:, lr, lc]
            acc.centroid = _LUT64[vec.view(np.uint8)] if block.quantised else vec.astype(np.float64)


def pca_of_means(mean: np.ndarray, k: int, progress: Progress | None = None):
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


def zonal_statistics(
    source: str | None,
    year: int | None,
    input_path: str | None,
    zones: Sequence,
    crs: str,
    resolution_m: float = 10.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pca_components: int = 0,
    progress: Progress | None = None,
    anchor: tuple[float, float] = (0.0, 0.0),
) -> ZonalStats:
    """``compute_zonal`` on a collection year (``source`` + ``year``) or an embedding raster."""
    from .load import open_source

    progress = progress or Progress()
    src = open_source(source, year, input_path, progress=progress.sub(0, 3))
    try:
        return compute_zonal(
            src, zones, crs, resolution_m, max_pixels, pca_components, progress.sub(3, 100), anchor=anchor
        )
    finally:
        src.close()
