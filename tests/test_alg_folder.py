"""Issue 16 through processing.run: a folder of embedding GeoTIFFs as SOURCE."""

from __future__ import annotations

import json

import numpy as np
import rasterio
from ee_helpers import Recorder, extent_param
from folders import float_folder, geographic_export

from earth_embeddings.scripts.sample import CLASSES, class_interior_points


def test_change_and_similarity_from_folders(run_alg, sample_index, sample_dir, truth, tmp_path):
    tessera = float_folder(sample_dir, tmp_path / "tessera")
    common = {"EXTENT": extent_param(truth.notes["bbox_wgs84"]), "TARGET_CRS": "EPSG:32616", "RESOLUTION": 10}
    maps = {}
    for name, source in (("index", sample_index), ("folder", str(tessera))):
        fb = Recorder()
        res = run_alg(
            "embeddings:change",
            {"SOURCE": source, "YEAR_A": 2017, "YEAR_B": 2024, "OUTPUT": str(tmp_path / f"{name}.tif"), **common},
            feedback=fb,
        )
        with rasterio.open(res["OUTPUT"]) as ds:
            maps[name] = ds.read(1)
        if name == "folder":
            assert "128 bands (float32 values), years 2017, 2024" in "\n".join(fb.lines)
            assert res["VALID_PIXELS"] == int((maps[name] != -9999).sum())
    valid = maps["index"] != -9999
    assert np.array_equal(valid, maps["folder"] != -9999)
    assert np.abs(maps["index"][valid] - maps["folder"][valid]).max() < 1e-4

    ee = tmp_path / "ee"
    geographic_export(truth, ee, 2024)
    forest = CLASSES.index("forest")
    w, s, e, n = truth.notes["bbox_wgs84"]
    inner = (w + 0.3 * (e - w), s + 0.3 * (n - s), w + 0.7 * (e - w), s + 0.7 * (n - s))  # inside the export
    points = class_interior_points(truth, forest, 2024, 2, seed=21, rng_bounds=inner)
    exemplars = tmp_path / "forest.geojson"
    exemplars.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": list(p)}}
                    for p in points
                ],
            }
        )
    )
    res = run_alg(
        "embeddings:similarity",
        {
            "SOURCE": str(ee),
            "YEAR": 2024,
            "EXTENT": extent_param(inner),
            "EXEMPLARS": str(exemplars),
            "TOP_K": 5,
            "OUTPUT": str(tmp_path / "sim.tif"),
            "OUTPUT_TOP_K": str(tmp_path / "top.gpkg"),
        },
    )
    from qgis.core import QgsVectorLayer

    top = QgsVectorLayer(res["OUTPUT_TOP_K"], "top", "ogr")
    lonlat = np.array([(f["lon"], f["lat"]) for f in top.getFeatures()])
    assert len(lonlat) == 5
    assert (truth.class_at(lonlat[:, 0], lonlat[:, 1], 2024) == forest).all()
