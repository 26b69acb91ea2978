"""embeddings:classify and embeddings:cluster through processing.run, against the planted land cover."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from ee_helpers import Recorder, class_points, extent_param, write_places
from planted import draw, nuisance_directions, prototypes
from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer, QgsVectorLayer
from rasterio.transform import from_origin

from earth_embeddings.core.deps import importable
from earth_embeddings.core.grid import transformer
from earth_embeddings.scripts.sample import CLASSES

YEAR = 2017
METHODS = ("logistic", "knn", "centroid", "forest")


def truth_of_raster(path, truth, year, nodata):
    """(map values, planted class index) at every pixel with a class."""
    with rasterio.open(path) as ds:
        a = ds.read(1)
        t = ds.transform
        crs = ds.crs.to_string()
    rows, cols = np.nonzero(a != nodata)
    lon, lat = transformer(crs, "EPSG:4326").transform(t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e)
    return a[rows, cols], truth.class_at(lon, lat, year)


def values_at(path, lonlat):
    with rasterio.open(path) as ds:
        xs, ys = transformer("EPSG:4326", ds.crs.to_string()).transform(*np.asarray(lonlat).T)
        return np.array([v[0] for v in ds.sample(list(zip(xs, ys)))])


def text_code(name):
    """Text classes are coded 1..N in sorted order."""
    return sorted(CLASSES).index(name) + 1


@pytest.fixture(scope="module")
def training(truth, tmp_path_factory):
    folder = tmp_path_factory.mktemp("training")
    return {
        "text": write_places(folder / "text.geojson", class_points(truth, YEAR, 4, seed=10)),
        # Integer classes as GeoJSON stores them (reals), with a class 0.
        "codes": write_places(
            folder / "codes.geojson", [(p, float(c * 3)) for p, c in class_points(truth, YEAR, 4, seed=10, names=False)]
        ),
        "validation": write_places(folder / "validation.geojson", class_points(truth, YEAR, 6, seed=50)),
    }


def params(sample_index, truth, out: Path, **kw):
    p = {"SOURCE": sample_index, "YEAR": YEAR, "EXTENT": extent_param(truth.notes["bbox_wgs84"]), "OUTPUT": str(out)}
    p.update(kw)
    return p


def test_four_points_per_class_map_the_planted_land_cover(run_alg, sample_index, truth, training, tmp_path):
    out = tmp_path / "classes.tif"
    fb = Recorder()
    res = run_alg(
        "embeddings:classify",
        params(
            sample_index,
            truth,
            out,
            TRAINING=training["text"],
            CLASS_FIELD="class",
            OUTPUT_CONFIDENCE=str(tmp_path / "confidence.tif"),
            OUTPUT_REPORT=str(tmp_path / "accuracy.csv"),
        ),
        feedback=fb,
    )
    values, planted = truth_of_raster(out, truth, YEAR, 255)
    expected = np.array([text_code(CLASSES[c]) for c in planted])
    assert (values == expected).mean() >= 0.95
    assert res["OVERALL_ACCURACY"] >= 0.95 and res["KAPPA"] >= 0.9 and res["CLASSES"] == 6
    per_class = json.loads(res["CLASS_ACCURACY"])
    assert set(per_class) == set(CLASSES) and all(v["recall"] >= 0.75 for v in per_class.values())
    assert any("4-fold cross-validation grouped by place" in line for line in fb.lines)
    assert any("recall" in line and "precision" in line for line in fb.lines)  # the confusion matrix
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255
    with rasterio.open(tmp_path / "confidence.tif") as ds:
        conf = ds.read(1)
        assert ds.dtypes[0] == "float32" and ds.nodata == -9999
        ok = conf != -9999
        assert ok.sum() == values.size and (conf[ok] > 0).all() and (conf[ok] <= 1).all()
    report = (tmp_path / "accuracy.csv").read_text()
    assert "overall_accuracy" in report and "cropland_b" in report
    # The names stay with the file: reopening it shows them.
    layer = QgsRasterLayer(str(out), "again", "gdal")
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert {c.label for c in renderer.classes()} == set(CLASSES)
    assert {c.value for c in renderer.classes()} == set(range(1, 7))
    assert len({c.color.name() for c in renderer.classes()}) == 6


@pytest.mark.parametrize("method", range(len(METHODS)), ids=METHODS)
def test_every_method_runs(method, run_alg, sample_index, truth, training, tmp_path):
    if METHODS[method] == "forest" and not importable("sklearn"):
        pytest.skip("scikit-learn is not installed")
    out = tmp_path / "classes.tif"
    res = run_alg(
        "embeddings:classify",
        params(sample_index, truth, out, TRAINING=training["text"], CLASS_FIELD="class", METHOD=method, K_NEIGHBORS=3),
    )
    values, planted = truth_of_raster(out, truth, YEAR, 255)
    assert (values == np.array([text_code(CLASSES[c]) for c in planted])).mean() >= 0.95
    assert res["OVERALL_ACCURACY"] >= 0.9


def test_integer_classes_keep_their_values(run_alg, sample_index, truth, training, tmp_path):
    out = tmp_path / "codes.tif"
    run_alg("embeddings:classify", params(sample_index, truth, out, TRAINING=training["codes"], CLASS_FIELD="class"))
    values, planted = truth_of_raster(out, truth, YEAR, 255)
    assert (values == planted * 3).mean() >= 0.95  # class 0 is 0, class 15 is 15
    assert set(np.unique(values)) == {0, 3, 6, 9, 12, 15}


def test_codes_beyond_a_byte_give_int16(run_alg, sample_index, truth, tmp_path):
    places = [(p, 1000 + c) for p, c in class_points(truth, YEAR, 3, seed=10, names=False)]
    out = tmp_path / "big.tif"
    run_alg(
        "embeddings:classify",
        params(sample_index, truth, out, TRAINING=write_places(tmp_path / "big.geojson", places), CLASS_FIELD="class"),
    )
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "int16" and ds.nodata == -32768
        assert set(np.unique(ds.read(1))) <= {-32768} | set(range(1000, 1006))


def test_reported_accuracy_is_that_of_the_map_at_the_validation_places(
    run_alg, sample_index, truth, training, tmp_path
):
    out = tmp_path / "classes.tif"
    res = run_alg(
        "embeddings:classify",
        params(
            sample_index,
            truth,
            out,
            TRAINING=training["text"],
            VALIDATION=training["validation"],
            CLASS_FIELD="class",
            METHOD=1,
            K_NEIGHBORS=1,
        ),
    )
    places = json.loads(Path(training["validation"]).read_text())["features"]
    lonlat = [f["geometry"]["coordinates"] for f in places]
    reference = np.array([text_code(f["properties"]["class"]) for f in places])
    assert res["OVERALL_ACCURACY"] == pytest.approx((values_at(out, lonlat) == reference).mean())


def test_polygons_are_capped_and_grouped(run_alg, sample_index, truth, tmp_path):
    """Squares around interior points: each gives up to CAP_PER_FEATURE pixels, and the
    cross-validation keeps a square's pixels in one fold."""
    places = []
    for (lon, lat), name in class_points(truth, YEAR, 3, seed=20):
        d = 0.0004  # about 30 x 45 m: a handful of pixels
        ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]
        places.append(({"type": "Polygon", "coordinates": [ring]}, name))
    fb = Recorder()
    res = run_alg(
        "embeddings:classify",
        params(
            sample_index,
            truth,
            tmp_path / "classes.tif",
            TRAINING=write_places(tmp_path / "squares.geojson", places),
            CLASS_FIELD="class",
            CAP_PER_FEATURE=4,
        ),
        feedback=fb,
    )
    assert res["OVERALL_ACCURACY"] >= 0.95
    assert any("3-fold cross-validation grouped by place, 72 labelled pixels" in line for line in fb.lines)
    assert any("hold more than 4 pixels" in line for line in fb.lines)


