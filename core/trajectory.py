"""Change over years: a block kernel over all years of one window at once.

Every output is a function of the cosines between the renormalised vectors of one pixel in
different years, so the kernel computes, per pixel, the Y x Y matrix of cosines (the Gram
matrix of the year vectors) once and derives everything from it:

- change of year y: 1 - cos(y, baseline), the baseline being the renormalised sum of the
  baseline years that have data at the pixel; where none has, the first year with data at
  the pixel is the baseline (and that year itself gets no change value);
- year of change, "since when the pixel has stayed changed": the first compared year Y such
  that Y and every later compared year with data differ from the baseline by >= threshold;
- magnitude: the largest step 1 - cos between consecutive years with data, and its year;
- anomaly of year y: 1 - cos(y, renormalised sum of the other years with data).

A year without data at a pixel is skipped there: a step spans the missing year.

Cost: Y (Y + 1) / 2 dot products of 64 bands per pixel, in runs of pixels sized to stay in
cache; memory holds the block's codes (Y x 64 bytes a pixel), one run of float32 vectors and
the outputs. Cosines come from float32 dot products: they agree with ``embeddings:change``
to about 1e-6.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .change import DEFAULT_THRESHOLD, StreamingHistogram
from .errors import EmbeddingsError
from .quant import NODATA

NODATA_YEAR = -1  # int16 no-data of the year-of-change and step-year rasters
STABLE_YEAR = 0  # year of change of stable land and of a disturbance that came back
# float32 values per run of pixels (Y x bands x pixels): 1.2 M = 4.7 MB, about the size of a
# core's share of cache; measured best between 512 and 4096 pixels for 5 to 9 years.
CHUNK_VALUES = 9 * 64 * 2048
MIN_CHUNK_PIXELS = 256
MAX_CHUNK_PIXELS = 16384
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
    change: np.ndarray  # float32 (len(change_years), h, w)
    year_of_change: np.ndarray  # int16 (h, w): a year, 0 (not persistently changed), -1
    magnitude: np.ndarray  # float32 (h, w)
    step_year: np.ndarray  # int16 (h, w): a year, 0 (largest step below threshold), -1
    anomaly: np.ndarray  # float32 (len(years), h, w)
    years_with_data: np.ndarray  # uint8 (h, w)


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
    data: np.ndarray | Sequence[np.ndarray],
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
    vec = np.empty((n_years, bands, chunk), dtype=np.float32)
    gram = np.empty((n_years, n_years, chunk), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        sl = slice(start, start + m)
        v = vec[:, :, :m]
        g = gram[:, :, :m]
        nodata = np.zeros((n_years, m), dtype=bool)
        for i, d in enumerate(flat):
            part = d[:, sl]
            if part.dtype == np.int8:
                # -128 is the smallest int8: a pixel has no data where its minimum over bands is it.
                nodata[i] = part.min(axis=0) == NODATA
                # Only directions matter, so q * |q| (exact in int16) stands for the value
                # sign(q) (q / 127.5)^2: 3x faster than the lookup table and without rounding.
                q = part.astype(np.int16)
                np.multiply(q, np.abs(q), out=v[i], casting="unsafe")
            else:
                v[i] = part
        for i in range(n_years):
            g[i, i] = np.einsum("bn,bn->n", v[i], v[i])
        # float input: NaN or inf in a band makes the squared norm non-finite.
        with np.errstate(invalid="ignore"):
            valid = ~nodata & np.isfinite(g.diagonal().T) & (g.diagonal().T > 0)
        cos = _cosines(v, g, valid)
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


def _cosines(v: np.ndarray, g: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(Y, Y, m) cosines of the renormalised year vectors; 0 wherever either year has no data."""
    n_years, _, m = v.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(valid, 1.0 / np.sqrt(g.diagonal().T), 0.0).astype(np.float32)
    cos = np.zeros((n_years, n_years, m), dtype=np.float32)
    for i in range(n_years):
        cos[i, i] = valid[i]
        for k in range(i + 1, n_years):
            both = valid[i] & valid[k]
            if not both.any():
                continue
            dot = np.einsum("bn,bn->n", v[i], v[k])
            dot *= inv[i]
            dot *= inv[k]
            np.clip(dot, -1.0, 1.0, out=dot)
            cos[i, k] = cos[k, i] = np.where(both, dot, np.float32(0.0))
    return cos


