"""Change over years: a block kernel over all years of one window at once.

Every output is a function of the cosines between the renormalised vectors of one pixel in
different years, so the kernel computes, per pixel, the Y x Y matrix of cosines (the Gram
matrix of the year vectors) once and derives everything from it. At one pixel:

- baseline: the renormalised sum of the baseline years that have data there; where none
  has, the first year with data there (which then gets no change value itself);
- change of each year after the baseline: 1 - cos(year, baseline); NaN where the year or
  the baseline has no data;
- year of change, "since when the pixel has stayed changed": the first year Y after the
  baseline such that Y and every later year with data have change >= threshold. 0 where the
  last year with data is below the threshold (stable land, a disturbance that came back).
  A larger temporary disturbance after a persistent change does not move it: every year of
  it is still >= threshold. -1 where no year after the baseline has a change value, i.e.
  fewer than two years have data (with several baseline years, also where only baseline
  years have data: there is nothing to compare with the baseline);
- magnitude: the largest step 1 - cos between consecutive years with data (baseline years
  included), NaN where fewer than two years have data; step year: the later year of that
  step (the first such step on ties) where magnitude >= threshold, 0 where it is below, -1
  where fewer than two years have data;
- anomaly of each year: 1 - cos(year, renormalised sum of the other years with data); NaN
  where the year has no data or no other year has.

A year without data at a pixel is skipped there: a step spans the missing year, and the
year of change is the first year WITH DATA from which the pixel stays changed. A pixel has
no data in a year where any band is -128 (int8) or not finite (float), or the vector is 0.

Cost: Y (Y + 1) / 2 dot products of 64 bands per pixel, in runs of pixels sized to stay in
cache; memory holds the block's codes (Y x 64 bytes a pixel), one run of float32 vectors and
Gram matrices, and the outputs. Cosines come from float32 dot products: they agree with a
float64 computation (and ``embeddings:change``) to about 1e-6.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .arrays import Array
from .change import DEFAULT_MIN_AREA_M2, DEFAULT_THRESHOLD, NODATA_CHANGE
from .collection import open_collection
from .errors import EmbeddingsError
from .grid import DEFAULT_BLOCK, Grid, GridSpec, crs_name, resolve_grid
from .output import RasterWriter, open_float_output, open_int16_output
from .pipeline import reading, stream, windows_for
from .polygons import Area, areas_above
from .progress import Progress
from .quant import NODATA
from .report import area_rows, grid_facts, write_change_report
from .source import CollectionSource, EmbeddingSource, RasterSource
from .stats import StreamingHistogram

NODATA_YEAR = -1  # int16 no-data of the year-of-change and step-year rasters
STABLE_YEAR = 0  # year of change of stable land and of a disturbance that came back
# Vectors are made and multiplied in runs of pixels whose float32 vectors (Y x bands x
# pixels) stay in cache: 590 k values = 2.4 MB (1024 pixels of 9 years), measured a little
# faster than 2 or 4 times that for 5 and 9 years. The per-pixel arithmetic after that works
# on longer runs, where NumPy's cost per call no longer dominates.
CHUNK_VALUES = 9 * 64 * 1024
MIN_CHUNK_PIXELS = 256
MAX_CHUNK_PIXELS = 16384
RUN_PIXELS = 32768
_YEAR_RE = re.compile(r"(?<!\d)(20\d\d)(?!\d)")


@dataclass
class TrajectoryBlock:
    """The trajectory outputs of one block; float no-data is NaN, int16 no-data is -1.

    ``change`` has one band per year of ``change_years`` (the years after the baseline);
    ``anomaly`` one band per year of ``years``.
    """

    years: tuple[int, ...]
    baseline_years: tuple[int, ...]
    change_years: tuple[int, ...]
    threshold: float
    change: Array  # float32 (len(change_years), h, w)
    year_of_change: Array  # int16 (h, w): a year, 0 (not persistently changed), -1
    magnitude: Array  # float32 (h, w)
    step_year: Array  # int16 (h, w): a year, 0 (largest step below threshold), -1
    anomaly: Array  # float32 (len(years), h, w)
    years_with_data: Array  # uint8 (h, w)


def _chunk_pixels(n_years: int, bands: int) -> int:
    return int(min(MAX_CHUNK_PIXELS, max(MIN_CHUNK_PIXELS, CHUNK_VALUES // max(1, n_years * bands))))


def _check_years(years: Sequence[int], baseline_years: Sequence[int]) -> tuple[list[int], list[int]]:
    years = [int(y) for y in years]
    baseline = sorted({int(y) for y in baseline_years})
    if len(set(years)) != len(years) or years != sorted(years):
        raise EmbeddingsError(f"The years {years} must be distinct and in increasing order.")
    missing = [y for y in baseline if y not in years]
    if not baseline or missing:
        raise EmbeddingsError(f"The baseline years {baseline} must be among the block's years {years}.")
    if any(y < baseline[-1] and y not in baseline for y in years):
        raise EmbeddingsError(f"The baseline years {baseline} must come before every other year of {years}.")
    if len(baseline) == len(years):
        raise EmbeddingsError(f"The years {years} have no year after the baseline {baseline} to compare with it.")
    return years, baseline


def trajectory_of_block(
    data: Array | Sequence[Array],
    years: Sequence[int],
    baseline_years: Sequence[int],
    threshold: float = DEFAULT_THRESHOLD,
) -> TrajectoryBlock:
    """All trajectory outputs for one window, from every year of it at once.

    ``data`` is (Y, bands, h, w) or a sequence of Y arrays (bands, h, w), one per year of
    ``years`` (increasing): int8 AEF codes with -128 as no-data, or floats with NaN as no-data
    (each year may be either). A zero vector counts as no data. ``baseline_years`` are the
    first year(s) of ``years``; the other years get change bands.
    """
    if not 0.0 <= float(threshold) <= 2.0:  # also refuses NaN
        raise EmbeddingsError("The change threshold must be between 0 and 2 (1 - cosine); 0.25 is a good start.")
    years, baseline = _check_years(years, baseline_years)
    n_years = len(years)
    if len(data) != n_years:
        raise EmbeddingsError(f"The block has {len(data)} years of embeddings for {n_years} years {years}.")
    shapes = {tuple(d.shape) for d in data}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise EmbeddingsError(
            "The years of the block have different shapes (bands, rows, columns): "
            + ", ".join(f"{y}: {tuple(d.shape)}" for y, d in zip(years, data))
            + "; use embeddings of the same product on the same grid."
        )
    bands, h, w = next(iter(shapes))
    n = h * w
    flat = [np.asarray(d).reshape(bands, n) for d in data]
    base_idx = [years.index(y) for y in baseline]
    cmp_idx = [i for i in range(n_years) if i not in base_idx]
    thr = np.float32(threshold)
    year_arr = np.asarray(years, dtype=np.int16)

    change = np.full((len(cmp_idx), n), np.nan, dtype=np.float32)
    anomaly = np.full((n_years, n), np.nan, dtype=np.float32)
    magnitude = np.full(n, np.nan, dtype=np.float32)
    step_year = np.full(n, NODATA_YEAR, dtype=np.int16)
    year_of_change = np.full(n, NODATA_YEAR, dtype=np.int16)
    years_with_data = np.zeros(n, dtype=np.uint8)

    chunk = _chunk_pixels(n_years, bands)
    run = max(chunk, RUN_PIXELS // chunk * chunk)
    finite = all(d.dtype == np.int8 for d in flat)
    vec = np.empty((n_years, bands, chunk), dtype=np.float32)
    gchunk = np.empty((n_years, n_years, chunk), dtype=np.float32)
    gram = np.empty((n_years, n_years, run), dtype=np.float32)
    for start in range(0, n, run):
        m = min(run, n - start)
        g = gram[:, :, :m]
        nodata = np.zeros((n_years, m), dtype=bool)
        for s0 in range(0, m, chunk):
            mc = min(chunk, m - s0)
            sl = slice(start + s0, start + s0 + mc)
            v = vec[:, :, :mc]
            for i, d in enumerate(flat):
                part = d[:, sl]
                if part.dtype == np.int8:
                    # -128 is the smallest int8: a pixel has no data where its minimum over bands is it.
                    nodata[i, s0 : s0 + mc] = part.min(axis=0) == NODATA
                    # Only directions matter, so q * |q| (exact in int16) stands for the value
                    # sign(q) (q / 127.5)^2: 3x faster than the lookup table and without rounding.
                    q = part.astype(np.int16)
                    np.multiply(q, np.abs(q), out=v[i], casting="unsafe")
                else:
                    v[i] = part
            # The upper triangle of the Gram matrix, a row (year i with years i..Y-1) per call.
            gc = gchunk[:, :, :mc]
            for i in range(n_years):
                np.einsum("bn,kbn->kn", v[i], v[i:], out=gc[i, i:])
            g[:, :, s0 : s0 + mc] = gc
        sq = g.diagonal().T  # (Y, m) squared norms
        # float input: NaN or inf in a band makes the squared norm non-finite.
        with np.errstate(invalid="ignore"):
            valid = ~nodata & np.isfinite(sq) & (sq > 0)
        cos = _cosines(g, valid, finite)
        sl = slice(start, start + m)
        _derive(cos, valid, base_idx, cmp_idx, year_arr, thr, sl, change, anomaly, magnitude, step_year, year_of_change)
        years_with_data[sl] = valid.sum(axis=0)

    return TrajectoryBlock(
        years=tuple(years),
        baseline_years=tuple(baseline),
        change_years=tuple(years[i] for i in cmp_idx),
        threshold=float(threshold),
        change=change.reshape(len(cmp_idx), h, w),
        year_of_change=year_of_change.reshape(h, w),
        magnitude=magnitude.reshape(h, w),
        step_year=step_year.reshape(h, w),
        anomaly=anomaly.reshape(n_years, h, w),
        years_with_data=years_with_data.reshape(h, w),
    )


def _cosines(g: Array, valid: Array, finite: bool) -> Array:
    """(Y, Y, m) cosines of the renormalised year vectors from the Gram matrix's upper triangle;
    0 wherever either year has no data, 1 on the diagonal where the year has data.

    Not clipped to [-1, 1]: every value derived from them is clipped instead. ``finite`` says
    that the Gram matrix holds no NaN (int8 input), so that multiplying by 0 clears no-data.
    """
    n_years = g.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(valid, 1.0 / np.sqrt(g.diagonal().T), np.float32(0.0)).astype(np.float32)
    for i in range(n_years - 1):
        g[i + 1 :, i] = g[i, i + 1 :]
    with np.errstate(invalid="ignore"):
        cos: Array = g * inv[:, None]
        cos *= inv[None, :]
    if not finite:
        cos[~(valid[:, None] & valid[None, :])] = 0.0  # NaN of float input without data
    idx = np.arange(n_years)
    cos[idx, idx] = valid
    return cos


def _derive(
    cos: Array,
    valid: Array,
    base_idx: list[int],
    cmp_idx: list[int],
    year_arr: Array,
    thr: np.float32,
    sl: slice,
    change: Array,
    anomaly: Array,
    magnitude: Array,
    step_year: Array,
    year_of_change: Array,
) -> None:
    """Fill the outputs' run ``sl`` from the cosines of its pixels."""
    n_years, _, m = cos.shape
    count = valid.sum(axis=0)
    one, nan = np.float32(1.0), np.float32(np.nan)

    # Baseline: the renormalised sum of the baseline years with data, |sum|^2 = sum of their cosines.
    b = np.asarray(base_idx)
    has_base = valid[b].any(axis=0)
    if len(b) == 1:
        cos_base = cos[:, b[0]]
    else:
        norm_b = np.sqrt(cos[np.ix_(b, b)].sum(axis=(0, 1)))
        with np.errstate(invalid="ignore", divide="ignore"):
            cos_base = cos[:, b].sum(axis=1) / norm_b
    has = valid & has_base
    # Elsewhere the first year with data is the baseline; it has no change value itself.
    fallback = ~has_base & (count > 0)
    if fallback.any():
        cols = np.nonzero(fallback)[0]
        first = np.argmax(valid[:, cols], axis=0)
        cos_base = cos_base.copy()
        cos_base[:, cols] = cos[:, first, cols]
        has[:, cols] = valid[:, cols]
        has[first, cols] = False
    d = one - cos_base
    np.clip(d, 0.0, 2.0, out=d)
    d[~has] = nan
    change[:, sl] = d[cmp_idx]

    # Year of change, scanning backwards: a pixel stays "changed from here on" while every
    # compared year with data is >= the threshold; the earliest such year is the answer.
    still = np.ones(m, dtype=bool)
    any_cmp = np.zeros(m, dtype=bool)
    yoc = np.full(m, STABLE_YEAR, dtype=np.int16)
    with np.errstate(invalid="ignore"):
        hits = d >= thr  # False where NaN
    for i in reversed(cmp_idx):
        still &= hits[i] | ~has[i]
        np.copyto(yoc, year_arr[i], where=still & hits[i])
        any_cmp |= has[i]
    yoc[~any_cmp] = NODATA_YEAR
    year_of_change[sl] = yoc

    # Largest step between consecutive years with data (the first one on ties). Usually the
    # previous year with data is the year before; pixels after a hole look theirs up.
    last = np.full(m, -1, dtype=np.int64)
    mag = np.full(m, -1.0, dtype=np.float32)
    at = np.zeros(m, dtype=np.int16)
    for i in range(n_years):
        if i > 0:
            step = one - cos[i - 1, i]
            ok = valid[i] & (last >= 0)
            gap = ok & (last != i - 1)
            if gap.any():
                cols = np.nonzero(gap)[0]
                step[cols] = one - cos[last[cols], i, cols]
            bigger = ok & (step > mag)
            np.copyto(mag, step, where=bigger)
            np.copyto(at, year_arr[i], where=bigger)
        last[valid[i]] = i
    two = count >= 2
    np.clip(mag, 0.0, 2.0, out=mag)
    magnitude[sl] = np.where(two, mag, nan)
    step_year[sl] = np.where(two, np.where(mag >= thr, at, np.int16(STABLE_YEAR)), np.int16(NODATA_YEAR))

    # Anomaly: cos(y, sum of the others) = (R_y - 1) / sqrt(T - 2 R_y + 1), with R_y the row
    # sum of the cosines and T their total; float32 is enough (T is at most Y^2 = 81).
    row = cos.sum(axis=1)
    total = row.sum(axis=0)
    others = total[None] - 2.0 * row + valid
    np.maximum(others, 0.0, out=others)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = one - (row - valid) / np.sqrt(others)
    np.clip(a, 0.0, 2.0, out=a)
    a[~(valid & two[None])] = nan
    anomaly[:, sl] = a


