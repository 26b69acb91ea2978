"""embeddings:zonalstats through processing.run."""

import numpy as np
import pytest
import rasterio
from core_calls import load as load_embeddings
from ee_helpers import Recorder
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsVectorLayer,
)
from zonal_check import expected_stats, sample_zones, to_crs

from earth_embeddings.core.grid import centre_utm

BANDS = [f"A{i:02d}" for i in range(64)]


def is_null(value):
    return value is None or (hasattr(value, "isNull") and value.isNull())


def read_layer(path):
    layer = QgsVectorLayer(str(path), "out", "ogr")
    assert layer.isValid()
    return layer, list(layer.getFeatures())


def polygon_layer(wkts, crs="EPSG:4326", name="zones"):
    layer = QgsVectorLayer(f"Polygon?crs={crs}&field=zone_id:integer", name, "memory")
    feats = []
    for i, wkt in enumerate(wkts):
        f = QgsFeature(layer.fields())
        f.setAttributes([i + 1])
        if wkt is not None:
            f.setGeometry(QgsGeometry.fromWkt(wkt))
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    return layer


@pytest.fixture(scope="module")
def sample_2024(sample_dir, sample_index, tmp_path_factory):
    feats, bbox = sample_zones(sample_dir)
    crs = centre_utm(bbox, "EPSG:4326")
    raster = str(tmp_path_factory.mktemp("zonal-alg") / "emb_2024.tif")
    load_embeddings(sample_index, 2024, bbox, "EPSG:4326", raster, target_crs=crs)
    return {"feats": feats, "crs": crs, "raster": raster}


def test_statistics_per_polygon_match_the_independent_computation(
    run_alg, sample_dir, sample_index, sample_2024, tmp_path
):
    out = tmp_path / "stats.gpkg"
    fb = Recorder()
    res = run_alg(
        "embeddings:zonalstats",
        {
            "SOURCE": sample_index,
            "YEAR": 2024,
            "ZONES": str(sample_dir / "zones.geojson"),
            "PCA_COMPONENTS": 3,
            "OUTPUT": str(out),
        },
        feedback=fb,
    )
    layer, feats = read_layer(res["OUTPUT"])
    names = [f.name() for f in layer.fields()]
    expected_names = [f"{b}_mean" for b in BANDS] + [f"{b}_std" for b in BANDS] + ["pixel_count", "pc1", "pc2", "pc3"]
    assert names[-len(expected_names) :] == expected_names
    assert "zone_id" in names and "name" in names
    assert layer.crs().authid() == "EPSG:4326" and len(feats) == len(sample_2024["feats"])
    by_id = {f["zone_id"]: f for f in feats}
    for src in sample_2024["feats"]:
        f = by_id[src["properties"]["zone_id"]]
        assert f["name"] == src["properties"]["name"]
        # The geometry is the input's (in its own CRS).
        assert f.geometry().boundingBox().xMinimum() == pytest.approx(src["geometry"]["coordinates"][0][0][0])
        count, mean, std = expected_stats(sample_2024["raster"], to_crs(src["geometry"], sample_2024["crs"]))
        assert f["pixel_count"] == count
        np.testing.assert_allclose([f[f"{b}_mean"] for b in BANDS], mean, atol=1e-4, rtol=0)
        np.testing.assert_allclose([f[f"{b}_std"] for b in BANDS], std, atol=1e-4, rtol=0)
    sub = next(f for f in feats if f["name"] == "smaller than a pixel")
    assert sub["pixel_count"] == 1 and sub["A00_std"] == 0
    # PCA: centred scores, first component the largest.
    pcs = np.array([[f["pc1"], f["pc2"], f["pc3"]] for f in feats], float)
    np.testing.assert_allclose(pcs.mean(axis=0), 0, atol=1e-6)
    assert pcs[:, 0].var() >= pcs[:, 1].var() >= pcs[:, 2].var() > 0
    assert any("pc1 explains" in line for line in fb.lines)


