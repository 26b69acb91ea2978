"""core.report: the HTML change report holds the numbers, embeds its pictures, works without matplotlib."""

import base64
import html
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from earth_embeddings.core.change import StreamingHistogram
from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.grid import transformer
from earth_embeddings.core.polygons import areas_above
from earth_embeddings.core.report import (
    area_rows,
    histogram_png,
    matplotlib_install_hint,
    write_change_report,
    years_png,
)
from earth_embeddings.core.trajectory import TrajectoryTotals, trajectory_of_block

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PIXEL_M2 = 100.0


def planted_values(seed=0):
    """9,000 px of stable land (0.02-0.06) and 1,000 px of change (0.35-0.65)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(0.02, 0.06, 9000), rng.uniform(0.35, 0.65, 1000)]).astype(np.float32)


def filled_histogram(values):
    h = StreamingHistogram()
    h.add(values)
    return h


def test_count_above_agrees_with_counting_to_one_bin():
    values = planted_values()
    h = filled_histogram(values)
    width = h.high / h.bins
    for level in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.64, 1.9):
        exact = int(np.count_nonzero(values > level))
        j = int(level // width)
        assert abs(h.count_above(level) - exact) <= h.counts[j], level
    assert h.count_above(0.1) == 1000 and h.count_above(0.3) == 1000
    assert h.count_above(2.0) == 0 and h.count_above(-1.0) == h.total
    # Inside a bin the count is shared out linearly.
    one = StreamingHistogram()
    one.add(np.full(100, 1000.5 * width))
    assert one.count_above(1000.25 * width) == pytest.approx(75.0)


def test_area_rows_centroid_and_wgs84(tmp_path):
    # A 30 x 20 px change area in EPSG:32616 with a 10 x 10 px hole in its west half.
    a = np.zeros((40, 60), "float32")
    a[10:30, 10:40] = 0.5
    a[15:25, 12:22] = 0.0
    a[35:37, 50:52] = 0.8  # a second, smaller area
    path = tmp_path / "change.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=60,
        height=40,
        count=1,
        dtype="float32",
        crs="EPSG:32616",
        transform=from_origin(500000, 4800000, 10, 10),
        nodata=-9999.0,
    ) as ds:
        ds.write(a[None])
    rows = area_rows(areas_above(str(path), 0.25), "EPSG:32616")
    assert [r["area_m2"] for r in rows] == [500 * PIXEL_M2, 4 * PIXEL_M2]
    assert rows[0]["mean"] == pytest.approx(0.5) and rows[1]["max"] == pytest.approx(0.8)
    # Outer 300 x 200 m centred at x 500250, y 4799800; hole 100 x 100 m centred at x 500170, y 4799800.
    cx = (600 * 500250.0 - 100 * 500170.0) / 500
    lon, lat = transformer("EPSG:32616", "EPSG:4326").transform(cx, 4799800.0)
    assert rows[0]["lon"] == pytest.approx(lon, abs=1e-7) and rows[0]["lat"] == pytest.approx(lat, abs=1e-7)
    assert -90 < rows[0]["lon"] < -86 and 43 < rows[0]["lat"] < 44
    assert area_rows([], "EPSG:32616") == []


def trajectory_totals():
    """Totals of a planted 6-year block: 30 px change for good in 2019, 20 px disturbed in 2021 only."""
    rng = np.random.default_rng(2)
    years = list(range(2017, 2023))
    n = 200
    base = rng.standard_normal((64, n)).astype(np.float32)
    other = rng.standard_normal((64, n)).astype(np.float32)
    values = np.repeat(base[None], len(years), axis=0)
    values[years.index(2019) :, :, :30] = other[None, :, :30]
    values[years.index(2021), :, 30:50] = other[:, 30:50]
    block = trajectory_of_block(values[:, :, None, :], years, [2017])
    totals = TrajectoryTotals(block.change_years, PIXEL_M2)
    totals.add(block)
    return totals


@pytest.fixture(scope="module")
def report(tmp_path_factory, outputs):
    folder = tmp_path_factory.mktemp("report")
    values = planted_values()
    h = filled_histogram(values)
    totals = trajectory_totals()
    areas = [
        {"area_m2": 2500.0, "mean": 0.512, "max": 0.703, "lon": -89.40123, "lat": 43.07456},
        {"area_m2": 12300.0, "mean": 0.451, "max": 0.811, "lon": -89.38, "lat": 43.09},
    ]
    path = folder / "report.html"
    out = write_change_report(
        path,
        h,
        PIXEL_M2,
        0.25,
        title="Change over years 2017-2022",
        facts=[("Source", "planted <test> block"), ("Years", "2017-2022")],
        areas=areas,
        year_rows=totals.rows(),
        baseline="2017",
        compared="2022 and the baseline 2017",
    )
    # The pictures, for a person to look at after the run.
    (outputs / "report_histogram.png").write_bytes(histogram_png(h, PIXEL_M2, 0.25))
    (outputs / "report_years.png").write_bytes(years_png(totals.rows()))
    (outputs / "report.html").write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return out, folder, h, totals


def test_report_is_one_complete_file(report):
    out, folder, _, _ = report
    assert [p.name for p in folder.iterdir()] == ["report.html"]
    text = open(out, encoding="utf-8").read()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    # Nothing outside the file: no linked images, styles or scripts.
    assert not re.search(r"""(src|href)=["'](?!data:|https://www\.openstreetmap\.org/)""", text)
    assert "<link" not in text and "<script" not in text
    assert "planted &lt;test&gt; block" in text  # facts are escaped