def _derive(cos, valid, base_idx, cmp_idx, year_arr, thr, sl, change, anomaly, magnitude, step_year, year_of_change):
    """Fill the outputs' run ``sl`` from the cosines of its pixels."""
    n_years, _, m = cos.shape
    cols = np.arange(m)
    count = valid.sum(axis=0)

    # Baseline: the renormalised sum of the baseline years with data, |sum|^2 = sum of their cosines.
    b = np.asarray(base_idx)
    has_base = valid[b].any(axis=0)
    norm_b = np.sqrt(cos[np.ix_(b, b)].sum(axis=(0, 1), dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_base = cos[:, b].sum(axis=1, dtype=np.float64) / norm_b
    # Elsewhere the first year with data is the baseline; it has no change value itself.
    first = np.argmax(valid, axis=0)
    fallback = ~has_base & (count > 0)
    cos_first = cos[:, first, cols]
    cos_base = np.where(fallback, cos_first, cos_base)
    base_ok = has_base | fallback
    d = np.clip(1.0 - cos_base, 0.0, 2.0).astype(np.float32)
    has = valid & base_ok
    has[first, cols] &= ~fallback
    d = np.where(has, d, np.float32(np.nan))
    change[:, sl] = d[cmp_idx]

    # Year of change, scanning backwards: a pixel stays "changed from here on" while every
    # compared year with data is >= the threshold; the earliest such year is the answer.
    still = np.ones(m, dtype=bool)
    any_cmp = np.zeros(m, dtype=bool)
    yoc = np.full(m, STABLE_YEAR, dtype=np.int16)
    for i in reversed(cmp_idx):
        with np.errstate(invalid="ignore"):
            hit = d[i] >= thr
        still &= hit | ~has[i]
        yoc[still & hit] = year_arr[i]
        any_cmp |= has[i]
    yoc[~any_cmp] = NODATA_YEAR
    year_of_change[sl] = yoc

    # Largest step between consecutive years with data (the first one on ties).
    last = np.full(m, -1, dtype=np.int64)
    mag = np.full(m, -1.0, dtype=np.float32)
    at = np.zeros(m, dtype=np.int16)
    for i in range(n_years):
        ok = valid[i] & (last >= 0)
        step = 1.0 - cos[np.maximum(last, 0), i, cols]
        bigger = ok & (step > mag)
        mag[bigger] = step[bigger]
        at[bigger] = year_arr[i]
        last[valid[i]] = i
    two = count >= 2
    np.clip(mag, 0.0, 2.0, out=mag)
    magnitude[sl] = np.where(two, mag, np.float32(np.nan))
    step_year[sl] = np.where(two, np.where(mag >= thr, at, STABLE_YEAR), NODATA_YEAR)

    # Anomaly: cos(y, sum of the others) = (R_y - 1) / sqrt(T - 2 R_y + 1), with R_y the row
    # sum of the cosines and T their total (sums in float64: T is up to Y^2).
    row = cos.sum(axis=1, dtype=np.float64)
    total = row.sum(axis=0)
    others = total[None] - 2.0 * row + valid
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_rest = (row - valid) / np.sqrt(np.maximum(others, 0.0))
    a = np.clip(1.0 - cos_rest, 0.0, 2.0).astype(np.float32)
    anomaly[:, sl] = np.where(valid & (count >= 2)[None], a, np.float32(np.nan))


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
    persistent_pixels: np.ndarray = field(init=False)
    temporary_pixels: np.ndarray = field(init=False)
    year_valid_pixels: np.ndarray = field(init=False)
    valid_pixels: int = 0  # pixels with a year of change (not -1)
    changed_pixels: int = 0  # pixels persistently changed (year of change > 0)
    histogram: StreamingHistogram = field(default_factory=StreamingHistogram)

    def __post_init__(self):
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

    def _ha(self, pixels) -> float:
        return float(pixels) * self.pixel_area_m2 / 1e4

    @property
    def changed_ha(self) -> float:
        return self._ha(self.changed_pixels)

    @property
    def valid_ha(self) -> float:
        return self._ha(self.valid_pixels)

    def rows(self) -> list[dict]:
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
    available: Iterable[int], years_text: str | None = None, baseline_text: str | None = None
) -> tuple[list[int], list[int]]:
    """(years to read, baseline years) from the YEARS and BASELINE_YEARS texts.

    Empty YEARS = every available year; empty BASELINE_YEARS = the first year. Baseline years
    given outside YEARS are read too. The baseline must come before the other years, and at
    least one year must come after it.
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
            raise EmbeddingsError(
                f"{name} asks for {', '.join(str(y) for y in absent)}, but the collection has these years: {listed}."
            )
    years = sorted(set(years) | set(baseline))
    if len(years) < 2:
        raise EmbeddingsError(
            f"Change over years needs at least two years, and only {years[0]} is chosen; "
            f"the collection has these years: {listed}."
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
