"""embeddings:similarity through processing.run, with layers as QGIS users give them."""

import json

import numpy as np
import pytest
import rasterio
from ee_helpers import Recorder, extent_param
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)

from earth_embeddings.core.grid import transformer
from earth_embeddings.core.similarity import NODATA_SCORE
from earth_embeddings.scripts.sample import CLASSES, class_interior_points

YEAR = 2017


def point_layer(pts, crs="EPSG:4326", names=None):
    """A memory point layer, as the click-to-search tool will build it."""
    layer = QgsVectorLayer(f"Point?crs={crs}&field=name:string", "exemplars", "memory")
    feats = []
    for i, (x, y) in enumerate(pts):
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        f["name"] = names[i] if names else None
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    return layer


def write_geojson(path, pts, names=None):
    features = [
        {
            "type": "Feature",
            "properties": {"name": names[i] if names else f"p{i}"},
            "geometry": {"type": "Point", "coordinates": [x, y]},
        }
        for i, (x, y) in enumerate(pts)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return str(path)


def base_params(sample_index, truth, exemplars, out, **kw):
    params = {
        "SOURCE": sample_index,
        "YEAR": YEAR,
        "EXTENT": extent_param(truth.notes["bbox_wgs84"]),
        "EXEMPLARS": exemplars,
        "OUTPUT": str(out),
    }
    params.update(kw)
    return params


def test_similarity_writes_heatmap_and_top_places(run_alg, sample_index, truth, tmp_path):
    forest = CLASSES.index("forest")
    pts = class_interior_points(truth, forest, YEAR, 3)
    out = tmp_path / "sim.tif"
    top = tmp_path / "top.gpkg"
    fb = Recorder()
    res = run_alg(
        "embeddings:similarity",
        base_params(sample_index, truth, point_layer(pts), out, TOP_K=5, OUTPUT_TOP_K=str(top)),
        feedback=fb,
    )
    assert res["OUTPUT"] == str(out) and res["OUTPUT_AREAS"] is None
    with rasterio.open(out) as ds:
        s = ds.read(1)
        crs = ds.crs.to_string()
        assert ds.dtypes[0] == "float32" and ds.nodata == NODATA_SCORE
    valid = s != NODATA_SCORE
    assert res["VALID_PIXELS"] == valid.sum() and res["SCORE_MAX"] == pytest.approx(float(s[valid].max()))
    assert res["SCORE_LOW"] == pytest.approx(float(np.percentile(s[valid], 2)), abs=2e-3)
    layer = QgsVectorLayer(res["OUTPUT_TOP_K"], "top", "ogr")
    assert layer.isValid() and layer.featureCount() == 5
    assert layer.crs().authid() == crs
    feats = sorted(layer.getFeatures(), key=lambda f: f["rank"])
    assert [f["rank"] for f in feats] == [1, 2, 3, 4, 5]
    assert all(a["score"] >= b["score"] for a, b in zip(feats, feats[1:]))
    to_ll = transformer(crs, "EPSG:4326")
    for f in feats:
        p = f.geometry().asPoint()
        lon, lat = to_ll.transform(p.x(), p.y())
        assert truth.class_at(lon, lat, YEAR) == forest
        assert (lon, lat) == pytest.approx((f["lon"], f["lat"]), abs=1e-9)
    assert any("found with faiss" in line for line in fb.lines)


def test_threshold_writes_areas_with_area_and_mean(run_alg, sample_index, truth, tmp_path):
    pts = class_interior_points(truth, CLASSES.index("water"), YEAR, 2)
    out = tmp_path / "sim.tif"
    res = run_alg(
        "embeddings:similarity",
        base_params(
            sample_index, truth, point_layer(pts), out, TOP_K=0, THRESHOLD=0.85, OUTPUT_AREAS=str(tmp_path / "a.gpkg")
        ),
    )
    assert res["OUTPUT_TOP_K"] is None
    areas = QgsVectorLayer(res["OUTPUT_AREAS"], "areas", "ogr")
    assert areas.isValid() and areas.featureCount() > 0
    with rasterio.open(out) as ds:
        s = ds.read(1)
    total = sum(f["pixels"] for f in areas.getFeatures())
    assert total == ((s != NODATA_SCORE) & (s > 0.85)).sum()
    for f in areas.getFeatures():
        assert f["mean_score"] > 0.85 and f["area_m2"] == pytest.approx(f["pixels"] * 100.0)
        assert f.geometry().area() == pytest.approx(f["area_m2"])


def test_polygon_exemplars_and_negatives_layers(run_alg, sample_index, truth, tmp_path):
    # Polygons around cropland points; negatives on cropland_b: cropland_b must score below 0.
    crop = class_interior_points(truth, CLASSES.index("cropland"), YEAR, 2, margin_m=80)
    crop_b = class_interior_points(truth, CLASSES.index("cropland_b"), YEAR, 2, margin_m=10, seed=3)
    polys = QgsVectorLayer("Polygon?crs=EPSG:4326&field=name:string", "fields", "memory")
    feats = []
    for lon, lat in crop:
        f = QgsFeature(polys.fields())
        d = 0.0004  # about 30 m: inside the 80 m margin
        f.setGeometry(
            QgsGeometry.fromWkt(
                f"POLYGON(({lon - d} {lat - d},{lon + d} {lat - d},{lon} {lat + d},{lon - d} {lat - d}))"
            )
        )
        feats.append(f)
    polys.dataProvider().addFeatures(feats)
    out = tmp_path / "neg.tif"
    res = run_alg("embeddings:similarity", base_params(sample_index, truth, polys, out, NEGATIVES=point_layer(crop_b)))
    # TOP_K defaults to 10; without OUTPUT_TOP_K the places come back as a temporary layer.
    top = res["OUTPUT_TOP_K"]
    assert isinstance(top, QgsVectorLayer) and top.featureCount() == 10
    with rasterio.open(out) as ds:
        s = ds.read(1)
        t = ds.transform
        crs = ds.crs.to_string()
    rows, cols = np.indices(s.shape)
    lon, lat = transformer(crs, "EPSG:4326").transform(t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e)
    cls = truth.class_at(np.asarray(lon), np.asarray(lat), YEAR)
    valid = s != NODATA_SCORE
    assert np.median(s[valid & (cls == CLASSES.index("cropland_b"))]) < 0
    assert np.median(s[valid & (cls == CLASSES.index("cropland"))]) > 0.1


def test_loaded_heatmap_is_stretched_from_p2_to_the_maximum(plugin_processing, sample_index, truth, tmp_path):
    import processing

    pts = class_interior_points(truth, CLASSES.index("urban"), YEAR, 3)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    params = base_params(
        sample_index,
        truth,
        point_layer(pts),
        tmp_path / "styled.tif",
        TOP_K=3,
        THRESHOLD=0.9,
        OUTPUT_TOP_K="TEMPORARY_OUTPUT",
        OUTPUT_AREAS="TEMPORARY_OUTPUT",
    )
    before = set(QgsProject.instance().mapLayers())
    res = processing.runAndLoadResults(
        "embeddings:similarity", params, context=context, feedback=QgsProcessingFeedback()
    )
    added = [QgsProject.instance().mapLayer(i) for i in set(QgsProject.instance().mapLayers()) - before]
    rasters = [lyr for lyr in added if isinstance(lyr, QgsRasterLayer)]
    assert len(rasters) == 1 and len(added) == 3
    r = rasters[0].renderer()
    assert isinstance(r, QgsSingleBandPseudoColorRenderer)
    assert r.classificationMin() == pytest.approx(res["SCORE_LOW"]) and r.classificationMax() == pytest.approx(
        res["SCORE_MAX"]
    )
    items = r.shader().rasterShaderFunction().colorRampItemList()
    assert items[0].value == pytest.approx(res["SCORE_LOW"]) and items[-1].value == pytest.approx(res["SCORE_MAX"])
    assert items[0].color.lightness() < items[-1].color.lightness()  # magma: dark to bright
    points = next(lyr for lyr in added if isinstance(lyr, QgsVectorLayer) and lyr.geometryType() == 0)
    assert points.labelsEnabled() and points.labeling().settings().fieldName == "rank"
    for lyr in added:
        QgsProject.instance().removeMapLayer(lyr.id())


def test_exemplar_off_coverage_is_named_and_nothing_is_written(run_alg, sample_index, truth, tmp_path):
    w, s, e, n = truth.notes["bbox_wgs84"]
    good = class_interior_points(truth, CLASSES.index("forest"), YEAR, 1)[0]
    layer = point_layer([good, (e + 1.0, n)], names=["ok", "lake shore"])
    out = tmp_path / "x.tif"
    with pytest.raises(
        QgsProcessingException, match=r"^The exemplar feature 2 \('lake shore'\) lies outside the coverage"
    ):
        run_alg("embeddings:similarity", base_params(sample_index, truth, layer, out))
    assert not list(tmp_path.iterdir())


def test_embedding_raster_input_and_geojson_exemplars(run_alg, wisconsin_raster, tmp_path):
    with rasterio.open(wisconsin_raster) as ds:
        t = ds.transform
        crs = ds.crs.to_string()
    x, y = t * (40.5, 30.5)
    lon, lat = transformer(crs, "EPSG:4326").transform(x, y)
    ex = write_geojson(tmp_path / "ex.geojson", [(lon, lat)])
    out = tmp_path / "wi.tif"
    res = run_alg("embeddings:similarity", {"INPUT": wisconsin_raster, "EXEMPLARS": ex, "TOP_K": 1, "OUTPUT": str(out)})
    with rasterio.open(out) as ds:
        s = ds.read(1)
        assert ds.transform == t
    assert s[30, 40] == pytest.approx(1.0, abs=1e-5) and res["SCORE_MAX"] == pytest.approx(s.max())


def test_without_extent_or_input_the_message_says_what_to_do(run_alg, sample_index, truth, tmp_path):
    pts = class_interior_points(truth, CLASSES.index("forest"), YEAR, 1)
    with pytest.raises(QgsProcessingException, match="Choose an extent"):
        run_alg(
            "embeddings:similarity",
            {"SOURCE": sample_index, "YEAR": YEAR, "EXEMPLARS": point_layer(pts), "OUTPUT": str(tmp_path / "x.tif")},
        )


def test_every_parameter_has_help_and_the_help_has_an_example(plugin_processing):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("embeddings:similarity")
    names = {p.name() for p in alg.parameterDefinitions()}
    expected = {"SOURCE", "YEAR", "EXTENT", "TARGET_CRS", "RESOLUTION", "INPUT", "EXEMPLARS", "NEGATIVES"}
    expected |= {"AGGREGATE", "OUTPUT", "TOP_K", "OUTPUT_TOP_K", "MIN_SEPARATION_M", "THRESHOLD", "OUTPUT_AREAS"}
    assert expected <= names
    assert all(p.help() for p in alg.parameterDefinitions())
    assert {o.name() for o in alg.outputDefinitions()} >= {"OUTPUT", "OUTPUT_TOP_K", "OUTPUT_AREAS", "SCORE_MAX"}
    text = alg.shortHelpString()
    assert "qgis_process run embeddings:similarity" in text and "cos(x, positives) - cos(x, negatives)" in text


def test_cancel_leaves_no_output(run_alg, sample_index, truth, tmp_path):
    class CancelSoon(QgsProcessingFeedback):
        def setProgress(self, p):  # noqa: N802
            super().setProgress(p)
            if p > 20:
                self.cancel()

    pts = class_interior_points(truth, CLASSES.index("forest"), YEAR, 2)
    params = base_params(sample_index, truth, point_layer(pts), tmp_path / "x.tif", TARGET_CRS="EPSG:3857")
    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        run_alg("embeddings:similarity", params, feedback=CancelSoon())
    assert not list(tmp_path.iterdir())


def test_an_empty_exemplar_layer_says_it_has_no_features(run_alg, sample_index, truth, tmp_path):
    empty = QgsVectorLayer("Point", "clicked places", "memory")
    empty.setCrs(QgsCoordinateReferenceSystem())  # no features and no CRS
    assert empty.isValid() and not empty.crs().isValid()
    out = tmp_path / "x.tif"
    with pytest.raises(QgsProcessingException, match="^The exemplar layer has no features"):
        run_alg("embeddings:similarity", base_params(sample_index, truth, empty, out))