def test_a_saved_model_classifies_another_year_alike_where_nothing_changed(
    run_alg, sample_index, truth, training, tmp_path
):
    model = tmp_path / "model.npz"
    first = tmp_path / "2017.tif"
    res = run_alg(
        "embeddings:classify",
        params(sample_index, truth, first, TRAINING=training["text"], CLASS_FIELD="class", OUTPUT_MODEL=str(model)),
    )
    assert res["OUTPUT_MODEL"] == str(model) and model.exists()
    second = tmp_path / "2024.tif"
    res = run_alg("embeddings:classify", params(sample_index, truth, second, YEAR=2024, MODEL=str(model)))
    assert res["OVERALL_ACCURACY"] is None  # nothing to measure it on
    with rasterio.open(first) as a, rasterio.open(second) as b:
        assert a.transform == b.transform
        va, vb = a.read(1), b.read(1)
        t, crs = a.transform, a.crs.to_string()
    rows, cols = np.nonzero((va != 255) & (vb != 255))
    lon, lat = transformer(crs, "EPSG:4326").transform(t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e)
    same = ~truth.change_at(lon, lat)
    assert (va[rows, cols][same] == vb[rows, cols][same]).mean() >= 0.99
    changed = ~same
    assert changed.sum() > 100 and (va[rows, cols][changed] != vb[rows, cols][changed]).mean() >= 0.9