def test_output_is_styled_on_pc1_when_components_are_asked(plugin_processing, sample_dir, sample_index, tmp_path):
    import processing

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    params = {
        "SOURCE": sample_index,
        "YEAR": 2017,
        "ZONES": str(sample_dir / "zones.geojson"),
        "PCA_COMPONENTS": 2,
        "OUTPUT": str(tmp_path / "styled.gpkg"),
    }
    before = set(QgsProject.instance().mapLayers())
    processing.runAndLoadResults("embeddings:zonalstats", params, context=context, feedback=QgsProcessingFeedback())
    added = [QgsProject.instance().mapLayer(i) for i in set(QgsProject.instance().mapLayers()) - before]
    assert len(added) == 1
    layer = added[0]
    renderer = layer.renderer()
    assert renderer.type() == "graduatedSymbol" and renderer.classAttribute() == "pc1"
    ranges = renderer.ranges()
    assert len(ranges) >= 3
    values = [f["pc1"] for f in layer.getFeatures()]
    assert ranges[0].lowerValue() == pytest.approx(min(values)) and ranges[-1].upperValue() == pytest.approx(
        max(values)
    )
    QgsProject.instance().removeMapLayer(layer.id())


def test_without_components_there_are_no_pc_fields(run_alg, sample_dir, sample_index, tmp_path):
    res = run_alg(
        "embeddings:zonalstats",
        {
            "SOURCE": sample_index,
            "YEAR": 2017,
            "ZONES": str(sample_dir / "zones.geojson"),
            "PCA_COMPONENTS": 0,
            "OUTPUT": str(tmp_path / "nopca.gpkg"),
        },
    )
    layer, _ = read_layer(res["OUTPUT"])
    names = [f.name() for f in layer.fields()]
    assert names[-1] == "pixel_count" and not any(n.startswith("pc") for n in names)


def test_invalid_geometries_are_repaired_or_skipped_with_a_count(run_alg, sample_2024, sample_index, tmp_path):
    lon, lat = -89.975, 44.452
    d = 0.003
    square = f"POLYGON(({lon} {lat}, {lon + d} {lat}, {lon + d} {lat + d}, {lon} {lat + d}, {lon} {lat}))"
    bowtie = f"POLYGON(({lon} {lat}, {lon + d} {lat + d}, {lon + d} {lat}, {lon} {lat + d}, {lon} {lat}))"
    flat = f"POLYGON(({lon} {lat}, {lon + d} {lat}, {lon + 2 * d} {lat}, {lon} {lat}))"
    layer = polygon_layer([square, bowtie, flat, None])
    fb = Recorder()
    res = run_alg(
        "embeddings:zonalstats",
        {
            "SOURCE": sample_index,
            "YEAR": 2024,
            "ZONES": layer,
            "PCA_COMPONENTS": 0,
            "OUTPUT": str(tmp_path / "fix.gpkg"),
        },
        feedback=fb,
    )
    _, feats = read_layer(res["OUTPUT"])
    by_id = {f["zone_id"]: f for f in feats}
    assert len(feats) == 4
    n_square = by_id[1]["pixel_count"]
    # The repaired bow-tie is two triangles of half the square: about half its pixels.
    assert 0.4 * n_square < by_id[2]["pixel_count"] < 0.6 * n_square
    for skipped in (3, 4):
        assert is_null(by_id[skipped]["pixel_count"]) and is_null(by_id[skipped]["A00_mean"])
    assert any("1 invalid polygon geometry(ies) were repaired" in w for w in fb.warnings)
    assert any("2 feature(s) without a usable polygon geometry were skipped" in w for w in fb.warnings)


