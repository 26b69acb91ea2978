"""Issue 10: bad input ends in one clear sentence and no damage, through processing.run and
through qgis_process.bin (non-zero exit, the message, no traceback, no output file)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException
from qgis_cli import make_profile, run_algorithm
from rasterio.transform import from_origin

from earth_embeddings.scripts.sample import CLASSES, class_interior_points


def geojson(path: Path, features) -> str:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return str(path)


def point(lon, lat, name):
    return {"type": "Feature", "properties": {"name": name}, "geometry": {"type": "Point", "coordinates": [lon, lat]}}


@pytest.fixture(scope="module")
def bad(sample_dir, truth, tmp_path_factory):
    """Broken inputs of every kind, built once."""
    root = tmp_path_factory.mktemp("bad")
    b = {"dir": root, "index": str(sample_dir / "aef_index.csv")}
    w, s, e, n = truth.notes["bbox_wgs84"]
    b["extent"] = f"{w},{e},{s},{n} [EPSG:4326]"
    b["ocean"] = "10.0,10.02,10.0,10.02 [EPSG:4326]"
    (root / "nocols.csv").write_text("path,year\n2024/16N/a.tiff,2024\n")
    b["nocols"] = str(root / "nocols.csv")
    (root / "garbage.gpkg").write_bytes(b"\x00\x01 this is not a GeoPackage" * 50)
    b["garbage"] = str(root / "garbage.gpkg")
    b["missing"] = str(root / "does-not-exist" / "aef_index.csv")
    # A collection with one tile cut short, and one whose index points outside its folder.
    trunc = root / "truncated"
    shutil.copytree(sample_dir, trunc)
    victim = sorted((trunc / "2024" / "15N").glob("*.tiff"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    b["truncated"], b["victim"] = str(trunc / "aef_index.csv"), victim.name
    escape = root / "escape"
    escape.mkdir()
    rows = (sample_dir / "aef_index.csv").read_text().splitlines()
    header, first = rows[0], rows[1]
    path_col = header.split(",").index("path") - len(header.split(","))
    parts = first.rsplit(",", 2)
    assert path_col == -2
    (escape / "aef_index.csv").write_text(header + "\n" + f"{parts[0]},../../etc/passwd,{parts[2]}" + "\n")
    b["escape"] = str(escape / "aef_index.csv")
    # Rasters that are not embeddings.
    for name, count, dtype, photometric in (("oneband", 1, "float32", None), ("photo", 3, "uint8", "RGB")):
        path = root / f"{name}.tif"
        kw = {"photometric": photometric} if photometric else {}
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=20,
            height=20,
            count=count,
            dtype=dtype,
            crs="EPSG:32616",
            transform=from_origin(262000, 4926000, 10, 10),
            **kw,
        ) as ds:
            ds.write(np.ones((count, 20, 20), dtype=dtype))
        b[name] = str(path)
    # Embedding rasters of two years with different band counts (the years in their names).
    for year, count in ((2017, 8), (2024, 16)):
        path = root / f"emb_{year}.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=20,
            height=20,
            count=count,
            dtype="int8",
            nodata=-128,
            crs="EPSG:32616",
            transform=from_origin(262000, 4926000, 10, 10),
        ) as ds:
            ds.write(np.ones((count, 20, 20), dtype="int8"))
        b[f"emb_{year}"] = str(path)
    # Exemplars: off coverage; on the 2024 no-data hole; zones: empty, without geometry.
    b["ex_off"] = geojson(root / "ex_off.geojson", [point(10.0, 10.0, "in the ocean")])
    h = truth.holes[0]
    lon, lat = truth.lonlat_of_local(h["x"], h["y"])
    b["ex_hole"] = geojson(root / "ex_hole.geojson", [point(float(lon), float(lat), "in the hole")])
    fl, fa = class_interior_points(truth, CLASSES.index("forest"), 2017, 1, seed=3)[0]
    b["ex_ok"] = geojson(root / "ex_ok.geojson", [point(fl, fa, "forest")])
    b["zones_empty"] = geojson(root / "zones_empty.geojson", [])
    b["zones_nogeom"] = geojson(
        root / "zones_nogeom.geojson", [{"type": "Feature", "properties": {"id": 1}, "geometry": None}]
    )
    b["zones_ok"] = str(sample_dir / "zones.geojson")
    # Training places: one class only; a class all on the 2024 hole; no class values; in the ocean.
    forest = class_interior_points(truth, CLASSES.index("forest"), 2024, 3, seed=4)
    water = class_interior_points(truth, CLASSES.index("water"), 2024, 3, seed=5)

    def labelled(pts, value):
        return [{**point(lon, lat, "x"), "properties": {"class": value}} for lon, lat in pts]

    b["train_one"] = geojson(root / "train_one.geojson", labelled(forest, "forest"))
    b["train_ok"] = geojson(root / "train_ok.geojson", labelled(forest, "forest") + labelled(water, "water"))
    lost = [(float(lon), float(lat)), (float(lon) + 1e-4, float(lat))]
    b["train_hole"] = geojson(
        root / "train_hole.geojson", labelled(forest, "forest") + labelled(water, "water") + labelled(lost, "lost")
    )
    b["train_null"] = geojson(root / "train_null.geojson", labelled(forest + water, None))
    b["train_ocean"] = geojson(root / "train_ocean.geojson", labelled([(10.0, 10.0), (10.001, 10.0)], 1))
    # Folders without an index: nothing to read; two band counts; no years (for a change).
    (root / "no_rasters").mkdir()
    (root / "no_rasters" / "notes.txt").write_text("no rasters here")
    b["no_rasters"] = str(root / "no_rasters")
    for folder, name, count in (("mixed", "a", 64), ("mixed", "b", 128), ("undated", "a", 8), ("undated", "b", 8)):
        path = root / folder / "2024" / f"{name}.tif" if folder == "mixed" else root / folder / f"{name}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=20,
            height=20,
            count=count,
            dtype="float32",
            crs="EPSG:32616",
            transform=from_origin(262000, 4926000, 10, 10),
        ) as ds:
            ds.write(np.full((count, 20, 20), 0.1, dtype="float32"))
        b[folder] = str(root / folder)
    (root / "model.npz").write_bytes(b"PK\x03\x04 not really a zip archive" * 10)
    b["model_bad"] = str(root / "model.npz")
    return b


# (case id, algorithm, parameters from `bad` (the output folder added), message that must appear)
CASES = [
    (
        "load-year",
        "embeddings:load",
        lambda b: {"SOURCE": b["index"], "YEAR": 2019, "EXTENT": b["extent"]},
        r"no embeddings for 2019.*2017, 2024",
    ),
    (
        "load-ocean",
        "embeddings:load",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "EXTENT": b["ocean"]},
        r"No embeddings cover this extent",
    ),
    (
        "load-limit",
        "embeddings:load",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "EXTENT": b["extent"], "MAX_PIXELS": 1000},
        r"pixels.*above the limit of 1,000 pixels",
    ),
    (
        "load-missing-index",
        "embeddings:load",
        lambda b: {"SOURCE": b["missing"], "YEAR": 2024, "EXTENT": b["extent"]},
        r"does not exist",
    ),
    (
        "load-garbage-index",
        "embeddings:load",
        lambda b: {"SOURCE": b["garbage"], "YEAR": 2024, "EXTENT": b["extent"]},
        r"not a readable GeoPackage",
    ),
    (
        "load-columns",
        "embeddings:load",
        lambda b: {"SOURCE": b["nocols"], "YEAR": 2024, "EXTENT": b["extent"]},
        r"lacks the column\(s\) crs, wgs84_west",
    ),
    (
        "load-truncated-tile",
        "embeddings:load",
        lambda b: {"SOURCE": b["truncated"], "YEAR": 2024, "EXTENT": b["extent"]},
        "VICTIM",
    ),
    (
        "load-escaping-path",
        "embeddings:load",
        lambda b: {"SOURCE": b["escape"], "YEAR": 2017, "EXTENT": b["extent"]},
        r"outside the collection's folder",
    ),
    (
        "load-folder-without-rasters",
        "embeddings:load",
        lambda b: {"SOURCE": b["no_rasters"], "YEAR": 2024, "EXTENT": b["extent"]},
        r"no collection index .*and no embedding rasters",
    ),
    (
        "load-folder-mixed-bands",
        "embeddings:load",
        lambda b: {"SOURCE": b["mixed"], "YEAR": 2024, "EXTENT": b["extent"]},
        r"2024/a\.tif has 64 bands and 2024/b\.tif has 128",
    ),
    (
        "change-folder-without-years",
        "embeddings:change",
        lambda b: {"SOURCE": b["undated"], "YEAR_A": 2017, "YEAR_B": 2024, "EXTENT": b["extent"]},
        r"carry no year.*2017 and 2024 would read the same embeddings",
    ),
    (
        "change-same-year",
        "embeddings:change",
        lambda b: {"SOURCE": b["index"], "YEAR_A": 2024, "YEAR_B": 2024, "EXTENT": b["extent"]},
        r"2024.*(same|differ)",
    ),
    (
        "change-year",
        "embeddings:change",
        lambda b: {"SOURCE": b["index"], "YEAR_A": 2018, "YEAR_B": 2024, "EXTENT": b["extent"]},
        r"2017, 2024",
    ),
    (
        "change-one-band",
        "embeddings:change",
        lambda b: {"INPUT_A": b["oneband"], "INPUT_B": b["oneband"]},
        r"has 1 band",
    ),
    (
        "change-photo",
        "embeddings:change",
        lambda b: {"INPUT_A": b["photo"], "INPUT_B": b["photo"]},
        r"looks like an image",
    ),
    (
        "trajectory-one-year",
        "embeddings:trajectory",
        lambda b: {"SOURCE": b["index"], "YEARS": "2024", "EXTENT": b["extent"]},
        r"at least two years.*2017, 2024",
    ),
    (
        "trajectory-year",
        "embeddings:trajectory",
        lambda b: {"SOURCE": b["index"], "YEARS": "2017, 2019, 2024", "EXTENT": b["extent"]},
        r"YEARS asks for 2019, but the collection has these years: 2017, 2024",
    ),
    (
        "trajectory-years-unreadable",
        "embeddings:trajectory",
        lambda b: {"SOURCE": b["index"], "YEARS": "2017 to 2024", "EXTENT": b["extent"]},
        r"YEARS '2017 to 2024' cannot be read at 'to'",
    ),
    (
        "trajectory-band-counts",
        "embeddings:trajectory",
        lambda b: {"INPUTS": [b["emb_2017"], b["emb_2024"]]},
        r"emb_2017\.tif has 8 bands and emb_2024\.tif has 16",
    ),
    (
        "similarity-off-coverage",
        "embeddings:similarity",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "EXTENT": b["extent"], "EXEMPLARS": b["ex_off"]},
        r"in the ocean",
    ),
    (
        "similarity-no-data",
        "embeddings:similarity",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "EXTENT": b["extent"], "EXEMPLARS": b["ex_hole"]},
        r"in the hole.*no data|in the hole.*no-data|no.data.*in the hole",
    ),
    (
        "similarity-year",
        "embeddings:similarity",
        lambda b: {"SOURCE": b["index"], "YEAR": 2030, "EXTENT": b["extent"], "EXEMPLARS": b["ex_ok"]},
        r"2017, 2024",
    ),
    (
        "similarity-photo",
        "embeddings:similarity",
        lambda b: {"INPUT": b["photo"], "EXEMPLARS": b["ex_ok"]},
        r"looks like an image",
    ),
    (
        "zonal-empty",
        "embeddings:zonalstats",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "ZONES": b["zones_empty"]},
        r"(no features|empty)",
    ),
    (
        "zonal-no-geometry",
        "embeddings:zonalstats",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "ZONES": b["zones_nogeom"]},
        r"geometr",
    ),
    (
        "zonal-year",
        "embeddings:zonalstats",
        lambda b: {"SOURCE": b["index"], "YEAR": 2016, "ZONES": b["zones_ok"]},
        r"2017, 2024",
    ),
    (
        "classify-one-class",
        "embeddings:classify",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "EXTENT": b["extent"], "TRAINING": b["train_one"]},
        r"of class 'forest'.*at least two classes",
    ),
    (
        "classify-class-on-no-data",
        "embeddings:classify",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "EXTENT": b["extent"], "TRAINING": b["train_hole"]},
        r"class 'lost' fall on no-data",
    ),
    (
        "classify-field-missing",
        "embeddings:classify",
        lambda b: {
            "SOURCE": b["index"],
            "YEAR": 2024,
            "EXTENT": b["extent"],
            "TRAINING": b["train_ok"],
            "CLASS_FIELD": "landcover",
        },
        r"no field 'landcover'",
    ),
    (
        "classify-field-empty",
        "embeddings:classify",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "EXTENT": b["extent"], "TRAINING": b["train_null"]},
        r"field 'class' is empty",
    ),
    (
        "classify-outside-coverage",
        "embeddings:classify",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "EXTENT": b["extent"], "TRAINING": b["train_ocean"]},
        r"None of the training places lies on the coverage",
    ),
    (
        "classify-k-above-labels",
        "embeddings:classify",
        lambda b: {
            "SOURCE": b["index"],
            "YEAR": 2024,
            "EXTENT": b["extent"],
            "TRAINING": b["train_ok"],
            "METHOD": 1,
            "K_NEIGHBORS": 50,
        },
        r"K = 50 neighbours is more than the 6 labelled pixels",
    ),
    (
        "classify-not-a-model",
        "embeddings:classify",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "EXTENT": b["extent"], "MODEL": b["model_bad"]},
        r"not an Earth Embeddings classifier model",
    ),
    (
        "cluster-ocean",
        "embeddings:cluster",
        lambda b: {"SOURCE": b["index"], "YEAR": 2024, "EXTENT": b["ocean"]},
        r"No embeddings cover this extent",
    ),
    (
        "change-dask-scheduler-unreachable",
        "embeddings:change",
        lambda b: {
            "SOURCE": b["index"],
            "YEAR_A": 2017,
            "YEAR_B": 2024,
            "EXTENT": b["extent"],
            "DASK_SCHEDULER": "tcp://127.0.0.1:9",
        },
        r"The Dask scheduler at tcp://127\.0\.0\.1:9 did not answer within 10 s.*dask scheduler",
    ),
    (
        "similarity-dask-scheduler-unreachable",
        "embeddings:similarity",
        lambda b: {
            "SOURCE": b["index"],
            "YEAR": 2024,
            "EXTENT": b["extent"],
            "EXEMPLARS": b["ex_ok"],
            "DASK_SCHEDULER": "tcp://127.0.0.1:9",
        },
        r"The Dask scheduler at tcp://127\.0\.0\.1:9 did not answer within 10 s",
    ),
    (
        "zonal-one-band",
        "embeddings:zonalstats",
        lambda b: {"INPUT": b["oneband"], "ZONES": b["zones_ok"]},
        r"has 1 band",
    ),
]

OUTPUTS = {
    "embeddings:load": {"OUTPUT": "out.tif"},
    "embeddings:change": {"OUTPUT": "change.tif", "OUTPUT_POLYGONS": "areas.gpkg", "OUTPUT_REPORT": "report.html"},
    "embeddings:trajectory": {
        "OUTPUT": "change.tif",
        "OUTPUT_YEAR": "year.tif",
        "OUTPUT_ANOMALY": "anomaly.tif",
        "OUTPUT_TABLE": "per_year.gpkg",
        "OUTPUT_REPORT": "report.html",
    },
    "embeddings:similarity": {"OUTPUT": "sim.tif", "TOP_K": 5, "OUTPUT_TOP_K": "top.gpkg"},
    "embeddings:zonalstats": {"OUTPUT": "stats.gpkg"},
    "embeddings:classify": {
        "OUTPUT": "classes.tif",
        "OUTPUT_CONFIDENCE": "confidence.tif",
        "OUTPUT_MODEL": "model.npz",
        "OUTPUT_REPORT": "accuracy.html",
    },
    "embeddings:cluster": {"OUTPUT": "clusters.tif"},
}


def params_for(bad, alg, make, out_dir: Path) -> dict:
    params = make(bad)
    for key, value in OUTPUTS[alg].items():
        params[key] = str(out_dir / value) if isinstance(value, str) else value
    return params


def expected(bad, pattern: str) -> str:
    return bad["victim"].replace(".", r"\.") if pattern == "VICTIM" else pattern


@pytest.mark.parametrize("case, alg, make, pattern", CASES, ids=[c[0] for c in CASES])
def test_processing_run(case, alg, make, pattern, bad, run_alg, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(QgsProcessingException) as err:
        run_alg(alg, params_for(bad, alg, make, out_dir))
    import re

    message = str(err.value)
    assert re.search(expected(bad, pattern), message, re.S), message
    assert "Traceback" not in message and len(message) < 600
    assert list(out_dir.iterdir()) == [], "an output was left behind"


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    return make_profile(tmp_path_factory.mktemp("qgis-profile-bad"))


@pytest.mark.parametrize("case, alg, make, pattern", CASES, ids=[c[0] for c in CASES])
def test_qgis_process(case, alg, make, pattern, bad, cli_env, tmp_path):
    import re

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = run_algorithm(alg, params_for(bad, alg, make, out_dir), cli_env, json_output=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(expected(bad, pattern), text, re.S), text[-1500:]
    assert "Traceback" not in text
    assert list(out_dir.iterdir()) == [], "an output was left behind"


FOREST = (
    "classify-forest-without-scikit-learn",
    "embeddings:classify",
    lambda b: {"SOURCE": b["index"], "YEAR": 2024, "EXTENT": b["extent"], "TRAINING": b["train_ok"], "METHOD": 3},
    r"random forest needs scikit-learn.*--no-deps.*scikit-learn==",
)


def test_forest_without_scikit_learn_processing_run(bad, run_alg, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)  # what importing a missing package gives
    test_processing_run(*FOREST, bad, run_alg, tmp_path)


def test_forest_without_scikit_learn_qgis_process(bad, cli_env, tmp_path):
    """QGIS's Python starts with a sitecustomize that makes scikit-learn unimportable."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['sklearn'] = None\n")
    env = dict(cli_env, PYTHONPATH=str(site))
    test_qgis_process(*FOREST, bad, env, tmp_path)
