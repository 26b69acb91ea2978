"""embeddings:change through the qgis_process command line, installed with make install."""

import numpy as np
import pytest
import rasterio
from core_calls import change as change_map
from qgis_cli import QGIS_PROCESS, make_profile, qgis_process, run_algorithm

from earth_embeddings.core.change import NODATA_CHANGE


@pytest.fixture(scope="module")
def profile_env(tmp_path_factory):
    assert QGIS_PROCESS, "qgis_process.bin is not installed"
    return make_profile(tmp_path_factory.mktemp("qgis-profile-change"))


def test_help_lists_every_parameter(profile_env):
    proc = qgis_process(["help", "embeddings:change"], profile_env)
    assert proc.returncode == 0, proc.stderr
    for name in (
        "SOURCE",
        "YEAR_A",
        "YEAR_B",
        "EXTENT",
        "TARGET_CRS",
        "RESOLUTION",
        "INPUT_A",
        "INPUT_B",
        "THRESHOLD",
        "MIN_AREA_M2",
        "OUTPUT",
        "OUTPUT_POLYGONS",
    ):
        assert name in proc.stdout, name


def test_run_change_from_the_command_line(profile_env, sample_index, truth, tmp_path):
    w, s, e, n = truth.notes["bbox_wgs84"]
    out = tmp_path / "change.tif"
    areas = tmp_path / "areas.gpkg"
    proc = run_algorithm(
        "embeddings:change",
        {
            "SOURCE": sample_index,
            "YEAR_A": 2017,
            "YEAR_B": 2024,
            "EXTENT": f"{w},{e},{s},{n} [EPSG:4326]",
            "TARGET_CRS": "EPSG:32616",
            "RESOLUTION": 10,
            "OUTPUT": str(out),
            "OUTPUT_POLYGONS": str(areas),
        },
        profile_env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = proc.json["results"]
    assert results["OUTPUT"] == str(out) and results["OUTPUT_POLYGONS"] == str(areas)
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.dtypes[0] == "float32" and ds.crs.to_epsg() == 32616 and ds.res == (10.0, 10.0)
        got = ds.read(1)
    # The same map as the core computes in this process.
    ref = tmp_path / "ref.tif"
    summary = change_map(
        str(ref),
        source=sample_index,
        year_a=2017,
        year_b=2024,
        extent=(w, s, e, n),
        extent_crs="EPSG:4326",
        target_crs="EPSG:32616",
    )
    with rasterio.open(ref) as ds:
        assert np.array_equal(got, ds.read(1))
    assert results["VALID_PIXELS"] == summary.valid_pixels == (got != NODATA_CHANGE).sum()
    assert results["CHANGE_P90"] == pytest.approx(summary.p90)
    import sqlite3

    with sqlite3.connect(areas) as db:
        table = db.execute("SELECT table_name FROM gpkg_contents WHERE data_type = 'features'").fetchone()[0]
        rows = db.execute(f'SELECT area_m2, mean_change, max_change FROM "{table}"').fetchall()
    assert [r[0] for r in rows] == [a.area_m2 for a in summary.areas] and len(rows) >= 3