@dataclass
class TrajectoryTotals:
    """Per-year areas and counts accumulated over the blocks of a run.

    For each year after the baseline: pixels that became persistently changed that year
    (year of change == the year), pixels disturbed only temporarily that year (change >=
    threshold that year, but the pixel is not persistently changed by then), and pixels with
    a change value that year. ``histogram`` holds the change of the last year (the band the
    map shows) for percentiles.
    """

    change_years: tuple[int, ...]
    pixel_area_m2: float
    threshold: float = DEFAULT_THRESHOLD
    persistent_pixels: Array = field(init=False)
    temporary_pixels: Array = field(init=False)
    year_valid_pixels: Array = field(init=False)
    valid_pixels: int = 0  # pixels with a year of change (not -1)
    changed_pixels: int = 0  # pixels persistently changed (year of change > 0)
    histogram: StreamingHistogram = field(default_factory=StreamingHistogram)

    def __post_init__(self) -> None:
        self.change_years = tuple(int(y) for y in self.change_years)
        k = len(self.change_years)
        self.persistent_pixels = np.zeros(k, dtype=np.int64)
        self.temporary_pixels = np.zeros(k, dtype=np.int64)
        self.year_valid_pixels = np.zeros(k, dtype=np.int64)

    def add(self, block: TrajectoryBlock) -> None:
        """Count one block's pixels in."""
        if block.change_years != self.change_years:
            raise ValueError(f"block years {block.change_years} differ from {self.change_years}")
        yoc = block.year_of_change
        thr = np.float32(self.threshold)
        for j, year in enumerate(self.change_years):
            c = block.change[j]
            has = np.isfinite(c)
            with np.errstate(invalid="ignore"):
                hit = has & (c >= thr)
            persistent_by_now = (yoc > 0) & (yoc <= year)
            self.persistent_pixels[j] += int(np.count_nonzero(yoc == year))
            self.temporary_pixels[j] += int(np.count_nonzero(hit & ~persistent_by_now))
            self.year_valid_pixels[j] += int(np.count_nonzero(has))
        self.valid_pixels += int(np.count_nonzero(yoc != NODATA_YEAR))
        self.changed_pixels += int(np.count_nonzero(yoc > 0))
        last = block.change[-1]
        self.histogram.add(last[np.isfinite(last)])

    def _ha(self, pixels: float) -> float:
        return float(pixels) * self.pixel_area_m2 / 1e4

    @property
    def changed_ha(self) -> float:
        return self._ha(self.changed_pixels)

    @property
    def valid_ha(self) -> float:
        return self._ha(self.valid_pixels)

    def rows(self) -> list[dict[str, float]]:
        """One row per year after the baseline: year, persistent_ha, temporary_ha, valid_ha."""
        return [
            {
                "year": year,
                "persistent_ha": self._ha(self.persistent_pixels[j]),
                "temporary_ha": self._ha(self.temporary_pixels[j]),
                "valid_ha": self._ha(self.year_valid_pixels[j]),
            }
            for j, year in enumerate(self.change_years)
        ]

    def describe(self) -> str:
        """Log lines: valid pixels, changed hectares, and the per-year areas."""
        lines = [
            f"{self.valid_pixels:,} pixels with at least two years of data ({self.valid_ha:,.2f} ha); "
            f"persistently changed (1 - cosine >= {self.threshold:g} from a year on): {self.changed_ha:,.2f} ha."
        ]
        for r in self.rows():
            lines.append(
                f"{r['year']}: became persistently changed {r['persistent_ha']:,.2f} ha, "
                f"disturbed only temporarily {r['temporary_ha']:,.2f} ha."
            )
        return "\n".join(lines)