def test_an_empty_zones_layer_is_a_clear_error(run_alg, sample_index, tmp_path):
    out = tmp_path / "empty.gpkg"
    with pytest.raises(QgsProcessingException, match="has no features"):
        run_alg(
            "embeddings:zonalstats",
            {"SOURCE": sample_index, "YEAR": 2024, "ZONES": polygon_layer([]), "OUTPUT": str(out)},
        )
    assert not out.exists()


def test_a_layer_without_a_valid_geometry_is_a_clear_error(run_alg, sample_index, tmp_path):
    out = tmp_path / "none.gpkg"
    flat = "POLYGON((-89.97 44.45, -89.96 44.45, -89.95 44.45, -89.97 44.45))"
    with pytest.raises(QgsProcessingException, match="None of the 3 features .* usable polygon geometry"):
        run_alg(
            "embeddings:zonalstats",
            {
                "SOURCE": sample_index,
                "YEAR": 2024,
                "ZONES": polygon_layer([flat, None, "POLYGON EMPTY"]),
                "OUTPUT": str(out),
            },
        )
    assert not out.exists()


def test_zones_with_no_valid_pixel_get_nulls_and_a_warning(run_alg, sample_index, truth, tmp_path):
    year = max(truth.years)
    hole = next(h for h in truth.holes if h["year"] == year)
    lon, lat = (float(v) for v in truth.lonlat_of_local(hole["x"], hole["y"]))
    d = 0.0003
    in_hole = f"POLYGON(({lon} {lat}, {lon + d} {lat}, {lon + d} {lat + d}, {lon} {lat + d}, {lon} {lat}))"
    fb = Recorder()
    res = run_alg(
        "embeddings:zonalstats",
        {
            "SOURCE": sample_index,
            "YEAR": year,
            "ZONES": polygon_layer([in_hole, in_hole.replace(f"{lat}", f"{lat - 0.01}")]),
            "OUTPUT": str(tmp_path / "hole.gpkg"),
        },
        feedback=fb,
    )
    _, feats = read_layer(res["OUTPUT"])
    by_id = {f["zone_id"]: f for f in feats}
    assert by_id[1]["pixel_count"] == 0 and is_null(by_id[1]["A05_mean"]) and is_null(by_id[1]["pc1"])
    assert by_id[2]["pixel_count"] > 0
    assert any("1 of 2 zone(s) have no valid pixel" in w for w in fb.warnings)


def test_pixel_limit_error_leaves_no_output(run_alg, sample_dir, sample_index, tmp_path):
    out = tmp_path / "limit.gpkg"
    with pytest.raises(QgsProcessingException, match="above the limit of 1,000 pixels"):
        run_alg(
            "embeddings:zonalstats",
            {
                "SOURCE": sample_index,
                "YEAR": 2024,
                "ZONES": str(sample_dir / "zones.geojson"),
                "MAX_PIXELS": 1000,
                "OUTPUT": str(out),
            },
        )
    assert not out.exists()


def test_input_raster_in_another_crs_than_the_zones(run_alg, wisconsin_raster, tmp_path):
    # Zones in WGS84 over the real Wisconsin raster (UTM 16N): the statistics use the raster's
    # own pixels; the output keeps the zones' CRS.
    with rasterio.open(wisconsin_raster) as ds:
        b = ds.bounds
        crs = ds.crs.to_string()
    from earth_embeddings.core.grid import transformer

    to_ll = transformer(crs, "EPSG:4326")
    cx, cy = (b.left + b.right) / 2 + 1.3, (b.bottom + b.top) / 2 + 2.9
    ring_utm = [
        (cx - 310, cy - 220),
        (cx + 270, cy - 330),
        (cx + 390, cy + 260),
        (cx - 150, cy + 400),
        (cx - 310, cy - 220),
    ]
    ring_ll = [to_ll.transform(x, y) for x, y in ring_utm]
    wkt = "POLYGON((" + ", ".join(f"{x!r} {y!r}" for x, y in ring_ll) + "))"
    res = run_alg(
        "embeddings:zonalstats",
        {
            "INPUT": wisconsin_raster,
            "ZONES": polygon_layer([wkt]),
            "PCA_COMPONENTS": 0,
            "OUTPUT": str(tmp_path / "wi.gpkg"),
        },
    )
    layer, feats = read_layer(res["OUTPUT"])
    assert layer.crs().authid() == "EPSG:4326"
    # Independent: the same polygon projected with pyproj (vertex by vertex, as QGIS does).
    to_utm = transformer("EPSG:4326", crs)
    geom = {"type": "Polygon", "coordinates": [[list(to_utm.transform(x, y)) for x, y in ring_ll]]}
    count, mean, std = expected_stats(wisconsin_raster, geom)
    assert feats[0]["pixel_count"] == count > 2000
    np.testing.assert_allclose([feats[0][f"{b}_mean"] for b in BANDS], mean, atol=1e-4, rtol=0)
    np.testing.assert_allclose([feats[0][f"{b}_std"] for b in BANDS], std, atol=1e-4, rtol=0)


