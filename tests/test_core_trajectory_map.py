"""core.trajectory.trajectory_map on the planted time series (scripts/sample.py plant_series)
and on the southern-hemisphere sample: outputs against the truth, the totals, the report."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
import rasterio
from core_calls import change, load, trajectory

from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.grid import transformer
from earth_embeddings.core.trajectory import NODATA_YEAR

YEARS = list(range(2017, 2023))


def pixel_lonlat(ds, dx=0.0, dy=0.0):
    rows, cols = np.mgrid[0 : ds.height, 0 : ds.width]
    x, y = rasterio.transform.xy(ds.transform, rows.ravel(), cols.ravel())
    lon, lat = transformer(ds.crs.to_string(), "EPSG:4326").transform(np.asarray(x) + dx, np.asarray(y) + dy)
    return np.asarray(lon).reshape(ds.shape), np.asarray(lat).reshape(ds.shape)


def robust(ds, fn):
    """``fn(lon, lat)`` at the pixel centres, and where it is the same 10 m around (edges of
    planted discs and cells are left out: the grid's pixels straddle them)."""
    centre = fn(*pixel_lonlat(ds))
    same = np.ones(centre.shape, dtype=bool)
    for dx, dy in ((10, 0), (-10, 0), (0, 10), (0, -10)):
        same &= fn(*pixel_lonlat(ds, dx, dy)) == centre
    return centre, same


def discs(truth, ds, items):
    """(inside, outside) the discs, both robust (the same 10 m around)."""
    centre, same = robust(ds, lambda lon, lat: truth.in_discs(lon, lat, items))
    return centre & same, ~centre & same


@pytest.fixture(scope="module")
def run(series_dir, series_truth, tmp_path_factory):
    out = tmp_path_factory.mktemp("traj")
    w, s, e, n = series_truth.notes["bbox_wgs84"]
    paths = {
        "output": out / "change.tif",
        "output_year": out / "year.tif",
        "output_magnitude": out / "magnitude.tif",
        "output_step_year": out / "step_year.tif",
        "output_anomaly": out / "anomaly.tif",
        "report": out / "report.html",
    }
    summary = trajectory(source=str(series_dir / "aef_index.csv"), extent=(w, s, e, n), extent_crs="EPSG:4326", **paths)
    return summary, paths


@pytest.fixture(scope="module")
def truth_yoc(run, series_truth):
    """The planted year of change on the run's grid, and where it is robust."""
    with rasterio.open(run[1]["output_year"]) as ds:
        return robust(ds, series_truth.year_of_change_at)


def read(path, band=None):
    with rasterio.open(path) as ds:
        return ds.read(band) if band else ds.read()


def test_year_of_change_equals_the_planted_year(run, series_truth, truth_yoc):
    summary, paths = run
    assert summary.years == tuple(YEARS) and summary.baseline_years == (2017,)
    with rasterio.open(paths["output_year"]) as ds:
        yoc = ds.read(1)
        assert ds.nodata == NODATA_YEAR and ds.dtypes[0] == "int16"
        expected, ok = truth_yoc
    has = yoc != NODATA_YEAR
    assert has.mean() > 0.8  # the corners of the box lie outside the rotated tiles
    check = ok & has
    assert np.array_equal(yoc[check], expected[check])
    # Every change is found with its own year, in its own disc.
    for c in series_truth.changes:
        inside = check & discs(series_truth, ds, [c])[0] & (expected > 0)
        assert inside.sum() > 20 and (yoc[inside] == c["year"]).mean() > 0.99, c
    # Stable land and the temporary disturbance: 0.
    temporary = series_truth.disturbances[0]
    in_temp = check & discs(series_truth, ds, [temporary])[0]
    assert in_temp.sum() > 100 and (yoc[in_temp] == 0).all()
    assert ((yoc[check & (expected == 0)]) == 0).all()


def test_a_larger_later_disturbance_keeps_the_persistent_year(run, series_truth, truth_yoc):
    _, paths = run
    older, larger = series_truth.changes[3], series_truth.disturbances[1]
    with rasterio.open(paths["output_year"]) as ds:
        yoc = ds.read(1)
        expected, ok = truth_yoc
        inside = ok & discs(series_truth, ds, [larger])[0] & (expected > 0)
    assert inside.sum() > 50
    assert (yoc[inside] == older["year"]).all()
    change_bands = read(paths["output"])
    later = change_bands[YEARS.index(larger["year"]) - 1][inside]
    before = change_bands[YEARS.index(larger["year"]) - 2][inside]
    assert (later > before + 0.3).all()  # larger than the persistent change itself


def test_the_one_year_hole_is_spanned(run, series_truth, truth_yoc):
    _, paths = run
    hole = series_truth.holes[0]
    with rasterio.open(paths["output_year"]) as ds:
        yoc = ds.read(1)
        expected, ok = truth_yoc
        inside = ok & discs(series_truth, ds, [hole])[0]
    assert inside.sum() > 100
    assert (yoc[inside] != NODATA_YEAR).all() and np.array_equal(yoc[inside], expected[inside])
    assert {0, series_truth.changes[2]["year"]} <= set(np.unique(yoc[inside]).tolist())
    change_bands = read(paths["output"])
    assert (change_bands[YEARS.index(hole["year"]) - 1][inside] == -9999).all()
    assert (change_bands[-1][inside] != -9999).all()
    magnitude = read(paths["output_magnitude"], 1)
    assert (magnitude[inside] != -9999).all()


def test_anomaly_peaks_in_the_disturbed_year(run, series_truth):
    _, paths = run
    anomaly = read(paths["output_anomaly"])
    temporary, larger = series_truth.disturbances
    with rasterio.open(paths["output_anomaly"]) as ds:
        assert ds.descriptions == tuple(str(y) for y in YEARS)
        inside = discs(series_truth, ds, [temporary])[0] & (anomaly[0] != -9999)
        inside_larger = discs(series_truth, ds, [larger])[0] & (anomaly[0] != -9999)
    assert inside.sum() > 100
    assert (np.argmax(anomaly[:, inside], axis=0) == YEARS.index(temporary["year"])).all()
    # Inside an older change the first year is unusual too (the only year before it); the
    # disturbed year still stands out from every changed year.
    k = YEARS.index(larger["year"])
    changed = [i for i in range(1, len(YEARS)) if i != k]
    assert inside_larger.sum() > 50
    assert (anomaly[k][inside_larger] > anomaly[changed][:, inside_larger].max(axis=0) + 0.5).all()


def test_step_year_and_magnitude(run, series_truth, truth_yoc):
    _, paths = run
    step_year = read(paths["output_step_year"], 1)
    magnitude = read(paths["output_magnitude"], 1)
    with rasterio.open(paths["output_year"]) as ds:
        expected, ok = truth_yoc
        temporary = ok & discs(series_truth, ds, [series_truth.disturbances[0]])[0]
        undisturbed = discs(series_truth, ds, series_truth.disturbances)[1]
    stable = ok & undisturbed & (expected == 0) & (magnitude != -9999)
    assert (step_year[stable] == 0).all() and (magnitude[stable] < 0.25).all()
    # The temporary disturbance: the largest step is into it or out of it.
    assert np.isin(step_year[temporary], [2019, 2020]).all() and (magnitude[temporary] > 1.0).all()


def test_change_bands_match_the_two_year_change_map(run, series_dir, series_truth, tmp_path):
    summary, paths = run
    w, s, e, n = series_truth.notes["bbox_wgs84"]
    two = change(
        tmp_path / "c.tif", str(series_dir / "aef_index.csv"), 2017, 2022, (w, s, e, n), "EPSG:4326", min_area_m2=None
    )
    with rasterio.open(paths["output"]) as ds, rasterio.open(two.path) as ref:
        assert ds.descriptions == tuple(str(y) for y in YEARS[1:])
        assert ds.transform == ref.transform and ds.crs == ref.crs
        last, expected = ds.read(ds.count), ref.read(1)
        assert ds.tags()["EMBEDDINGS_BASELINE_YEARS"] == "2017"
    assert np.array_equal(last == -9999, expected == -9999)
    ok = expected != -9999
    assert np.abs(last[ok] - expected[ok]).max() < 1e-5


def test_totals_and_per_year_rows(run):
    summary, paths = run
    yoc = read(paths["output_year"], 1)
    px_ha = summary.grid.resolution**2 / 1e4
    assert summary.valid_pixels == int((yoc != NODATA_YEAR).sum())
    assert summary.changed_ha == pytest.approx((yoc > 0).sum() * px_ha)
    rows = {r["year"]: r for r in summary.totals.rows()}
    assert sorted(rows) == YEARS[1:]
    for year, r in rows.items():
        assert r["persistent_ha"] == pytest.approx((yoc == year).sum() * px_ha)
    # Temporary hectares: the 2019 disturbance (and nothing in 2018, before any).
    assert rows[2019]["temporary_ha"] > 10 * max(rows[2018]["temporary_ha"], 0.01)
    text = summary.describe()
    assert "2017-2022" in text and "2019: became persistently changed" in text


def test_report_holds_the_numbers(run):
    summary, paths = run
    text = paths["report"].read_text(encoding="utf-8")
    assert summary.report == str(paths["report"])
    assert "Change per year" in text and "Largest change areas" in text
    for r in summary.totals.rows():
        assert f"{r['persistent_ha']:,.2f}" in text and f"{r['temporary_ha']:,.2f}" in text
    assert html.escape("2022 and the baseline 2017") in text
    assert len(summary.areas) >= 3
    assert f"{summary.areas[0].area_m2 / 1e4:,.2f}" in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 2


def test_inputs_mode_equals_the_collection(series_dir, series_truth, tmp_path):
    index = str(series_dir / "aef_index.csv")
    lon = series_truth.lonlat_of_local(series_truth.changes[2]["x"], 0)[0]
    lat = series_truth.lonlat_of_local(0, series_truth.changes[2]["y"])[1]
    box = (float(lon) - 0.01, float(lat) - 0.006, float(lon) + 0.01, float(lat) + 0.006)
    rasters = []
    # Years from the tag embeddings:load writes, whatever the name; the last one from its name.
    names = {2017: "emb_2017.tif", 2020: "before.tif", 2021: "after.tif", 2022: "export_2022.tif"}
    for year, name in names.items():
        out = tmp_path / name
        load(index, year, box, "EPSG:4326", out)
        if year == 2022:
            with rasterio.open(out, "r+") as ds:
                ds.update_tags(EMBEDDINGS_YEAR="")  # the year then comes from the name
        rasters.append(out)
    a = trajectory(tmp_path / "a.tif", tmp_path / "ay.tif", inputs=rasters[::-1])
    b = trajectory(tmp_path / "b.tif", tmp_path / "by.tif", index, "2017,2020-2022", extent=box, extent_crs="EPSG:4326")
    assert a.years == b.years == (2017, 2020, 2021, 2022)
    assert np.array_equal(read(tmp_path / "ay.tif"), read(tmp_path / "by.tif"))
    assert np.allclose(read(tmp_path / "a.tif"), read(tmp_path / "b.tif"), atol=1e-6)
    assert (read(tmp_path / "ay.tif", 1) == 2021).sum() > 100


def test_several_baseline_years(series_dir, series_truth, tmp_path):
    w, s, e, n = series_truth.notes["bbox_wgs84"]
    summary = trajectory(
        tmp_path / "c.tif",
        tmp_path / "y.tif",
        str(series_dir / "aef_index.csv"),
        "2019-2022",
        "2017-2018",
        extent=(w, s, e, n),
        extent_crs="EPSG:4326",
    )
    assert summary.baseline_years == (2017, 2018) and summary.change_years == (2019, 2020, 2021, 2022)
    with rasterio.open(tmp_path / "c.tif") as ds:
        assert ds.descriptions == ("2019", "2020", "2021", "2022")
    yoc = read(tmp_path / "y.tif", 1)
    assert set(np.unique(yoc).tolist()) <= {-1, 0, 2019, 2020, 2021, 2022}


@pytest.mark.parametrize(
    "years, baseline, fragment",
    [
        ("2019", None, r"at least two years.*2017, 2018, 2019, 2020, 2021, 2022"),
        ("2017,2030", None, r"2030.*2017, 2018, 2019, 2020, 2021, 2022"),
        ("2018 to 2020", None, r"cannot be read"),
        (None, "2016", r"BASELINE_YEARS asks for 2016"),
    ],
)
def test_bad_years_are_one_sentence_and_write_nothing(series_dir, series_truth, tmp_path, years, baseline, fragment):
    w, s, e, n = series_truth.notes["bbox_wgs84"]
    with pytest.raises(EmbeddingsError, match=fragment):
        trajectory(
            tmp_path / "c.tif",
            tmp_path / "y.tif",
            str(series_dir / "aef_index.csv"),
            years,
            baseline,
            extent=(w, s, e, n),
            extent_crs="EPSG:4326",
            report=tmp_path / "r.html",
        )
    assert list(tmp_path.iterdir()) == []


def test_southern_hemisphere_across_the_seam(south_dir, tmp_path):
    from earth_embeddings.scripts.sample import SampleTruth

    truth = SampleTruth.load(south_dir)
    assert {z["crs"] for z in truth.zones.values()} == {"EPSG:32733", "EPSG:32734"}
    assert sorted(p.name for p in (south_dir / "2024").iterdir()) == ["33S", "34S"]
    w, s, e, n = truth.notes["bbox_wgs84"]
    assert s < 0 and w < 18.0 < e
    summary = trajectory(
        tmp_path / "c.tif", tmp_path / "y.tif", str(south_dir), extent=(w, s, e, n), extent_crs="EPSG:4326"
    )
    assert summary.grid.crs == "EPSG:32734" and summary.years == (2017, 2024)
    with rasterio.open(tmp_path / "y.tif") as ds:
        yoc = ds.read(1)
        expected, ok = robust(ds, truth.year_of_change_at)
        lon, _ = pixel_lonlat(ds)
    check = ok & (yoc != NODATA_YEAR) & (expected != NODATA_YEAR)
    assert np.array_equal(yoc[check], expected[check])
    # Planted change on both sides of the seam, and the 2024 hole: fewer than two years, -1.
    assert ((yoc == 2024) & (lon < 18.0)).sum() > 100 and ((yoc == 2024) & (lon > 18.0)).sum() > 100
    hole = ok & (expected == NODATA_YEAR)
    assert hole.sum() > 100 and (yoc[hole] == NODATA_YEAR).all()
