"""A one-file HTML change report: histogram, percentiles, areas above levels, largest change
areas, and for change over years the hectares per year.

Everything comes from what a run accumulated block by block (a ``StreamingHistogram`` of the
change values, the areas found, the per-year totals), so the report costs nothing extra to
read. Pictures are PNGs drawn with matplotlib's object API on the Agg canvas (never pyplot:
Processing runs algorithms off the main thread) and embedded as base64, so the report is one
file. matplotlib is optional: without it the report has tables instead of pictures and says
how to install it.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .arrays import Array
from .change import DEFAULT_THRESHOLD
from .geometry import Geometry
from .grid import Grid
from .output import atomic_path
from .polygons import Area
from .stats import StreamingHistogram

LEVELS = (0.1, 0.2, 0.3, 0.5)
PERCENTILES = (10, 25, 50, 75, 90, 95, 99, 99.9)
MAX_AREAS = 20
# The change map's colour ramp (resources/styles/change.qml): black -> blue -> cyan -> yellow -> red.
RAMP = ((0.0, "#000000"), (0.125, "#0000ff"), (0.25, "#00ffff"), (0.375, "#ffff00"), (0.5, "#ff0000"))
PERSISTENT_COLOUR = "#b2182b"
TEMPORARY_COLOUR = "#f4a582"


# ----------------------------------------------------------------------------- numbers


def area_rows(areas: Sequence[Area], crs: str, limit: int = MAX_AREAS) -> list[dict[str, float]]:
    """The largest ``core.polygons.Area`` objects as report rows: area_m2, mean, max, lon, lat
    (WGS84 of the polygon's centroid; ``crs`` is the areas' CRS)."""
    from .grid import transformer

    chosen = sorted(areas, key=lambda a: -a.area_m2)[:limit]
    if not chosen:
        return []
    xy = np.array([_centroid(a.geometry) for a in chosen])
    lon, lat = transformer(crs, "EPSG:4326").transform(xy[:, 0], xy[:, 1])
    return [
        {"area_m2": a.area_m2, "mean": a.mean, "max": a.max, "lon": float(x), "lat": float(y)}
        for a, x, y in zip(chosen, np.atleast_1d(lon), np.atleast_1d(lat))
    ]


def grid_facts(grid: Grid) -> list[tuple[str, str]]:
    """The report's lines about the map's grid: size, resolution, CRS, area."""
    from .grid import crs_name

    return [
        (
            "Grid",
            f"{grid.width:,} x {grid.height:,} pixels at {grid.resolution:g} m in {crs_name(grid.crs)} "
            f"({grid.pixels * grid.resolution**2 / 1e4:,.1f} ha)",
        )
    ]


def _centroid(geom: Geometry) -> tuple[float, float]:
    """Area-weighted centroid of a GeoJSON Polygon/MultiPolygon (holes subtract)."""
    polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
    total = cx = cy = 0.0
    for rings in polys:
        for k, ring in enumerate(rings):
            r = np.asarray(ring, dtype=np.float64)[:, :2]
            x, y = r[:, 0], r[:, 1]
            x1, y1 = np.roll(x, -1), np.roll(y, -1)
            cross = x * y1 - x1 * y
            a = 0.5 * cross.sum()
            if a == 0:
                continue
            # Outer rings count positively and holes negatively whatever their orientation.
            sign = 1.0 if k == 0 else -1.0
            s = sign * (1.0 if a > 0 else -1.0)
            total += s * a
            cx += s * ((x + x1) * cross).sum() / 6.0
            cy += s * ((y + y1) * cross).sum() / 6.0
    if total == 0:
        first = np.asarray(polys[0][0], dtype=np.float64)
        return float(first[:, 0].mean()), float(first[:, 1].mean())
    return cx / total, cy / total


# ----------------------------------------------------------------------------- matplotlib


def matplotlib_install_hint() -> str:
    """The command that installs matplotlib for QGIS's Python without touching its NumPy."""
    from .deps import externally_managed, numpy_version, python_command

    pin = f'"numpy=={numpy_version()}"'
    if os.name == "nt":
        return f"in the OSGeo4W Shell: python -m pip install matplotlib {pin}"
    if externally_managed():
        return "sudo apt install python3-matplotlib"
    return f"{python_command()} -m pip install --user matplotlib {pin}"