def test_rasters_without_band_names_give_b01_fields(run_alg, tmp_path):
    from rasterio.transform import from_origin

    path = tmp_path / "plain.tif"
    data = np.arange(4 * 20 * 30, dtype="float32").reshape(4, 20, 30) / 1000.0
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=30,
        height=20,
        count=4,
        dtype="float32",
        crs="EPSG:32616",
        transform=from_origin(500000, 4900000, 10, 10),
        nodata=float("nan"),
    ) as ds:
        ds.write(data)
    wkt = "POLYGON((500052 4899948, 500148 4899948, 500148 4899852, 500052 4899852, 500052 4899948))"
    res = run_alg(
        "embeddings:zonalstats",
        {
            "INPUT": str(path),
            "ZONES": polygon_layer([wkt], "EPSG:32616"),
            "PCA_COMPONENTS": 0,
            "OUTPUT": str(tmp_path / "p.gpkg"),
        },
    )
    layer, feats = read_layer(res["OUTPUT"])
    names = [f.name() for f in layer.fields()]
    assert names[-9:] == [
        "b01_mean",
        "b02_mean",
        "b03_mean",
        "b04_mean",
        "b01_std",
        "b02_std",
        "b03_std",
        "b04_std",
        "pixel_count",
    ]
    # Pixel centres in x 500055..500145 and y 4899945..4899855: cols 5..14, rows 5..14.
    block = data[:, 5:15, 5:15].astype(np.float64)
    assert feats[0]["pixel_count"] == 100
    np.testing.assert_allclose([feats[0][f"b0{i}_mean"] for i in range(1, 5)], block.mean(axis=(1, 2)), atol=1e-6)
    np.testing.assert_allclose([feats[0][f"b0{i}_std"] for i in range(1, 5)], block.std(axis=(1, 2)), atol=1e-6)


def test_help_describes_every_parameter(plugin_processing):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("embeddings:zonalstats")
    for p in alg.parameterDefinitions():
        assert p.help(), p.name()
    text = alg.shortHelpString()
    assert "qgis_process run embeddings:zonalstats" in text and "population" in text
    assert "polygons' centre" in alg.parameterDefinition("TARGET_CRS").help()


def test_cancel_leaves_no_output(run_alg, sample_dir, sample_index, tmp_path):
    class CancelSoon(QgsProcessingFeedback):
        def setProgress(self, p):  # noqa: N802
            super().setProgress(p)
            if p > 3:
                self.cancel()

    out = tmp_path / "cancelled.gpkg"
    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        run_alg(
            "embeddings:zonalstats",
            {
                "SOURCE": sample_index,
                "YEAR": 2024,
                "ZONES": str(sample_dir / "zones.geojson"),
                "RESOLUTION": 5,  # finer than native: more blocks, so the cancel lands mid-way
                "OUTPUT": str(out),
            },
            feedback=CancelSoon(),
        )
    assert not list(tmp_path.iterdir())
