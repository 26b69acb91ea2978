"""The plugin through the qgis_process command line, installed with make install."""

import pytest
import rasterio
from qgis_cli import QGIS_PROCESS, make_profile, qgis_process, run_algorithm


@pytest.fixture(scope="module")
def profile_env(tmp_path_factory):
    assert QGIS_PROCESS, "qgis_process.bin is not installed"
    return make_profile(tmp_path_factory.mktemp("qgis-profile"))


def test_make_install_then_list_shows_the_provider(profile_env):
    proc = qgis_process(["list"], profile_env)
    assert proc.returncode == 0, proc.stderr
    assert "Earth Embeddings" in proc.stdout
    assert "embeddings:load" in proc.stdout


def test_help_lists_every_parameter(profile_env):
    proc = qgis_process(["help", "embeddings:load"], profile_env)
    assert proc.returncode == 0, proc.stderr
    for name in ("SOURCE", "YEAR", "EXTENT", "TARGET_CRS", "RESOLUTION", "OUTPUT"):
        assert name in proc.stdout


def test_run_load_from_the_command_line(profile_env, sample_index, truth, tmp_path):
    w, s, e, n = truth.notes["bbox_wgs84"]
    out = tmp_path / "emb.tif"
    proc = run_algorithm(
        "embeddings:load",
        {
            "SOURCE": sample_index,
            "YEAR": 2024,
            "EXTENT": f"{w},{e},{s},{n} [EPSG:4326]",
            "OUTPUT": str(out),
        },
        profile_env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.json["results"]["OUTPUT"] == str(out)
    with rasterio.open(out) as ds:
        assert ds.count == 64 and ds.dtypes[0] == "int8"


def test_run_similarity_with_a_geojson_of_exemplars(profile_env, sample_index, truth, tmp_path):
    import json

    from earth_embeddings.scripts.sample import CLASSES, class_interior_points

    pts = class_interior_points(truth, CLASSES.index("forest"), 2017, 3)
    ex = tmp_path / "points.geojson"
    features = [{"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": p}} for p in pts]
    ex.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    w, s, e, n = truth.notes["bbox_wgs84"]
    out = tmp_path / "sim.tif"
    top = tmp_path / "top.gpkg"
    proc = run_algorithm(
        "embeddings:similarity",
        {
            "SOURCE": sample_index,
            "YEAR": 2017,
            "EXTENT": f"{w},{e},{s},{n} [EPSG:4326]",
            "EXEMPLARS": str(ex),
            "TOP_K": 5,
            "OUTPUT": str(out),
            "OUTPUT_TOP_K": str(top),
        },
        profile_env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.json["results"]["OUTPUT"] == str(out)
    assert proc.json["results"]["SCORE_MAX"] > 0.95
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.dtypes[0] == "float32"
        assert ds.read(1).max() == pytest.approx(proc.json["results"]["SCORE_MAX"])
    import sqlite3

    with sqlite3.connect(top) as db:
        ranks = [r[0] for r in db.execute("SELECT rank FROM top ORDER BY rank")]
    assert ranks == [1, 2, 3, 4, 5]


def test_make_uninstall_removes_the_plugin(tmp_path_factory):
    import subprocess

    from qgis_cli import REPO

    root = tmp_path_factory.mktemp("qgis-profile-2")
    env = make_profile(root)
    subprocess.run(
        ["make", "-s", "-C", str(REPO), "uninstall", f"PROFILE_DIR={root / 'profiles' / 'default'}"],
        check=True,
        capture_output=True,
    )
    assert not (root / "profiles" / "default" / "python" / "plugins" / "earth_embeddings").exists()
    ini = (root / "profiles" / "default" / "QGIS" / "QGIS3.ini").read_text()
    assert "earth_embeddings" not in ini
    proc = qgis_process(["list"], env)
    assert "embeddings:load" not in proc.stdout