def overlapping_raster(folder: Path, seed: int = 0):
    """An embedding raster (float32, 64 bands) of two classes planted to overlap: prototypes at
    cosine 0.8 plus strong shared variation that tells no class apart (tests/planted.py), left
    half class 1, right half class 2; and 20 training points per class at random pixels."""
    rng = np.random.default_rng(seed)
    protos = prototypes(6, rng, overlap=0.8)
    kw = dict(noise=1.0, feature_noise=0.0, nuisance=nuisance_directions(protos, 4, rng), nuisance_sd=0.4)
    h, w = 80, 120
    X, y, _ = draw(protos, h * w // 2, 1, rng, classes=[4, 5], codes=np.array([0, 0, 0, 0, 1, 2]), **kw)
    img = np.empty((64, h, w), np.float32)
    img[:, :, : w // 2] = X[y == 1].T.reshape(64, h, w // 2)
    img[:, :, w // 2 :] = X[y == 2].T.reshape(64, h, w // 2)
    transform = from_origin(500000.0, 5000000.0, 10.0, 10.0)
    path = folder / "overlap.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=w, height=h, count=64, dtype="float32", crs="EPSG:32616", transform=transform
    ) as ds:
        ds.write(img)
    places = []
    for cls, (c0, c1) in ((1, (0, w // 2)), (2, (w // 2, w))):
        for _ in range(20):
            r, c = rng.integers(0, h), rng.integers(c0, c1)
            x, yy = transform * (c + 0.5, r + 0.5)
            places.append(({"type": "Point", "coordinates": [x, yy]}, cls))
    truth = np.where(np.arange(w) < w // 2, 1, 2)[None, :].repeat(h, axis=0)
    return str(path), places, truth


def test_logistic_regression_beats_nearest_neighbours_on_overlapping_classes(run_alg, tmp_path):
    raster, places, truth = overlapping_raster(tmp_path)
    features = [{"type": "Feature", "properties": {"class": v}, "geometry": g} for g, v in places]
    labels = tmp_path / "labels.geojson"
    labels.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32616"}},
                "features": features,
            }
        )
    )
    assert QgsVectorLayer(str(labels), "l", "ogr").crs().authid() == "EPSG:32616"
    accuracy = {}
    for method in (0, 1):
        out = tmp_path / f"m{method}.tif"
        run_alg(
            "embeddings:classify",
            {"INPUT": raster, "TRAINING": str(labels), "CLASS_FIELD": "class", "METHOD": method, "OUTPUT": str(out)},
        )
        with rasterio.open(out) as ds:
            accuracy[method] = (ds.read(1) == truth).mean()
    assert accuracy[0] > accuracy[1] + 0.03, accuracy


def test_more_clusters_than_classes_each_hold_one_class(run_alg, sample_index, truth, tmp_path):
    out = tmp_path / "clusters.tif"
    table = tmp_path / "centroids.csv"
    res = run_alg(
        "embeddings:cluster",
        params(sample_index, truth, out, CLUSTERS=10, SAMPLE_SIZE=20000, OUTPUT_CENTROIDS=str(table)),
    )
    assert res["CLUSTERS_USED"] == 10
    values, planted = truth_of_raster(out, truth, YEAR, 0)
    sizes = []
    for k in range(1, 11):
        held = planted[values == k]
        sizes.append(held.size)
        assert np.bincount(held).max() / held.size >= 0.98, k
    # 1 = the largest in the map, then by size.
    with rasterio.open(out) as ds:
        ids = ds.read(1)
    in_map = np.bincount(ids[ids != 0], minlength=11)[1:]
    assert list(in_map) == sorted(in_map, reverse=True) and in_map.min() > 0
    assert res["VALID_PIXELS"] == values.size
    layer = QgsVectorLayer(str(table), "centroids", "ogr")
    rows = sorted(layer.getFeatures(), key=lambda f: int(f["cluster"]))
    assert [int(f["cluster"]) for f in rows] == list(range(1, 11))
    assert [int(f["pixels"]) for f in rows] == sizes
    vec = np.array([[float(f[f"A{b:02d}"]) for b in range(64)] for f in rows])
    assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-4)
    layer = QgsRasterLayer(str(out), "again", "gdal")
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer) and len(renderer.classes()) == 10


def test_cluster_chooses_k_by_the_silhouette(run_alg, sample_index, truth, tmp_path):
    fb = Recorder()
    res = run_alg(
        "embeddings:cluster",
        params(sample_index, truth, tmp_path / "k.tif", CLUSTERS=0, SAMPLE_SIZE=5000),
        feedback=fb,
    )
    # Six planted classes, two of them confusable (cosine 0.8): 5 or 6 groups.
    assert res["CLUSTERS_USED"] in (5, 6)
    assert any("silhouette" in line for line in fb.lines)


class CancelAt(Recorder):
    """Cancels once progress passes ``percent`` (while the map is being written)."""

    def __init__(self, percent):
        super().__init__()
        self.percent = percent

    def setProgress(self, progress):  # noqa: N802
        super().setProgress(progress)
        if progress > self.percent:
            self.cancel()


@pytest.mark.parametrize("alg", ["embeddings:classify", "embeddings:cluster"])
def test_cancel_leaves_no_output(alg, run_alg, sample_index, truth, training, tmp_path):
    from qgis.core import QgsProcessingException

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    extra = {"TRAINING": training["text"], "OUTPUT_CONFIDENCE": str(out_dir / "c.tif")}
    p = params(sample_index, truth, out_dir / "map.tif", **(extra if "classify" in alg else {}))
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run_alg(alg, p, feedback=CancelAt(60))
    assert list(out_dir.iterdir()) == []
