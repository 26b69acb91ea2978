"""Every qgis_process command in the README, run as written against the sample collection.

The README's example paths are replaced by the sample's (index, exemplars, zones) and by a
temporary folder for /tmp/...; everything else is run literally, in README order (a command
may read what an earlier one wrote). This keeps the README honest and runs every algorithm
and model through the command line with --json, checking the outputs against the truth.
"""

import json
import math
import re
import shlex
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import rasterio
from folders import float_folder
from qgis.core import QgsApplication, QgsVectorLayer
from qgis_cli import QGIS_PROCESS, REPO, make_profile, run_algorithm

from earth_embeddings.core.grid import transformer
from earth_embeddings.scripts.sample import CLASSES, class_interior_points

INPUT_KEYS = {"INPUT", "INPUT_A", "INPUT_B", "EXEMPLARS", "NEGATIVES", "ZONES", "TRAINING", "VALIDATION", "MODEL"}


def readme_commands() -> list[tuple[str, dict]]:
    """(algorithm id, {KEY: value}) of every ``qgis_process.bin run`` in the README's sh blocks."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            # Runs on a Dask cluster are run by tests/test_dask.py, against a cluster of its own.
            if line.strip().startswith("qgis_process.bin run ") and "DASK_SCHEDULER=" not in line:
                words = shlex.split(line)
                assert words[3] == "--", line
                commands.append((words[2], dict(w.split("=", 1) for w in words[4:])))
    return commands


# The two-year sample has no trajectory: the README's trajectory example reads the time series.
SOURCE_FOR = {"embeddings:trajectory": "series"}


@pytest.fixture(scope="module")
def readme_runs(tmp_path_factory, sample_index, sample_dir, truth, series_dir):
    assert QGIS_PROCESS, "qgis_process.bin is not installed"
    env = make_profile(tmp_path_factory.mktemp("qgis-profile-all"))
    tmp = tmp_path_factory.mktemp("readme")
    water = class_interior_points(truth, CLASSES.index("water"), 2024, 2, seed=3)
    negatives = tmp / "not_these.geojson"
    negatives.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": p}}
                    for p in water
                ],
            }
        )
    )
    training = tmp / "training.geojson"
    training.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {"class": name}, "geometry": {"type": "Point", "coordinates": p}}
                    for c, name in enumerate(CLASSES)
                    for p in class_interior_points(truth, c, 2017, 4, seed=30 + c)
                ],
            }
        )
    )
    data = {
        "/data/aef/aef_index.csv": sample_index,
        "/data/training.geojson": str(training),
        "/data/fields.geojson": str(sample_dir / "exemplars.geojson"),
        "/data/not_these.geojson": str(negatives),
        "/data/census_blocks.gpkg": str(sample_dir / "zones.geojson"),
        "/data/tessera": str(float_folder(sample_dir, tmp / "tessera")),
    }
    written: dict[str, str] = {}
    runs = []
    for i, (alg_id, params) in enumerate(readme_commands()):
        actual = {}
        for key, value in params.items():
            if value == "/data/aef/aef_index.csv" and SOURCE_FOR.get(alg_id) == "series":
                value = str(series_dir / "aef_index.csv")
            elif value.startswith("/data/"):
                assert value in data, f"README uses {value}: add it to this test's substitutions"
                value = data[value]
            elif value.startswith("/tmp/"):
                name = value[len("/tmp/") :]
                if key in INPUT_KEYS:
                    assert name in written, f"{alg_id} reads {value} before a README command writes it"
                    value = written[name]
                else:
                    (tmp / str(i)).mkdir(exist_ok=True)
                    value = written[name] = str(tmp / str(i) / name)
            actual[key] = value
        proc = run_algorithm(alg_id, actual, env)
        runs.append((alg_id, actual, proc))
    return runs


def results_of(readme_runs, alg_id, **where):
    found = [
        (params, proc.json["results"])
        for a, params, proc in readme_runs
        if a == alg_id and all((k in params) == v for k, v in where.items())
    ]
    assert found, f"no README command for {alg_id} {where}"
    return found[0]


def top_lonlat(path):
    with sqlite3.connect(path) as db:
        table = db.execute("SELECT table_name FROM gpkg_contents").fetchone()[0]
        rows = db.execute(f'SELECT rank, lon, lat FROM "{table}" ORDER BY rank').fetchall()
    return [r[0] for r in rows], np.array([r[1] for r in rows]), np.array([r[2] for r in rows])


def on_surface_lonlat(layer):
    tr = transformer(layer.crs().authid(), "EPSG:4326")
    pts = [f.geometry().pointOnSurface().asPoint() for f in layer.getFeatures()]
    lon, lat = tr.transform([p.x() for p in pts], [p.y() for p in pts])
    return np.asarray(lon), np.asarray(lat)


def test_the_readme_has_a_command_for_every_algorithm_and_model(plugin_processing):
    ids = {alg.id() for alg in QgsApplication.processingRegistry().providerById("embeddings").algorithms()}
    assert len(ids) >= 6
    assert ids <= {alg_id for alg_id, _ in readme_commands()}


def test_every_readme_command_runs_and_returns_only_declared_outputs(readme_runs, plugin_processing):
    registry = QgsApplication.processingRegistry()
    for alg_id, params, proc in readme_runs:
        assert proc.returncode == 0, f"{alg_id}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
        results = proc.json["results"]
        declared = {o.name() for o in registry.algorithmById(alg_id).outputDefinitions()}
        assert set(results) <= declared, (alg_id, set(results) - declared)
        for key, value in params.items():
            if registry.algorithmById(alg_id).parameterDefinition(key).isDestination():
                assert results[key] == value and Path(value).exists(), (alg_id, key)


def test_load_writes_the_embeddings(readme_runs):
    params, results = results_of(readme_runs, "embeddings:load")
    with rasterio.open(results["OUTPUT"]) as ds:
        assert ds.count == 64 and ds.dtypes[0] == "int8" and ds.crs.to_epsg() == 32616
        assert results["VALID_PIXELS"] == int((ds.read(1) != -128).sum()) > 0


def test_change_from_years_and_from_loaded_rasters_agree_with_the_truth(readme_runs, truth):
    _, years = results_of(readme_runs, "embeddings:change", SOURCE=True)
    _, rasters = results_of(readme_runs, "embeddings:change", INPUT_A=True)
    with rasterio.open(years["OUTPUT"]) as a, rasterio.open(rasters["OUTPUT"]) as b:
        assert a.transform == b.transform
        assert np.array_equal(a.read(1), b.read(1))
    assert years["CHANGE_P50"] < 0.1 < 0.25 < years["CHANGE_P99"]
    areas = QgsVectorLayer(years["OUTPUT_POLYGONS"], "areas", "ogr")
    assert areas.featureCount() >= 2
    assert truth.change_at(*on_surface_lonlat(areas)).all()


def test_change_from_a_folder_of_128_band_float_tiles_matches_the_index(readme_runs):
    _, index = results_of(readme_runs, "embeddings:change", SOURCE=True)
    (folder,) = [proc.json["results"] for a, p, proc in readme_runs if p.get("SOURCE", "").endswith("tessera")]
    with rasterio.open(index["OUTPUT"]) as a, rasterio.open(folder["OUTPUT"]) as b:
        assert a.transform == b.transform
        va, vb = a.read(1), b.read(1)
    valid = va != -9999
    assert np.array_equal(valid, vb != -9999) and np.abs(va[valid] - vb[valid]).max() < 1e-4
    assert folder["VALID_PIXELS"] == index["VALID_PIXELS"]


def test_similarity_finds_forest_and_writes_the_areas(readme_runs, truth):
    params, results = results_of(readme_runs, "embeddings:similarity")
    assert "NEGATIVES" in params
    ranks, lon, lat = top_lonlat(results["OUTPUT_TOP_K"])
    assert ranks == [1, 2, 3, 4, 5]
    assert (truth.class_at(lon, lat, int(params["YEAR"])) == CLASSES.index("forest")).all()
    with rasterio.open(results["OUTPUT"]) as ds:
        scores = ds.read(1)
        valid = scores != -9999
        assert -2 <= scores[valid].min() and scores[valid].max() <= 2
        assert scores[valid].max() == pytest.approx(results["SCORE_MAX"])
    areas = QgsVectorLayer(results["OUTPUT_AREAS"], "areas", "ogr")
    assert areas.featureCount() >= 1
    assert all(f["mean_score"] > float(params["THRESHOLD"]) for f in areas.getFeatures())


def test_zonal_statistics_of_every_zone(readme_runs):
    params, results = results_of(readme_runs, "embeddings:zonalstats")
    layer = QgsVectorLayer(results["OUTPUT"], "stats", "ogr")
    assert layer.featureCount() == 14
    for name in ("A00_mean", "A63_std", "pixel_count", "pc1", "pc2", "pc3"):
        assert layer.fields().indexOf(name) >= 0, name
    assert all(f["pixel_count"] >= 1 for f in layer.getFeatures())


def planted_codes(path, truth, year, nodata):
    """(map values, planted class index) at the pixels of a class raster that have a value."""
    with rasterio.open(path) as ds:
        a, t, crs = ds.read(1), ds.transform, ds.crs.to_string()
    rows, cols = np.nonzero(a != nodata)
    lon, lat = transformer(crs, "EPSG:4326").transform(t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e)
    return a[rows, cols], truth.class_at(lon, lat, year)


def test_classify_maps_the_planted_classes_and_its_model_the_next_year(readme_runs, truth):
    params, results = results_of(readme_runs, "embeddings:classify", TRAINING=True)
    assert results["OVERALL_ACCURACY"] >= 0.95 and results["CLASSES"] == len(CLASSES)
    values, planted = planted_codes(results["OUTPUT"], truth, 2017, 255)
    codes = np.array([sorted(CLASSES).index(n) + 1 for n in CLASSES])  # text classes: 1..N sorted
    assert (values == codes[planted]).mean() >= 0.95
    assert Path(results["OUTPUT_REPORT"]).read_text().count("<tr>") == len(CLASSES) + 1
    assert Path(results["OUTPUT"]).with_suffix(".qml").exists()
    _, later = results_of(readme_runs, "embeddings:classify", MODEL=True)
    values, planted = planted_codes(later["OUTPUT"], truth, 2024, 255)
    assert (values == codes[planted]).mean() >= 0.95


def test_cluster_writes_ids_by_size_and_the_centroids(readme_runs):
    params, results = results_of(readme_runs, "embeddings:cluster")
    k = int(params["CLUSTERS"])
    assert results["CLUSTERS_USED"] == k
    with rasterio.open(results["OUTPUT"]) as ds:
        ids = ds.read(1)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 0
    assert set(np.unique(ids)) <= set(range(k + 1))
    table = QgsVectorLayer(results["OUTPUT_CENTROIDS"], "c", "ogr")
    counts = {int(f["cluster"]): int(f["pixels"]) for f in table.getFeatures()}
    assert counts == {c: int((ids == c).sum()) for c in range(1, k + 1)}


def test_change_hotspots_model(readme_runs, truth):
    params, results = results_of(readme_runs, "embeddings:change_hotspots")
    layer = QgsVectorLayer(results["largest:HOTSPOTS"], "hot", "ogr")
    by_rank = sorted(layer.getFeatures(), key=lambda f: f["rank"])
    # The README's extent holds fewer change areas than MAX_AREAS may ask for.
    assert 1 <= len(by_rank) <= int(params["MAX_AREAS"])
    assert [f["rank"] for f in by_rank] == list(range(1, len(by_rank) + 1))
    areas = [f["area_m2"] for f in by_rank]
    assert areas == sorted(areas, reverse=True)
    assert truth.change_at(*on_surface_lonlat(layer)).all()
    with rasterio.open(results["change:CHANGE_MAP"]) as ds:
        assert ds.dtypes[0] == "float32"


def test_find_similar_places_model(readme_runs, truth):
    params, results = results_of(readme_runs, "embeddings:find_similar_places")
    circles = QgsVectorLayer(results["buffer:PLACES"], "circles", "ogr")
    assert circles.featureCount() == int(params["TOP_K"])
    radius = float(params["BUFFER_M"])
    for f in circles.getFeatures():
        assert f.geometry().area() == pytest.approx(math.pi * radius**2, rel=0.02)
    ranks, lon, lat = top_lonlat(results["similarity:TOP_PLACES"])
    assert ranks == list(range(1, int(params["TOP_K"]) + 1))
    assert (truth.class_at(lon, lat, int(params["YEAR"])) == CLASSES.index("forest")).all()


def test_trajectory_year_of_change_and_report(readme_runs, series_truth):
    params, results = results_of(readme_runs, "embeddings:trajectory")
    with rasterio.open(results["OUTPUT_YEAR"]) as ds:
        yoc = ds.read(1)
        rows, cols = np.nonzero(yoc > 0)
        x, y = rasterio.transform.xy(ds.transform, rows, cols)
        lon, lat = transformer(ds.crs.to_string(), "EPSG:4326").transform(x, y)
    with rasterio.open(results["OUTPUT"]) as ds:
        assert ds.descriptions == ("2018", "2019", "2020", "2021", "2022")
    # The extent holds the seam change (2019): changed pixels are planted, most with its year.
    truth_year = series_truth.year_of_change_at(np.asarray(lon), np.asarray(lat))
    assert len(truth_year) > 100 and (truth_year == yoc[rows, cols]).mean() > 0.95
    assert results["CHANGED_HA"] == pytest.approx(len(rows) * 0.01)
    text = Path(results["OUTPUT_REPORT"]).read_text(encoding="utf-8")
    assert "Change per year" in text and f"{results['CHANGED_HA']:,.2f}" in text
