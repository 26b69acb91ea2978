"""embeddings:trajectory and the change report through processing.run, on the planted time series."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from ee_helpers import Recorder, extent_param
from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer, QgsSingleBandPseudoColorRenderer, QgsVectorLayer

YEARS = list(range(2017, 2023))


@pytest.fixture(scope="module")
def result(run_alg_module, series_dir, series_truth, tmp_path_factory):
    out = tmp_path_factory.mktemp("alg-traj")
    feedback = Recorder()
    params = {
        "SOURCE": str(series_dir / "aef_index.csv"),
        "YEARS": "2017-2022",
        "EXTENT": extent_param(series_truth.notes["bbox_wgs84"]),
        "THRESHOLD": 0.25,
        "OUTPUT": str(out / "change.tif"),
        "OUTPUT_YEAR": str(out / "year.tif"),
        "OUTPUT_MAGNITUDE": str(out / "magnitude.tif"),
        "OUTPUT_STEP_YEAR": str(out / "step.tif"),
        "OUTPUT_ANOMALY": str(out / "anomaly.tif"),
        "OUTPUT_TABLE": str(out / "per_year.gpkg"),
        "OUTPUT_REPORT": str(out / "report.html"),
    }
    return run_alg_module("embeddings:trajectory", params, feedback), params, feedback


@pytest.fixture(scope="module")
def run_alg_module(plugin_processing):
    from qgis.core import QgsProcessingContext, QgsProject

    import processing

    def run(alg_id, params, feedback):
        ctx = QgsProcessingContext()
        ctx.setProject(QgsProject.instance())
        return processing.run(alg_id, params, context=ctx, feedback=feedback)

    return run


def test_outputs_and_numbers(result, series_truth):
    res, params, feedback = result
    for key in ("OUTPUT", "OUTPUT_YEAR", "OUTPUT_MAGNITUDE", "OUTPUT_STEP_YEAR", "OUTPUT_ANOMALY", "OUTPUT_REPORT"):
        assert res[key] == params[key]
    with rasterio.open(res["OUTPUT"]) as ds:
        assert ds.count == 5 and ds.descriptions == tuple(str(y) for y in YEARS[1:]) and ds.nodata == -9999
    with rasterio.open(res["OUTPUT_YEAR"]) as ds:
        yoc = ds.read(1)
        assert ds.dtypes[0] == "int16" and ds.nodata == -1
    with rasterio.open(res["OUTPUT_ANOMALY"]) as ds:
        assert ds.count == 6
    assert res["VALID_PIXELS"] == int((yoc != -1).sum())
    assert res["CHANGED_HA"] == pytest.approx((yoc > 0).sum() * 0.01)
    # Every planted year of change is on the map.
    assert {c["year"] for c in series_truth.changes} <= set(np.unique(yoc).tolist())
    log = "\n".join(feedback.lines)
    assert "Change over years 2017-2022 against the baseline 2017" in log and "2021: became" in log


def test_table_has_a_row_per_year(result):
    res, _, _ = result
    yoc = rasterio.open(res["OUTPUT_YEAR"]).read(1)
    table = QgsVectorLayer(res["OUTPUT_TABLE"], "t", "ogr")
    rows = {f["year"]: f for f in table.getFeatures()}
    assert sorted(rows) == YEARS[1:]
    for year, f in rows.items():
        assert f["persistent_ha"] == pytest.approx((yoc == year).sum() * 0.01)
        assert f["valid_ha"] > 0
    assert rows[2019]["temporary_ha"] > 1.0


def test_report_is_one_file_with_the_per_year_table(result):
    res, _, _ = result
    text = open(res["OUTPUT_REPORT"], encoding="utf-8").read()
    assert text.startswith("<!DOCTYPE html>") and "Change per year" in text and "above 0.3" in text
    assert "openstreetmap.org" in text  # the largest areas with coordinates
    assert "<img" not in text or 'src="data:image/png;base64,' in text


def test_styles_year_colours_and_last_band(result):
    from earth_embeddings.processing.styles import ChangeBandStyle, YearStyle

    res, _, _ = result
    layer = QgsRasterLayer(res["OUTPUT_YEAR"], "year")
    YearStyle(YEARS[1:], "not persistently changed", "since {year}").postProcessLayer(layer, None, None)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    classes = renderer.classes()
    assert [c.value for c in classes] == [0] + YEARS[1:]
    assert classes[1].label == "since 2018" and len({c.color.name() for c in classes}) == len(classes)
    change = QgsRasterLayer(res["OUTPUT"], "change")
    ChangeBandStyle(5).postProcessLayer(change, None, None)
    assert isinstance(change.renderer(), QgsSingleBandPseudoColorRenderer) and change.renderer().band() == 5


def test_inputs_of_loaded_rasters(run_alg, series_dir, series_truth, tmp_path):
    index = str(series_dir / "aef_index.csv")
    extent = extent_param((-90.01, 44.44, -89.99, 44.46))
    paths = []
    for year in (2017, 2019, 2022):
        out = str(tmp_path / f"loaded_{year}.tif")
        run_alg("embeddings:load", {"SOURCE": index, "YEAR": year, "EXTENT": extent, "OUTPUT": out})
        paths.append(out)
    res = run_alg(
        "embeddings:trajectory",
        {"INPUTS": paths, "OUTPUT": str(tmp_path / "c.tif"), "OUTPUT_YEAR": str(tmp_path / "y.tif")},
    )
    with rasterio.open(res["OUTPUT"]) as ds:
        assert ds.descriptions == ("2019", "2022")
    assert res["VALID_PIXELS"] > 0


def test_change_map_report(run_alg, sample_index, truth, tmp_path):
    res = run_alg(
        "embeddings:change",
        {
            "SOURCE": sample_index,
            "YEAR_A": 2017,
            "YEAR_B": 2024,
            "EXTENT": extent_param(truth.notes["bbox_wgs84"]),
            "OUTPUT": str(tmp_path / "change.tif"),
            "OUTPUT_REPORT": str(tmp_path / "report.html"),
        },
    )
    assert res["OUTPUT_REPORT"] == str(tmp_path / "report.html")
    text = open(res["OUTPUT_REPORT"], encoding="utf-8").read()
    assert "Percentiles of the change" in text and "Change per year" not in text
    assert f"{res['VALID_PIXELS']:,} pixels with data" in text
    assert "above 0.25 (threshold)" in text
