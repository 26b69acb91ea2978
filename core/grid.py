"""The target grid: CRS, a north-up transform snapped to the resolution, and blocks."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer

from .arrays import Array
from .errors import EmbeddingsError

DEFAULT_BLOCK = 512
DEFAULT_MAX_PIXELS = 200_000_000


@lru_cache(maxsize=64)
def crs_from(text: str) -> CRS:
    try:
        return CRS.from_user_input(text)
    except Exception:
        raise EmbeddingsError(f"'{text}' is not a coordinate reference system the plugin knows.") from None


@lru_cache(maxsize=256)
def transformer(src: str, dst: str) -> Transformer:
    """A cached always-xy transformer between two CRS given as strings."""
    return Transformer.from_crs(crs_from(src), crs_from(dst), always_xy=True)


def same_crs(a: str, b: str) -> bool:
    if a == b:
        return True
    return bool(crs_from(a) == crs_from(b))


def crs_name(crs: str) -> str:
    """A short name for messages: the authority code (EPSG:32616) when there is one."""
    try:
        c = crs_from(crs)
        auth = c.to_authority()
        return f"{auth[0]}:{auth[1]}" if auth else str(c.name)
    except EmbeddingsError:
        return crs


def utm_epsg(lon: float, lat: float) -> str:
    """The WGS84 / UTM zone CRS for a point (standard zones, no Norway exceptions)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def densify_box(xmin: float, ymin: float, xmax: float, ymax: float, n: int = 21) -> tuple[Array, Array]:
    """Points along the outline of a box, so that a reprojected box keeps its bulges."""
    t = np.linspace(0.0, 1.0, n)
    xs = np.concatenate([xmin + (xmax - xmin) * t, np.full(n, xmax), xmax - (xmax - xmin) * t, np.full(n, xmin)])
    ys = np.concatenate([np.full(n, ymin), ymin + (ymax - ymin) * t, np.full(n, ymax), ymax - (ymax - ymin) * t])
    return xs, ys


def transform_bounds(bounds: Sequence[float], src: str, dst: str, n: int = 21) -> tuple[float, float, float, float]:
    """Bounds of a box after reprojection, following its densified outline."""
    xmin, ymin, xmax, ymax = bounds
    if same_crs(src, dst):
        return (xmin, ymin, xmax, ymax)
    xs, ys = densify_box(xmin, ymin, xmax, ymax, n)
    tx, ty = transformer(src, dst).transform(xs, ys)
    tx = np.asarray(tx)
    ty = np.asarray(ty)
    ok = np.isfinite(tx) & np.isfinite(ty)
    if not ok.any():
        raise EmbeddingsError(
            "The extent cannot be projected into the target CRS; choose a smaller extent or another CRS."
        )
    return (float(tx[ok].min()), float(ty[ok].min()), float(tx[ok].max()), float(ty[ok].max()))


@dataclass(frozen=True)
class Window:
    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def slices(self) -> tuple[slice, slice]:
        return (slice(self.row_off, self.row_off + self.height), slice(self.col_off, self.col_off + self.width))


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid in a CRS; ``crs`` is an authority string or WKT."""

    crs: str
    transform: Affine
    width: int
    height: int

    @property
    def resolution(self) -> float:
        return float(self.transform.a)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    def window_bounds(self, w: Window) -> tuple[float, float, float, float]:
        t = self.transform
        x0 = t.c + t.a * w.col_off
        y1 = t.f + t.e * w.row_off
        return (x0, y1 + t.e * w.height, x0 + t.a * w.width, y1)

    def window_transform(self, w: Window) -> Affine:
        return self.transform * Affine.translation(w.col_off, w.row_off)

    def centres(self, w: Window) -> tuple[Array, Array]:
        """1-D x of the window's columns and y of its rows (pixel centres)."""
        t = self.transform
        xs = t.c + t.a * (np.arange(w.col_off, w.col_off + w.width) + 0.5)
        ys = t.f + t.e * (np.arange(w.row_off, w.row_off + w.height) + 0.5)
        return xs, ys

    def blocks(self, size: int = DEFAULT_BLOCK) -> Iterator[Window]:
        """Windows of at most ``size`` x ``size`` pixels, row by row."""
        for r in range(0, self.height, size):
            for c in range(0, self.width, size):
                yield Window(c, r, min(size, self.width - c), min(size, self.height - r))

    def refined(self, factor: int) -> Grid:
        """The same area at ``factor`` times finer pixels."""
        t = self.transform
        return Grid(
            self.crs, Affine(t.a / factor, 0, t.c, 0, t.e / factor, t.f), self.width * factor, self.height * factor
        )

    def bounds_in(self, crs: str, w: Window | None = None) -> tuple[float, float, float, float]:
        b = self.bounds if w is None else self.window_bounds(w)
        return transform_bounds(b, self.crs, crs)

    def index_of(self, x: float, y: float) -> tuple[int, int]:
        """(row, col) of the pixel holding a point in the grid's CRS."""
        col, row = ~self.transform * (x, y)
        return int(math.floor(row)), int(math.floor(col))