# ----------------------------------------------------------------------------- years


def parse_years(text: str | None, name: str = "YEARS") -> list[int] | None:
    """The years written in ``text`` ("2018-2024", "2017, 2019, 2024", mixed), sorted; None when empty."""
    if text is None or not str(text).strip():
        return None
    clean = re.sub(r"\s*[-\u2013]\s*", "-", str(text).strip())
    out: set[int] = set()
    for item in re.split(r"[,;\s]+", clean):
        if not item:
            continue
        one = re.fullmatch(r"(\d{4})", item)
        span = re.fullmatch(r"(\d{4})-(\d{4})", item)
        if one:
            out.add(int(one.group(1)))
        elif span:
            lo, hi = int(span.group(1)), int(span.group(2))
            if lo > hi:
                raise EmbeddingsError(f"{name}: the range {item} runs backwards; write it as {hi}-{lo}.")
            out.update(range(lo, hi + 1))
        else:
            raise EmbeddingsError(
                f"{name} '{text}' cannot be read at '{item}': write years like 2018-2024 or 2017, 2019, 2024."
            )
    return sorted(out)


def choose_years(
    available: Iterable[int],
    years_text: str | None = None,
    baseline_text: str | None = None,
    have_what: str = "the collection has these years",
) -> tuple[list[int], list[int]]:
    """(years to read, baseline years) from the YEARS and BASELINE_YEARS texts.

    Empty YEARS = every available year; empty BASELINE_YEARS = the first year. Baseline years
    given outside YEARS are read too. The baseline must come before the other years, and at
    least one year must come after it. ``have_what`` introduces the available years in messages.
    """
    have = sorted({int(y) for y in available})
    if not have:
        raise EmbeddingsError("The collection has no years of embeddings for this extent; choose another extent.")
    listed = ", ".join(str(y) for y in have)
    years = parse_years(years_text, "YEARS") or list(have)
    baseline = parse_years(baseline_text, "BASELINE_YEARS") or [years[0]]
    for name, asked in (("YEARS", years), ("BASELINE_YEARS", baseline)):
        absent = [y for y in asked if y not in have]
        if absent:
            raise EmbeddingsError(f"{name} asks for {', '.join(str(y) for y in absent)}, but {have_what}: {listed}.")
    years = sorted(set(years) | set(baseline))
    if len(years) < 2:
        raise EmbeddingsError(
            f"Change over years needs at least two years, and only {years[0]} is chosen; " f"{have_what}: {listed}."
        )
    early = [y for y in years if y < baseline[-1] and y not in baseline]
    if early:
        raise EmbeddingsError(
            f"The baseline ({', '.join(str(y) for y in baseline)}) must come before the other years, but "
            f"{', '.join(str(y) for y in early)} come(s) earlier; make them baseline years or leave them out of YEARS."
        )
    if len(baseline) == len(years):
        raise EmbeddingsError(
            f"Every chosen year ({', '.join(str(y) for y in years)}) is a baseline year; "
            "choose at least one year after the baseline to compare with it."
        )
    return years, baseline


