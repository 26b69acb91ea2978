"""embeddings:change through processing.run: outputs, styling, polygons, log and errors."""

import numpy as np
import pytest
import rasterio
from ee_helpers import Recorder, extent_param
from qgis.core import (
    QgsColorRampLegendNode,
    QgsLayerTreeLayer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import Qt

from earth_embeddings.core.change import NODATA_CHANGE

PALETTE = ["#000000", "#0000ff", "#00ffff", "#ffff00", "#ff0000"]


def years_params(sample_index, truth, **extra):
    params = {
        "SOURCE": sample_index,
        "YEAR_A": 2017,
        "YEAR_B": 2024,
        "EXTENT": extent_param(truth.notes["bbox_wgs84"]),
        "TARGET_CRS": "EPSG:32616",
        "RESOLUTION": 10,
    }
    params.update(extra)
    return params


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, ds.crs.to_epsg()


def test_same_result_from_source_and_from_loaded_rasters(run_alg, sample_index, truth, tmp_path):
    a, b = tmp_path / "emb_2017.tif", tmp_path / "emb_2024.tif"
    for year, path in ((2017, a), (2024, b)):
        run_alg(
            "embeddings:load",
            {
                "SOURCE": sample_index,
                "YEAR": year,
                "EXTENT": extent_param(truth.notes["bbox_wgs84"]),
                "TARGET_CRS": "EPSG:32616",
                "OUTPUT": str(path),
            },
        )
    from_years = run_alg("embeddings:change", years_params(sample_index, truth, OUTPUT=str(tmp_path / "years.tif")))
    from_rasters = run_alg(
        "embeddings:change", {"INPUT_A": str(a), "INPUT_B": str(b), "OUTPUT": str(tmp_path / "rasters.tif")}
    )
    v1, t1, crs1 = read(from_years["OUTPUT"])
    v2, t2, crs2 = read(from_rasters["OUTPUT"])
    assert (t1, crs1) == (t2, crs2) and crs1 == 32616
    assert np.array_equal(v1, v2)
    assert (v1 != NODATA_CHANGE).mean() > 0.8 and (v1 == NODATA_CHANGE).any()
    for key in ("VALID_PIXELS", "CHANGE_P50", "CHANGE_P90", "CHANGE_P99", "AREA_ABOVE_M2"):
        assert from_years[key] == from_rasters[key], key
    assert from_years["VALID_PIXELS"] == (v1 != NODATA_CHANGE).sum()
    assert "OUTPUT_POLYGONS" not in from_years  # not asked for


def test_polygons_and_a_log_that_ends_with_the_summary(run_alg, sample_index, truth, tmp_path):
    fb = Recorder()
    res = run_alg(
        "embeddings:change",
        years_params(sample_index, truth, OUTPUT=str(tmp_path / "c.tif"), OUTPUT_POLYGONS=str(tmp_path / "a.gpkg")),
        feedback=fb,
    )
    values, transform, epsg = read(res["OUTPUT"])
    layer = QgsVectorLayer(res["OUTPUT_POLYGONS"], "areas", "ogr")
    assert layer.isValid() and layer.geometryType() == QgsWkbTypes.PolygonGeometry
    assert layer.crs().authid() == f"EPSG:{epsg}"
    assert [f.name() for f in layer.fields() if f.name() != "fid"] == ["area_m2", "mean_change", "max_change"]
    feats = list(layer.getFeatures())
    assert len(feats) >= 3
    areas = [f["area_m2"] for f in feats]
    assert areas == sorted(areas, reverse=True) and min(areas) >= 500.0
    for f in feats:
        assert f.geometry().area() == pytest.approx(f["area_m2"])
        assert 0.25 < f["mean_change"] <= f["max_change"] <= 2.0
    # The log: the plan first, the summary last (before Processing's own "Results:" line).
    ours = [line for line in fb.lines if not line.startswith("Results:")]
    assert ours[0].startswith("Planned:")
    summary = ours[-1]
    valid = (values != NODATA_CHANGE).sum()
    above = ((values != NODATA_CHANGE) & (values > 0.25)).sum()
    assert f"{valid:,} valid pixels" in summary
    assert f"p50 {res['CHANGE_P50']:.3f}" in summary and f"p99 {res['CHANGE_P99']:.3f}" in summary
    assert f"Above 0.25: {above:,} pixels" in summary and res["AREA_ABOVE_M2"] == above * 100.0

    # A larger minimum area keeps only the larger areas, the same ones.
    res2 = run_alg(
        "embeddings:change",
        years_params(
            sample_index,
            truth,
            MIN_AREA_M2=50000,
            OUTPUT=str(tmp_path / "c2.tif"),
            OUTPUT_POLYGONS=str(tmp_path / "a2.gpkg"),
        ),
    )
    big = [f["area_m2"] for f in QgsVectorLayer(res2["OUTPUT_POLYGONS"], "big", "ogr").getFeatures()]
    assert big == [a for a in areas if a >= 50000] and len(big) < len(areas)


def loaded(name):
    found = [lay for lay in QgsProject.instance().mapLayers().values() if lay.name() == name]
    assert len(found) == 1, f"{name}: {[lay.name() for lay in QgsProject.instance().mapLayers().values()]}"
    return found[0]


def test_layers_load_named_and_styled_with_a_ramp_legend(plugin_processing, sample_index, truth, tmp_path):
    import processing

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    params = years_params(sample_index, truth, OUTPUT=str(tmp_path / "c.tif"), OUTPUT_POLYGONS="TEMPORARY_OUTPUT")
    processing.runAndLoadResults("embeddings:change", params, context=context, feedback=QgsProcessingFeedback())
    raster = loaded("Change 2017-2024")
    areas = loaded("Change areas 2017-2024")
    try:
        assert isinstance(raster, QgsRasterLayer) and raster.isValid()
        r = raster.renderer()
        assert r.type() == "singlebandpseudocolor" and r.band() == 1
        assert (r.classificationMin(), r.classificationMax()) == (0.0, 0.5)
        shader = r.shader().rasterShaderFunction()
        items = shader.colorRampItemList()
        assert [i.value for i in items] == [0.0, 0.125, 0.25, 0.375, 0.5]
        assert [i.color.name() for i in items] == PALETTE
        # Stronger change than 0.5 stays red (the ramp is clamped, not cut), none stays black.
        ok, red, green, blue, alpha = shader.shade(0.9)
        assert ok and (red, green, blue, alpha) == (255, 0, 0, 255)
        ok, *rgba = shader.shade(0.0)
        assert ok and rgba == [0, 0, 0, 255]
        nodes = raster.legend().createLayerTreeModelLegendNodes(QgsLayerTreeLayer(raster))
        assert any(isinstance(n, QgsColorRampLegendNode) for n in nodes)

        assert isinstance(areas, QgsVectorLayer) and areas.featureCount() >= 3
        assert areas.crs() == raster.crs()
        symbol = areas.renderer().symbol()
        fill = symbol.symbolLayer(0)
        assert fill.brushStyle() == Qt.NoBrush and fill.strokeStyle() == Qt.SolidLine
        assert fill.strokeColor().name() == "#ff00ff"
    finally:
        QgsProject.instance().removeMapLayers([raster.id(), areas.id()])


def test_same_years_are_refused(run_alg, sample_index, truth, tmp_path):
    out = tmp_path / "c.tif"
    with pytest.raises(QgsProcessingException, match="Year A and year B are both 2024"):
        run_alg("embeddings:change", years_params(sample_index, truth, YEAR_A=2024, OUTPUT=str(out)))
    assert not list(tmp_path.iterdir())


def test_one_input_raster_alone_is_refused(run_alg, wisconsin_raster, tmp_path):
    out = tmp_path / "c.tif"
    with pytest.raises(QgsProcessingException, match="INPUT_A is set but INPUT_B is not"):
        run_alg("embeddings:change", {"INPUT_A": wisconsin_raster, "OUTPUT": str(out)})
    assert not list(tmp_path.iterdir())


def test_rasters_with_different_band_counts_are_refused(run_alg, wisconsin_raster, tmp_path):
    with rasterio.open(wisconsin_raster) as ds:
        profile = ds.profile
        codes = ds.read()
    profile.update(count=16)
    half = tmp_path / "b16.tif"
    with rasterio.open(half, "w", **profile) as dst:
        dst.write(codes[:16])
    out = tmp_path / "c.tif"
    with pytest.raises(QgsProcessingException, match="64 bands .* 16"):
        run_alg("embeddings:change", {"INPUT_A": wisconsin_raster, "INPUT_B": str(half), "OUTPUT": str(out)})
    assert not out.exists()


def test_cancel_leaves_no_output(run_alg, sample_index, truth, tmp_path):
    class CancelSoon(QgsProcessingFeedback):
        def setProgress(self, p):  # noqa: N802
            super().setProgress(p)
            if p > 10:
                self.cancel()

    out = tmp_path / "c.tif"
    params = years_params(sample_index, truth, TARGET_CRS="EPSG:3857", OUTPUT=str(out))
    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        run_alg("embeddings:change", params, feedback=CancelSoon())
    assert not list(tmp_path.iterdir())


def test_every_parameter_has_help_and_every_output_is_declared(plugin_processing):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("embeddings:change")
    assert alg is not None and alg.displayName() == "Change map (1 - cosine)"
    for param in alg.parameterDefinitions():
        assert param.help(), f"{param.name()} has no help text"
    outputs = {o.name() for o in alg.outputDefinitions()}
    assert {"OUTPUT", "OUTPUT_POLYGONS", "VALID_PIXELS", "CHANGE_P50", "CHANGE_P90", "CHANGE_P99"} <= outputs
    assert "AREA_ABOVE_M2" in outputs
    assert "qgis_process run embeddings:change" in alg.shortHelpString()
    assert not alg.icon().isNull()