def test_report_embeds_two_png_pictures(report):
    text = open(report[0], encoding="utf-8").read()
    images = re.findall(r'<img alt="([^"]*)" width="(\d+)" height="(\d+)" src="data:image/png;base64,([^"]+)"', text)
    assert [alt for alt, *_ in images] == [
        "Histogram of the change values",
        "Hectares per year: persistent and temporary change",
    ]
    for _, width, height, data in images:
        png = base64.b64decode(data)
        assert png.startswith(PNG_SIGNATURE)
        assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (int(width), int(height))
        assert int(width) >= 600


def test_report_holds_the_numbers(report):
    out, _, h, totals = report
    text = open(out, encoding="utf-8").read()
    for q in (10, 50, 90, 99, 99.9):
        assert f'<td>p{q:g}</td><td class="n">{h.percentile(q):.4f}</td>' in text
    # Hectares above the levels: 1,000 px of 0.01 ha above 0.1, 0.2, 0.3; about half of them above 0.5.
    assert '<td>above 0.1</td><td class="n">10.00</td><td class="n">10.00 %</td>' in text
    assert '<td>above 0.3</td><td class="n">10.00</td>' in text
    exact_ha = np.count_nonzero(planted_values() > 0.5) * PIXEL_M2 / 1e4
    shown = re.search(r'<td>above 0.5</td><td class="n">([\d.]+)</td>', text)
    assert 4.0 < exact_ha < 6.0 and abs(float(shown.group(1)) - exact_ha) <= 0.01
    assert "<td>above 0.25 (threshold)</td>" in text
    assert "10,000 pixels with data = 100.00 ha" in text
    # Largest areas first, with their coordinates.
    assert text.index("-89.38000") < text.index("-89.40123") and "43.07456" in text and "1.23</td>" in text
    # The per-year table: 0.30 ha for good in 2019, 0.20 ha only temporarily in 2021.
    rows = {r["year"]: r for r in totals.rows()}
    assert rows[2019]["persistent_ha"] == pytest.approx(0.3) and rows[2021]["temporary_ha"] == pytest.approx(0.2)
    assert '<tr><td>2019</td><td class="n">2.00</td><td class="n">0.30</td><td class="n">0.00</td></tr>' in text
    assert '<tr><td>2021</td><td class="n">2.00</td><td class="n">0.00</td><td class="n">0.20</td></tr>' in text
    assert "<b>0.30</b>" in text  # persistently changed over all years
    assert "2022 and the baseline 2017" in text and "the baseline (2017)" in text