def raster_year(path: str) -> int:
    """The year of an embedding raster: its EMBEDDINGS_YEAR tag (written by embeddings:load),
    else the one four-digit year 2000-2099 in its file name set off by non-digits."""
    name = Path(path).name
    if not Path(path).exists():
        raise EmbeddingsError(f"The embedding raster {path} does not exist; choose an existing file.")
    import rasterio

    try:
        with rasterio.open(path) as ds:
            tag = (ds.tags().get("EMBEDDINGS_YEAR") or "").strip()
    except Exception:
        raise EmbeddingsError(f"{path} cannot be opened as a raster; choose an embedding GeoTIFF.") from None
    if re.fullmatch(r"\d{4}", tag):
        return int(tag)
    found = sorted(set(_YEAR_RE.findall(Path(name).stem)))
    if len(found) == 1:
        return int(found[0])
    if len(found) > 1:
        raise EmbeddingsError(
            f"The name {name} holds several years ({', '.join(found)}) and the raster has no EMBEDDINGS_YEAR tag; "
            "rename it so that it holds only its own year."
        )
    raise EmbeddingsError(
        f"The year of {name} is unknown: it has no EMBEDDINGS_YEAR tag (written by Load embeddings) and no "
        "four-digit year in its name; rename it, for example to aef_2021.tif."
    )