def _matplotlib() -> tuple[Any, Any, str | None]:
    """(Figure, FigureCanvasAgg, None), or (None, None, the reason) when matplotlib is unusable."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except Exception as exc:  # missing, or broken against this NumPy
        return None, None, f"{type(exc).__name__}: {exc}"
    return Figure, FigureCanvasAgg, None


def _png(fig: Any, canvas_cls: Any) -> bytes:
    canvas_cls(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _display_range(histogram: StreamingHistogram) -> float:
    """The change value up to which the histogram is drawn: past the 99.9th percentile, at least 0.6."""
    p999 = histogram.percentile(99.9)
    top = max(0.6, math.ceil(p999 * 1.15 * 10.0) / 10.0) if math.isfinite(p999) else 0.6
    return min(histogram.high, top)


def _coarse(histogram: StreamingHistogram, x_max: float, target_bars: int) -> tuple[Array, float]:
    """Counts in about ``target_bars`` bins over [0, x_max], each a power-of-two number of fine bins."""
    fine = histogram.high / histogram.bins
    factor = 2 ** max(0, round(math.log2(max(x_max / target_bars / fine, 1.0))))
    while histogram.bins % factor:
        factor //= 2
    counts = histogram.counts.reshape(-1, factor).sum(axis=1)
    width = fine * factor
    n = int(math.ceil(x_max / width - 1e-9))
    return counts[:n], width


def histogram_png(
    histogram: StreamingHistogram, pixel_area_m2: float, threshold: float = DEFAULT_THRESHOLD, title: str = ""
) -> bytes | None:
    """PNG of the area per change value (log scale), coloured like the change map, with the
    threshold and the 50th/90th/99th percentiles marked; None without matplotlib or data."""
    figure_cls, canvas_cls, _ = _matplotlib()
    if figure_cls is None or histogram.total == 0:
        return None
    from matplotlib.colors import LinearSegmentedColormap

    x_max = _display_range(histogram)
    counts, width = _coarse(histogram, x_max, 120)
    ha = counts * pixel_area_m2 / 1e4
    left = np.arange(counts.size) * width
    ramp = LinearSegmentedColormap.from_list("change", [(v / 0.5, c) for v, c in RAMP])
    colours = ramp(np.clip((left + width / 2) / 0.5, 0.0, 1.0))

    fig = figure_cls(figsize=(8.0, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(left, np.where(ha > 0, ha, np.nan), width=width, align="edge", color=colours, edgecolor="none")
    ax.set_yscale("log")
    ax.set_xlim(0, x_max)
    # Down to the smallest bar (often a single pixel), which autoscaling would cut off.
    ax.set_ylim(bottom=float(ha[ha > 0].min()) / 2.0)
    beyond = histogram.count_above(x_max)
    xlabel = "change (1 - cosine similarity of the embeddings)"
    if beyond > 0:
        xlabel += f"; {beyond * pixel_area_m2 / 1e4:,.2f} ha above {x_max:g} not drawn"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"area per {width:.4f} of change (ha, log scale)")
    ax.set_title(title or "Area by change value", fontsize=11, pad=26)
    ax.grid(axis="y", which="major", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.axvline(threshold, color="#222222", linewidth=1.6, label=f"threshold {threshold:g}")
    styles = {50: ":", 90: "--", 99: "-."}
    for q, style in styles.items():
        p = histogram.percentile(q)
        if math.isfinite(p) and p <= x_max:
            ax.axvline(p, color="#777777", linestyle=style, linewidth=1.2, label=f"p{q} = {p:.3f}")
    # Above the plot, where it never hides bars.
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=9, frameon=False)
    fig.tight_layout()
    return _png(fig, canvas_cls)


def years_png(year_rows: Sequence[dict[str, float]]) -> bytes | None:
    """PNG bar chart: hectares that became persistently changed and hectares disturbed only
    temporarily, per year; None without matplotlib or rows."""
    figure_cls, canvas_cls, _ = _matplotlib()
    if figure_cls is None or not year_rows:
        return None
    years = [int(r["year"]) for r in year_rows]
    persistent = np.array([r["persistent_ha"] for r in year_rows], dtype=float)
    temporary = np.array([r["temporary_ha"] for r in year_rows], dtype=float)
    x = np.arange(len(years))
    fig = figure_cls(figsize=(8.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    bars_p = ax.bar(x - 0.2, persistent, width=0.4, color=PERSISTENT_COLOUR, label="became persistently changed")
    bars_t = ax.bar(
        x + 0.2, temporary, width=0.4, color=TEMPORARY_COLOUR, hatch="//", edgecolor="#8c510a", linewidth=0.0
    )
    bars_t.set_label("disturbed only temporarily")
    top = float(max(persistent.max(initial=0.0), temporary.max(initial=0.0)))
    digits = 0 if top >= 100 else 1 if top >= 10 else 2
    for bars in (bars_p, bars_t):
        labels = [f"{b.get_height():,.{digits}f}" if b.get_height() > 0 else "" for b in bars]
        ax.bar_label(bars, labels=labels, fontsize=8, padding=2)
    ax.set_xticks(x)
    ax.set_xticklabels([str(y) for y in years])
    ax.set_xlabel("year")
    ax.set_ylabel("area (ha)")
    ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
    ax.set_title("Change per year against the baseline", fontsize=11, pad=26)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=9, frameon=False)
    fig.tight_layout()
    return _png(fig, canvas_cls)


# ----------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: "Segoe UI", Helvetica, Arial, sans-serif; color: #222; max-width: 60em; margin: 1.5em auto;
       padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.6em;
       border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; } th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #e4e4e4; }
th { text-align: left; background: #f3f3f3; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; font-size: 0.92em; } .warn { background: #fff4d6; border: 1px solid #e8c76a;
       padding: 0.5em 0.8em; }
.bar { background: #4a6fa5; height: 0.8em; display: inline-block; }
img { max-width: 100%; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _ha(value: float) -> str:
    return f"{value:,.2f}"


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> str:
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if header else ""
    body = []
    for row in rows:
        cells = "".join(f'<td class="n">{c}</td>' if num else f"<td>{c}</td>" for c, num in zip(row, numeric))
        body.append(f"<tr>{cells}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _img(png: bytes, alt: str) -> str:
    # The size from the PNG header (IHDR), so that viewers lay the page out before decoding.
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img alt="{_e(alt)}" width="{width}" height="{height}" src="data:image/png;base64,{data}"></p>'


def change_report_html(
    histogram: StreamingHistogram,
    pixel_area_m2: float,
    threshold: float = DEFAULT_THRESHOLD,
    title: str = "Change report",
    facts: Sequence[tuple[str, str]] = (),
    areas: Sequence[dict[str, float]] = (),
    year_rows: Sequence[dict[str, float]] | None = None,
    baseline: str = "",
    compared: str = "the two years",
) -> str:
    """The report as one HTML string (see ``write_change_report``)."""
    figure_cls, _, why = _matplotlib()
    ha_px = pixel_area_m2 / 1e4
    valid = histogram.total
    valid_ha = valid * ha_px
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="note">Earth Embeddings change report, written {_e(datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))}.</p>',
    ]
    if facts:
        parts.append(_table(None, [(f"<b>{_e(k)}</b>", _e(v)) for k, v in facts], [False, False]))
    parts.append(
        "<h2>What the numbers mean</h2>"
        f"<p><b>Change</b> at a pixel is 1 - cosine similarity between its embedding vectors of {_e(compared)} "
        "(an embedding is 64 numbers that summarise a year of satellite observations of a 10 m square). 0 means the same kind of place; "
        "stable land typically shows about 0.02-0.06 (seasons, sensors), real change (construction, clearing, "
        "fire, flooding) 0.3-0.7; the largest possible value is 2. The value has no unit. <b>Areas</b> are in "
        "hectares (1 ha = 10,000 m2 = 100 x 100 m; one 10 m pixel is 0.01 ha), counted over the pixels that have "
        f"data in {_e(compared)}.</p>"
    )
    if figure_cls is None:
        # A missing package needs no explanation; a broken one (e.g. built for another NumPy) does.
        reason = "" if (why or "").startswith(("ModuleNotFoundError", "ImportError")) else f" ({_e(why)})"
        parts.append(
            '<p class="warn">The pictures of this report need matplotlib, which QGIS\'s Python cannot import'
            f"{reason}. Install it with <code>{_e(matplotlib_install_hint())}</code> and run the algorithm "
            "again; the tables below hold every number without it.</p>"
        )

    parts.append("<h2>Summary</h2>")
    if valid == 0:
        parts.append("<p>No pixel has data in both years: there is nothing to summarise.</p>")
    else:
        parts.append(
            f"<p>{valid:,} pixels with data = {_ha(valid_ha)} ha (pixel area {pixel_area_m2:,.1f} m2). "
            f"Half of the area changed by less than {histogram.percentile(50):.4f}; the threshold used for "
            f"change areas is {threshold:g}.</p>"
        )
        parts.append("<h3>Percentiles of the change</h3>")
        parts.append(
            '<p class="note">The p-th percentile is the change value that p % of the area stays below.</p>'
            + _table(
                ["percentile", "change (1 - cosine)"],
                [(f"p{q:g}", f"{histogram.percentile(q):.4f}") for q in PERCENTILES],
                [False, True],
            )
        )
        levels = sorted(set(LEVELS) | {float(threshold)})
        rows = []
        for level in levels:
            px = histogram.count_above(level)
            mark = " (threshold)" if level == float(threshold) else ""
            rows.append((f"above {level:g}{mark}", _ha(px * ha_px), f"{100.0 * px / valid:.2f} %"))
        parts.append("<h3>Area above change levels</h3>")
        parts.append(_table(["change", "area (ha)", "share of the area with data"], rows, [False, True, True]))
        parts.append("<h3>Distribution</h3>")
        png = histogram_png(histogram, pixel_area_m2, threshold)
        if png is not None:
            parts.append(
                _img(png, "Histogram of the change values")
                + '<p class="note">Area per change value; the vertical axis is logarithmic so that the few '
                "hectares of real change stay visible next to the many hectares of stable land. Bars are "
                "coloured like the change map.</p>"
            )
        else:
            parts.append(_histogram_table(histogram, pixel_area_m2))

    parts.append("<h2>Largest change areas</h2>")
    if areas:
        chosen = sorted(areas, key=lambda a: -a["area_m2"])[:MAX_AREAS]
        area_table: list[tuple[str, ...]] = []
        for i, a in enumerate(chosen, start=1):
            lon, lat = float(a["lon"]), float(a["lat"])
            link = f"https://www.openstreetmap.org/?mlat={lat:.6f}&amp;mlon={lon:.6f}#map=16/{lat:.6f}/{lon:.6f}"
            area_table.append(
                (
                    str(i),
                    _ha(a["area_m2"] / 1e4),
                    f"{a['mean']:.3f}",
                    f"{a['max']:.3f}",
                    f"{lon:.5f}",
                    f"{lat:.5f}",
                    f'<a href="{link}">map</a>',
                )
            )
        parts.append(
            f'<p class="note">Connected areas of change above {threshold:g}, largest first (at most {MAX_AREAS}); '
            "mean and max are the change inside the area; longitude and latitude (WGS84, degrees) of its "
            "centre.</p>"
            + _table(
                ["#", "area (ha)", "mean change", "max change", "longitude", "latitude", ""],
                area_table,
                [True, True, True, True, True, True, False],
            )
        )
    else:
        parts.append(f"<p>No connected area of change above {threshold:g} was found (or none was asked for).</p>")

    if year_rows is not None:
        parts.append(_years_section(year_rows, threshold, baseline))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _histogram_table(histogram: StreamingHistogram, pixel_area_m2: float, step: float = 0.05) -> str:
    """The distribution as rows of ``step`` of change up to the drawn range, then the rest."""
    x_max = _display_range(histogram)
    total = max(histogram.total, 1)
    edges = [round(i * step, 6) for i in range(int(math.ceil(x_max / step - 1e-9)) + 1)]
    above = [histogram.count_above(e) for e in edges]
    above[0] = float(histogram.total)  # from 0 on, including values of exactly 0
    peak = max(max(above[i] - above[i + 1] for i in range(len(edges) - 1)), 1.0)
    rows = []
    for i in range(len(edges) - 1):
        px = above[i] - above[i + 1]
        bar = f'<span class="bar" style="width:{12.0 * px / peak:.2f}em"></span>'
        rows.append(
            (f"{edges[i]:.2f} - {edges[i + 1]:.2f}", _ha(px * pixel_area_m2 / 1e4), f"{100.0 * px / total:.2f} %", bar)
        )
    if above[-1] > 0:
        rows.append(
            (f"above {edges[-1]:.2f}", _ha(above[-1] * pixel_area_m2 / 1e4), f"{100.0 * above[-1] / total:.2f} %", "")
        )
    return '<p class="note">Area per range of change values.</p>' + _table(
        ["change", "area (ha)", "share", ""], rows, [False, True, True, False]
    )


def _years_section(year_rows: Sequence[dict[str, float]], threshold: float, baseline: str) -> str:
    against = f" ({_e(baseline)})" if baseline else ""
    out = [
        "<h2>Change per year</h2>",
        f"<p>Each year is compared with the baseline{against}. A pixel <b>became persistently changed</b> in "
        f"year Y when Y and every later year with data differ from the baseline by at least {threshold:g} "
        "(this is the year-of-change map). A pixel was <b>disturbed only temporarily</b> in a year when it "
        f"differed by at least {threshold:g} that year but had not (yet) changed for good: it came back "
        "later, or changed for good only in a later year. Years without data at a pixel are skipped there.</p>",
    ]
    rows = []
    for r in year_rows:
        rows.append(
            (
                str(int(r["year"])),
                _ha(r["valid_ha"]) if "valid_ha" in r else "",
                _ha(r["persistent_ha"]),
                _ha(r["temporary_ha"]),
            )
        )
    total = sum(float(r["persistent_ha"]) for r in year_rows)
    rows.append(("<b>all years</b>", "", f"<b>{_ha(total)}</b>", ""))
    out.append(
        _table(
            ["year", "area with data (ha)", "became persistently changed (ha)", "disturbed only temporarily (ha)"],
            rows,
            [False, True, True, True],
        )
    )
    png = years_png(year_rows)
    if png is not None:
        out.append(_img(png, "Hectares per year: persistent and temporary change"))
    return "\n".join(out)


def write_change_report(
    path: str | os.PathLike[str],
    histogram: StreamingHistogram,
    pixel_area_m2: float,
    threshold: float = DEFAULT_THRESHOLD,
    title: str = "Change report",
    facts: Sequence[tuple[str, str]] = (),
    areas: Sequence[dict[str, float]] = (),
    year_rows: Sequence[dict[str, float]] | None = None,
    baseline: str = "",
    compared: str = "the two years",
) -> str:
    """Write the HTML report to ``path`` atomically (complete or not at all); returns the path.

    ``histogram`` holds the change values (of the two-year map, or of the last year of a
    trajectory); ``facts`` are (label, value) lines shown under the title (source, years,
    grid); ``areas`` are dicts with area_m2, mean, max, lon, lat (``area_rows`` makes them);
    ``year_rows`` are ``TrajectoryTotals.rows()`` for a trajectory, None for a two-year map;
    ``baseline`` names the baseline years and ``compared`` what the histogram compares
    ("2017 and 2024", "2025 and the baseline 2017-2018").
    """
    text = change_report_html(histogram, pixel_area_m2, threshold, title, facts, areas, year_rows, baseline, compared)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return str(path)
