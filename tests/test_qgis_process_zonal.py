"""embeddings:zonalstats through the qgis_process command line, installed with make install."""

import json
import sqlite3

import pytest
from qgis_cli import QGIS_PROCESS, make_profile, qgis_process, run_algorithm


@pytest.fixture(scope="module")
def profile_env(tmp_path_factory):
    assert QGIS_PROCESS, "qgis_process.bin is not installed"
    return make_profile(tmp_path_factory.mktemp("qgis-profile-zonal"))


def test_help_lists_every_parameter(profile_env):
    proc = qgis_process(["help", "embeddings:zonalstats"], profile_env)
    assert proc.returncode == 0, proc.stderr
    for name in ("SOURCE", "YEAR", "INPUT", "ZONES", "PCA_COMPONENTS", "TARGET_CRS", "RESOLUTION", "OUTPUT"):
        assert name in proc.stdout


def test_zonalstats_from_the_command_line_writes_a_geopackage(profile_env, sample_dir, sample_index, tmp_path):
    out = tmp_path / "stats.gpkg"
    zones = sample_dir / "zones.geojson"
    proc = run_algorithm(
        "embeddings:zonalstats",
        {"SOURCE": sample_index, "YEAR": 2024, "ZONES": str(zones), "OUTPUT": str(out)},
        profile_env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.json["results"]["OUTPUT"] == str(out)
    with sqlite3.connect(out) as db:
        (table,) = db.execute("SELECT table_name FROM gpkg_contents").fetchone()
        columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]
        rows = db.execute(f'SELECT zone_id, pixel_count, "A00_mean", "A63_std", pc1 FROM "{table}"').fetchall()
    assert {"zone_id", "name", "A00_mean", "A63_mean", "A00_std", "A63_std", "pixel_count", "pc1", "pc3"} <= set(
        columns
    )
    expected = json.loads(zones.read_text())["features"]
    assert sorted(r[0] for r in rows) == sorted(f["properties"]["zone_id"] for f in expected)
    assert all(r[1] >= 1 and r[2] is not None and r[3] is not None and r[4] is not None for r in rows)
    assert "pc1 explains" in proc.stdout + proc.stderr


def test_an_empty_zones_file_fails_with_the_message_and_no_output(profile_env, sample_index, tmp_path):
    zones = tmp_path / "empty.geojson"
    zones.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    out = tmp_path / "none.gpkg"
    proc = run_algorithm(
        "embeddings:zonalstats",
        {"SOURCE": sample_index, "YEAR": 2024, "ZONES": str(zones), "OUTPUT": str(out)},
        profile_env,
        json_output=False,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "The polygons layer has no features; choose a layer (or selection) with polygons." in text
    assert "Traceback" not in text
    assert not out.exists()