Bounds = tuple[float, float, float, float]  # (xmin, ymin, xmax, ymax)


def projected_crs(crs: str, empty_means: str) -> str:
    """``crs`` when it is projected; else one sentence (``empty_means``: what an empty CRS gives)."""
    if crs_from(crs).is_geographic:
        raise EmbeddingsError(
            f"The target CRS {crs} is geographic (degrees); choose a projected CRS in metres, "
            f"or leave it empty for {empty_means}."
        )
    return crs


def snap_grid(bounds: Bounds, crs: str, resolution_m: float, anchor: tuple[float, float] = (0.0, 0.0)) -> Grid:
    """The north-up grid over ``bounds`` in ``crs`` whose lines fall on ``anchor`` + multiples
    of the resolution, edges snapped outward (with a small tolerance, so that bounds already on
    the lattice stay put)."""
    res = float(resolution_m)
    if not res or res <= 0 or not math.isfinite(res):
        raise EmbeddingsError("The resolution must be a positive number of metres (10 is the product's own).")
    ax, ay = anchor[0] % res, anchor[1] % res
    xmin, ymin, xmax, ymax = bounds
    eps = res * 1e-6
    gx0 = math.floor((xmin - ax + eps) / res) * res + ax
    gy0 = math.floor((ymin - ay + eps) / res) * res + ay
    gx1 = math.ceil((xmax - ax - eps) / res) * res + ax
    gy1 = math.ceil((ymax - ay - eps) / res) * res + ay
    width = max(1, int(round((gx1 - gx0) / res)))
    height = max(1, int(round((gy1 - gy0) / res)))
    return Grid(crs, Affine(res, 0.0, gx0, 0.0, -res, gy1), width, height)


def pyramid_resolution(ground_m: float, native_m: float = 10.0) -> float:
    """The coarsest ``native_m`` x 2^k (10, 20, 40, 80 ... m) not coarser than ``ground_m``
    (the size of a screen pixel on the ground): the resolution of a search that follows the
    map, on the levels where the product's overviews lie; ``native_m`` when zoomed in."""
    if not math.isfinite(ground_m) or ground_m < 2 * native_m:
        return float(native_m)
    return float(native_m * 2 ** math.floor(math.log2(ground_m / native_m) + 1e-9))


def centre_utm(extent: Bounds, extent_crs: str, what: str = "the extent") -> str:
    """The UTM zone of the centre of ``extent``."""
    xmin, ymin, xmax, ymax = extent
    cx, cy = transformer(extent_crs, "EPSG:4326").transform((xmin + xmax) / 2, (ymin + ymax) / 2)
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise EmbeddingsError(f"The centre of {what} cannot be placed on Earth; check its CRS.")
    return utm_epsg(cx, cy)


def grid_for_extent(
    extent: Bounds,
    extent_crs: str,
    target_crs: str | None = None,
    resolution_m: float = 10.0,
    anchor: tuple[float, float] = (0.0, 0.0),
) -> Grid:
    """The grid covering ``extent`` in ``target_crs`` (default: UTM zone of the centre).

    Edges are snapped outward to ``anchor`` + multiples of the resolution, so that at 10 m in
    the tiles' own UTM zone the grid lines up with the AEF pixels.
    """
    xmin, ymin, xmax, ymax = (float(v) for v in extent)
    if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)) or xmax <= xmin or ymax <= ymin:
        raise EmbeddingsError("The extent is empty; draw or choose an extent with a width and a height.")
    if not resolution_m or resolution_m <= 0:
        raise EmbeddingsError("The resolution must be a positive number of metres (10 is the product's own).")
    crs = projected_crs(target_crs or centre_utm((xmin, ymin, xmax, ymax), extent_crs), "the UTM zone of the extent")
    return snap_grid(transform_bounds((xmin, ymin, xmax, ymax), extent_crs, crs), crs, resolution_m, anchor)