def rasters_by_year(paths: Sequence[str]) -> dict[int, str]:
    """{year: path} for INPUTS, refusing two rasters of one year or rasters of different band counts."""
    import rasterio

    by_year: dict[int, str] = {}
    bands: dict[str, int] = {}
    for p in paths:
        year = raster_year(p)
        if year in by_year:
            raise EmbeddingsError(
                f"{Path(by_year[year]).name} and {Path(p).name} are both of {year}; give one raster per year."
            )
        by_year[year] = str(p)
        with rasterio.open(p) as ds:
            bands[str(p)] = ds.count
    counts = sorted(set(bands.values()))
    if len(counts) > 1:
        a = next(p for p, c in bands.items() if c == counts[0])
        b = next(p for p, c in bands.items() if c == counts[-1])
        raise EmbeddingsError(
            f"{Path(a).name} has {counts[0]} bands and {Path(b).name} has {counts[-1]}; "
            "give embeddings of the same product for every year."
        )
    return dict(sorted(by_year.items()))


# ----------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class TrajectoryRequest:
    """Several years of a collection on the grid of ``grid``, or embedding rasters (``inputs``,
    one per year: the maps then have the grid of the earliest chosen year's raster).

    ``years`` and ``baseline_years`` are the user's texts ("2018-2024", "2017, 2019"; empty =
    every year the collection has for the extent / the first year). ``output`` (change per
    year) and ``output_year`` (year of change) are always written; the other outputs and the
    HTML ``report`` only when given. ``min_area_m2`` sizes the report's change areas.
    """

    output: str
    output_year: str
    grid: GridSpec = GridSpec()
    collection: str | None = None
    years: str | None = None
    baseline_years: str | None = None
    inputs: tuple[str, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    output_magnitude: str | None = None
    output_step_year: str | None = None
    output_anomaly: str | None = None
    report: str | None = None
    min_area_m2: float = DEFAULT_MIN_AREA_M2
    block_size: int = DEFAULT_BLOCK


@dataclass
class TrajectorySummary:
    """What a change-over-years run wrote and counted."""

    grid: Grid
    source_label: str
    years: tuple[int, ...]
    baseline_years: tuple[int, ...]
    totals: TrajectoryTotals
    report: str | None = None
    areas: list[Area] = field(default_factory=list)  # of the last year, largest first (report only)

    @property
    def change_years(self) -> tuple[int, ...]:
        return self.totals.change_years

    @property
    def valid_pixels(self) -> int:
        return self.totals.valid_pixels

    @property
    def changed_ha(self) -> float:
        return self.totals.changed_ha

    def describe(self) -> str:
        """The closing log lines: years, baseline, valid pixels, hectares per year."""
        return (
            f"Change over years {_years_label(self.years)} against the baseline {_years_label(self.baseline_years)}: "
            + self.totals.describe()
        )


def _years_label(years: Sequence[int]) -> str:
    years = sorted(years)
    if len(years) > 2 and years == list(range(years[0], years[-1] + 1)):
        return f"{years[0]}-{years[-1]}"
    return ", ".join(str(y) for y in years)


def _check_request(request: TrajectoryRequest) -> None:
    threshold = float(request.threshold)
    if math.isnan(threshold) or not (0.0 <= threshold <= 2.0):
        raise EmbeddingsError("The change threshold must be between 0 and 2 (1 - cosine); 0.25 is a good start.")
    rasters = {
        "OUTPUT": request.output,
        "OUTPUT_YEAR": request.output_year,
        "OUTPUT_MAGNITUDE": request.output_magnitude,
        "OUTPUT_STEP_YEAR": request.output_step_year,
        "OUTPUT_ANOMALY": request.output_anomaly,
    }
    seen: dict[str, str] = {}
    for name, path in rasters.items():
        if not path:
            continue
        if not str(path).lower().endswith((".tif", ".tiff")):
            raise EmbeddingsError(f"{name} must be written as a GeoTIFF (.tif); choose another output file.")
        key = str(Path(path).resolve())
        if key in seen:
            raise EmbeddingsError(f"{seen[key]} and {name} are the same file {path}; choose one file per output.")
        seen[key] = name
    if request.report and not str(request.report).lower().endswith((".html", ".htm")):
        raise EmbeddingsError("The change report is an HTML file (.html); choose another report file.")
    if len(request.inputs) == 1:
        raise EmbeddingsError(
            "INPUTS holds one raster; change over years needs at least two, one per year "
            "(or none, and the years of a collection)."
        )


def _collection_sources(
    request: TrajectoryRequest, grid: Grid, progress: Progress
) -> tuple[list[CollectionSource], list[int], list[int]]:
    """The chosen years' sources; empty YEARS = the years whose tiles cover the grid."""
    collection = open_collection(request.collection, progress)
    every = collection.years()
    listed = ", ".join(str(y) for y in every) or "none"
    covered = [y for y in every if CollectionSource(collection, y).tiles_for(grid)]
    if not covered:
        raise EmbeddingsError(
            f"No embeddings of the collection cover this extent (it has the years {listed} elsewhere); "
            "choose an extent inside the collection."
        )
    years_text = request.years if (request.years or "").strip() else ",".join(str(y) for y in covered)
    years, baseline = choose_years(every, years_text, request.baseline_years)
    return [CollectionSource(collection, y) for y in years], years, baseline


def trajectory_map(request: TrajectoryRequest, progress: Progress | None = None) -> TrajectorySummary:
    """Change over years: per-year change to the baseline, year of change and the optional
    largest step, step year, anomaly and HTML report, streamed block by block with every
    year of a block at once (years x 64 bytes a pixel of codes)."""
    progress = progress or Progress()
    _check_request(request)
    with ExitStack() as stack:
        sources: list[EmbeddingSource]
        if request.inputs:
            by_year = rasters_by_year(list(request.inputs))
            years, baseline = choose_years(
                by_year, request.years, request.baseline_years, "the rasters given as INPUTS are of these years"
            )
            rasters = [stack.enter_context(RasterSource(by_year[y])) for y in years]
            sources = list(rasters)
            grid = resolve_grid(GridSpec(max_pixels=request.grid.max_pixels), rasters[0].native_grid())
            label = ", ".join(Path(by_year[y]).name for y in years)
            step = progress
        else:
            grid = resolve_grid(request.grid, alternative=", or embedding rasters as INPUTS")
            opened, years, baseline = _collection_sources(request, grid, progress.sub(0, 5))
            sources = [stack.enter_context(s) for s in opened]
            label = opened[0].collection.label
            step = progress.sub(5, 100)
        tags = {
            "EMBEDDINGS_SOURCE": label,
            "EMBEDDINGS_YEARS": ",".join(str(y) for y in years),
            "EMBEDDINGS_BASELINE_YEARS": ",".join(str(y) for y in baseline),
            "EMBEDDINGS_THRESHOLD": f"{float(request.threshold):g}",
        }
        maps_end = 85.0 if request.report else 100.0
        totals = _write_maps(sources, years, baseline, grid, request, tags, step.sub(0, maps_end))
    summary = TrajectorySummary(grid, label, tuple(years), tuple(baseline), totals)
    if request.report:
        summary.areas = areas_above(
            request.output,
            request.threshold,
            float(request.min_area_m2),
            step.sub(maps_end, 98),
            band=len(totals.change_years),
        )
        last = totals.change_years[-1]
        summary.report = write_change_report(
            request.report,
            totals.histogram,
            totals.pixel_area_m2,
            float(request.threshold),
            title=f"Change over years {_years_label(years)}",
            facts=[
                ("Source", label),
                ("Years", _years_label(years)),
                ("Baseline", _years_label(baseline)),
                *grid_facts(grid),
            ],
            areas=area_rows(summary.areas, grid.crs),
            year_rows=totals.rows(),
            baseline=_years_label(baseline),
            compared=f"{last} and the baseline {_years_label(baseline)}",
        )
    progress.set_progress(100.0)
    return summary


def _nan_to(values: Array, nodata: float) -> Array:
    return np.where(np.isfinite(values), values, np.float32(nodata)).astype(np.float32)


def _write_maps(
    sources: Sequence[EmbeddingSource],
    years: Sequence[int],
    baseline: Sequence[int],
    grid: Grid,
    request: TrajectoryRequest,
    tags: dict[str, str],
    progress: Progress,
) -> TrajectoryTotals:
    """Stream every year of each block through the kernel into the outputs; the totals."""
    change_years = tuple(y for y in years if y not in baseline)
    totals = TrajectoryTotals(change_years, grid.resolution**2, float(request.threshold))
    with reading(sources, grid) as readers:
        bands = [r.plan.bands for r in readers]
        if len(set(bands)) > 1:
            detail = ", ".join(f"{y}: {b}" for y, b in zip(years, bands))
            raise EmbeddingsError(
                f"The years have different numbers of bands ({detail}); use embeddings of the same product."
            )
        progress.info(
            f"Planned: {grid.width} x {grid.height} = {grid.pixels:,} pixels at {grid.resolution:g} m in "
            f"{crs_name(grid.crs)}, {len(years)} years ({_years_label(years)}), baseline {_years_label(baseline)}; "
            + "; ".join(f"{y}: {r.plan.reads()}" for y, r in zip(years, readers))
            + "."
        )
        names = [str(y) for y in change_years]
        with ExitStack() as outs:
            out_change = outs.enter_context(
                open_float_output(
                    request.output,
                    grid,
                    names,
                    NODATA_CHANGE,
                    {"CHANGE": "1 - cosine similarity to the baseline, one band per year", **tags},
                )
            )
            out_year = outs.enter_context(
                open_int16_output(
                    request.output_year,
                    grid,
                    ("year of change",),
                    NODATA_YEAR,
                    {"YEAR_OF_CHANGE": "first year from which the pixel stayed changed; 0 = not", **tags},
                )
            )
            optional: dict[str, RasterWriter] = {}
            if request.output_magnitude:
                optional["magnitude"] = outs.enter_context(
                    open_float_output(request.output_magnitude, grid, ("largest step",), NODATA_CHANGE, tags)
                )
            if request.output_step_year:
                optional["step_year"] = outs.enter_context(
                    open_int16_output(request.output_step_year, grid, ("year of the largest step",), NODATA_YEAR, tags)
                )
            if request.output_anomaly:
                optional["anomaly"] = outs.enter_context(
                    open_float_output(request.output_anomaly, grid, [str(y) for y in years], NODATA_CHANGE, tags)
                )
            for window, blocks in stream(readers, windows_for(grid, readers, request.block_size), progress):
                tb = trajectory_of_block([b.data for b in blocks], years, baseline, request.threshold)
                totals.add(tb)
                out_change.write(_nan_to(tb.change, NODATA_CHANGE), window)
                out_year.write(tb.year_of_change[None], window)
                if "magnitude" in optional:
                    optional["magnitude"].write(_nan_to(tb.magnitude, NODATA_CHANGE)[None], window)
                if "step_year" in optional:
                    optional["step_year"].write(tb.step_year[None], window)
                if "anomaly" in optional:
                    optional["anomaly"].write(_nan_to(tb.anomaly, NODATA_CHANGE), window)
            progress.check_cancelled()
    return totals