def test_two_year_report_has_no_year_section(tmp_path):
    path = write_change_report(tmp_path / "r.html", filled_histogram(planted_values()), PIXEL_M2)
    text = open(path, encoding="utf-8").read()
    assert "Change per year" not in text and text.count("<img ") == 1
    assert "No connected area of change above 0.25" in text


def test_report_without_data(tmp_path):
    path = write_change_report(tmp_path / "r.html", StreamingHistogram(), PIXEL_M2)
    text = open(path, encoding="utf-8").read()
    assert "No pixel has data in both years" in text and "<img " not in text


def test_report_replaces_an_old_file_and_refuses_a_missing_folder(tmp_path):
    old = tmp_path / "r.html"
    old.write_text("old")
    write_change_report(old, filled_histogram(planted_values()), PIXEL_M2)
    assert old.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
    with pytest.raises(EmbeddingsError, match="does not exist; choose another output file"):
        write_change_report(tmp_path / "missing" / "r.html", StreamingHistogram(), PIXEL_M2)


def test_report_without_matplotlib_has_tables(tmp_path):
    """matplotlib made unimportable in a fresh Python: tables instead of pictures, and the hint."""
    path = tmp_path / "r.html"
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["matplotlib"] = None
        import numpy as np
        from earth_embeddings.core.change import StreamingHistogram
        from earth_embeddings.core.report import histogram_png, matplotlib_install_hint, write_change_report
        rng = np.random.default_rng(0)
        h = StreamingHistogram()
        h.add(np.concatenate([rng.uniform(0.02, 0.06, 9000), rng.uniform(0.35, 0.65, 1000)]).astype(np.float32))
        rows = [{{"year": 2018, "persistent_ha": 1.25, "temporary_ha": 0.5, "valid_ha": 100.0}},
                {{"year": 2019, "persistent_ha": 0.0, "temporary_ha": 2.75, "valid_ha": 99.0}}]
        write_change_report({str(path)!r}, h, 100.0, year_rows=rows)
        print(json.dumps({{"png": histogram_png(h, 100.0) is None, "hint": matplotlib_install_hint(),
                           "p50": h.percentile(50), "loaded": "matplotlib.figure" in sys.modules}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["png"] is True and result["loaded"] is False
    text = path.read_text(encoding="utf-8")
    assert "<img " not in text
    assert "The pictures of this report need matplotlib, which QGIS's Python cannot import. Install" in text
    assert result["hint"] == matplotlib_install_hint() and f"<code>{html.escape(result['hint'])}</code>" in text
    assert f'<td class="n">{result["p50"]:.4f}</td>' in text
    # The distribution as a table: 9,000 px = 90 ha of stable land in its first rows, 10 ha of change.
    hist_rows = re.findall(
        r'<tr><td>(\d\.\d\d) - (\d\.\d\d)</td><td class="n">([\d,.]+)</td><td class="n">([\d.]+) %</td>', text
    )
    assert hist_rows and sum(float(ha.replace(",", "")) for _, _, ha, _ in hist_rows) == pytest.approx(100.0)
    assert sum(float(ha) for lo, _, ha, _ in hist_rows if float(lo) < 0.1) == pytest.approx(90.0)
    assert sum(float(share) for lo, _, _, share in hist_rows if float(lo) < 0.1) == pytest.approx(90.0)
    assert '<tr><td>2018</td><td class="n">100.00</td><td class="n">1.25</td><td class="n">0.50</td></tr>' in text
    assert '<td class="n">2.75</td>' in text


def test_install_hint_keeps_numpy(monkeypatch):
    from earth_embeddings.core import deps

    monkeypatch.setattr(deps, "externally_managed", lambda: True)
    assert matplotlib_install_hint() == "sudo apt install python3-matplotlib"
    # Elsewhere pip, with QGIS's own NumPy pinned so that pip cannot replace it.
    monkeypatch.setattr(deps, "externally_managed", lambda: False)
    hint = matplotlib_install_hint()
    assert hint == f'{deps.python_command()} -m pip install --user matplotlib "numpy=={np.__version__}"'