def check_size(grid: Grid, max_pixels: int, bands: int = 64) -> None:
    if max_pixels and grid.pixels > max_pixels:
        raise EmbeddingsError(
            f"The extent is {grid.width} x {grid.height} = {grid.pixels:,} pixels at {grid.resolution:g} m, "
            f"above the limit of {int(max_pixels):,} pixels ({grid.pixels * bands / 1e9:.1f} GB of embeddings); "
            "zoom in, choose a coarser resolution, or raise the limit."
        )


def north_up_grid(crs: str, transform: Affine, width: int, height: int, label: str) -> Grid:
    """The north-up grid of a raster (a bottom-up raster gets the same area described from the top)."""
    t = transform
    if t.b or t.d:
        raise EmbeddingsError(f"The raster {label} is rotated; warp it to a north-up grid first.")
    if t.e > 0:  # bottom-up: same pixels, described from the top
        t = Affine(t.a, 0.0, t.c, 0.0, -t.e, t.f + t.e * height)
    if abs(abs(t.a) - abs(t.e)) > 1e-9 * abs(t.a):
        raise EmbeddingsError(f"The raster {label} has non-square pixels; warp it to square pixels first.")
    return Grid(crs, t, width, height)


def crop_grid(grid: Grid, extent: Bounds, extent_crs: str) -> Grid:
    """The part of ``grid`` that covers ``extent`` (given in ``extent_crs``), on the same pixels.

    Edges snap outward to whole pixels of ``grid``; an extent that misses the grid is an error.
    """
    x0, y0, x1, y1 = transform_bounds(tuple(float(v) for v in extent), extent_crs, grid.crs)
    gx0, gy0, gx1, gy1 = grid.bounds
    x0, y0, x1, y1 = max(x0, gx0), max(y0, gy0), min(x1, gx1), min(y1, gy1)
    if x1 <= x0 or y1 <= y0:
        raise EmbeddingsError(
            "The extent does not overlap the input raster; choose an extent on the raster, or leave it empty."
        )
    t = grid.transform
    eps = 1e-6
    c0 = max(0, int(math.floor((x0 - t.c) / t.a + eps)))
    c1 = min(grid.width, int(math.ceil((x1 - t.c) / t.a - eps)))
    r0 = max(0, int(math.floor((y1 - t.f) / t.e + eps)))
    r1 = min(grid.height, int(math.ceil((y0 - t.f) / t.e - eps)))
    c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
    return Grid(grid.crs, grid.window_transform(Window(c0, r0, 0, 0)), c1 - c0, r1 - r0)


@dataclass(frozen=True)
class GridSpec:
    """What the user asked for: an extent (in ``extent_crs``), a target CRS (None = the UTM
    zone of the extent's centre), a resolution and a pixel limit. ``align_to_tiles``: at a
    coarser resolution than the tiles', put the grid lines on the pixel lattice of the tile
    under the extent, so that its overviews line up and are read instead of native pixels."""

    extent: Bounds | None = None
    extent_crs: str | None = None
    target_crs: str | None = None
    resolution_m: float = 10.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    align_to_tiles: bool = False


def resolve_grid(
    spec: GridSpec, native: Grid | None = None, alternative: str = "", anchor: tuple[float, float] = (0.0, 0.0)
) -> Grid:
    """The output grid: ``native`` (an input raster's own grid) cropped to the extent if one is
    given, else the snapped grid of the extent; refused above the pixel limit.

    ``alternative`` completes the sentence for a missing extent (", or two embedding rasters").
    """
    if native is not None:
        grid = native if spec.extent is None else crop_grid(native, spec.extent, spec.extent_crs or native.crs)
    else:
        if spec.extent is None:
            raise EmbeddingsError(f"Choose an extent to map (for example the map canvas extent){alternative}.")
        grid = grid_for_extent(spec.extent, spec.extent_crs or "EPSG:4326", spec.target_crs, spec.resolution_m, anchor)
    check_size(grid, spec.max_pixels)
    return grid
