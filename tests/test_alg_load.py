"""embeddings:load through processing.run."""

import numpy as np
import pytest
import rasterio
from ee_helpers import Recorder, extent_param
from qgis.core import (
    Qgis,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
)

from earth_embeddings.core.grid import utm_epsg
from earth_embeddings.core.quant import NODATA


def test_load_writes_64_band_int8_and_logs_the_plan(run_alg, sample_index, truth, tmp_path):
    out = tmp_path / "emb.tif"
    fb = Recorder()
    res = run_alg(
        "embeddings:load",
        {"SOURCE": sample_index, "YEAR": 2024, "EXTENT": extent_param(truth.notes["bbox_wgs84"]), "OUTPUT": str(out)},
        feedback=fb,
    )
    assert res["OUTPUT"] == str(out)
    w, s, e, n = truth.notes["bbox_wgs84"]
    zone = utm_epsg((w + e) / 2, (s + n) / 2)  # the default target CRS
    with rasterio.open(out) as ds:
        assert ds.count == 64 and ds.dtypes[0] == "int8" and f"EPSG:{ds.crs.to_epsg()}" == zone
        data = ds.read(1)
    assert (data != NODATA).mean() > 0.8
    assert any(line.startswith("Planned:") and "tile(s)" in line for line in fb.lines)


def test_loaded_layer_is_styled_as_rgb_of_a01_a16_a09(run_alg, sample_index, truth, tmp_path):
    out = tmp_path / "styled.tif"
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    params = {
        "SOURCE": sample_index,
        "YEAR": 2017,
        "EXTENT": extent_param(truth.notes["bbox_wgs84"]),
        "OUTPUT": str(out),
    }
    import processing

    layer = processing.runAndLoadResults("embeddings:load", params, context=context, feedback=QgsProcessingFeedback())
    layer_id = layer["OUTPUT"]
    lyr = (
        QgsProject.instance().mapLayer(layer_id)
        if isinstance(layer_id, str) and QgsProject.instance().mapLayer(layer_id)
        else None
    )
    if lyr is None:
        lyr = next(lay for lay in QgsProject.instance().mapLayers().values() if lay.name() == "Embeddings 2017")
    assert isinstance(lyr, QgsRasterLayer) and lyr.isValid()
    r = lyr.renderer()
    assert r.type() == "multibandcolor"
    assert (r.redBand(), r.greenBand(), r.blueBand()) == (2, 17, 10)
    assert r.redContrastEnhancement().minimumValue() == pytest.approx(-69.8)
    assert r.redContrastEnhancement().maximumValue() == pytest.approx(69.8)
    # Signed codes reach QGIS (through a VRT view where QGIS's GDAL is older than 3.7 and has
    # no Int8 type; straight from the GeoTIFF from 3.7 on): no-data is no-data.
    from osgeo import gdal

    prov = lyr.dataProvider()
    if int(gdal.VersionInfo()) >= 3070000:
        assert lyr.source() == str(out) and prov.dataType(1) == Qgis.DataType.Int8
        assert not (tmp_path / "styled_view.vrt").exists()
    else:
        assert lyr.source() == str(tmp_path / "styled_view.vrt")
    assert prov.sourceNoDataValue(1) == NODATA
    stats = prov.bandStatistics(2)
    assert stats.minimumValue < 0 < stats.maximumValue
    QgsProject.instance().removeMapLayer(lyr.id())


def test_load_rejects_a_year_the_collection_lacks(run_alg, sample_index, truth, tmp_path):
    out = tmp_path / "x.tif"
    with pytest.raises(QgsProcessingException, match="2017, 2024"):
        run_alg(
            "embeddings:load",
            {
                "SOURCE": sample_index,
                "YEAR": 2019,
                "EXTENT": extent_param(truth.notes["bbox_wgs84"]),
                "OUTPUT": str(out),
            },
        )
    assert not out.exists() and not list(tmp_path.iterdir())


def test_load_refuses_extents_above_the_limit(run_alg, sample_index, truth, tmp_path):
    out = tmp_path / "x.tif"
    with pytest.raises(QgsProcessingException, match="above the limit of 1,000 pixels"):
        run_alg(
            "embeddings:load",
            {
                "SOURCE": sample_index,
                "YEAR": 2024,
                "EXTENT": extent_param(truth.notes["bbox_wgs84"]),
                "MAX_PIXELS": 1000,
                "OUTPUT": str(out),
            },
        )
    assert not out.exists()


def test_cancel_leaves_no_output(run_alg, sample_index, truth, tmp_path):
    out = tmp_path / "x.tif"

    class CancelSoon(QgsProcessingFeedback):
        def setProgress(self, p):  # noqa: N802
            super().setProgress(p)
            if p > 5:
                self.cancel()

    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        run_alg(
            "embeddings:load",
            {
                "SOURCE": sample_index,
                "YEAR": 2024,
                "EXTENT": extent_param(truth.notes["bbox_wgs84"]),
                "TARGET_CRS": "EPSG:3857",
                "OUTPUT": str(out),
            },
            feedback=CancelSoon(),
        )
    assert not list(tmp_path.iterdir())


def test_target_crs_and_resolution(run_alg, sample_index, truth, tmp_path):
    out = tmp_path / "c.tif"
    run_alg(
        "embeddings:load",
        {
            "SOURCE": sample_index,
            "YEAR": 2024,
            "EXTENT": extent_param(truth.notes["bbox_wgs84"]),
            "TARGET_CRS": "EPSG:32615",
            "RESOLUTION": 20,
            "OUTPUT": str(out),
        },
    )
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32615 and ds.res == (20.0, 20.0)
        assert ds.transform.c % 20 == 0 and ds.transform.f % 20 == 0
        data = ds.read()
    vals = np.where(data == NODATA, 0, data)
    assert (vals != 0).any()


def test_load_writes_and_loads_a_pca_rgb_view(sample_index, truth, tmp_path, plugin_processing):
    import processing

    out, pca = tmp_path / "emb.tif", tmp_path / "emb_pca.tif"
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    params = {
        "SOURCE": sample_index,
        "YEAR": 2024,
        "EXTENT": extent_param(truth.notes["bbox_wgs84"]),
        "OUTPUT": str(out),
        "OUTPUT_PCA": str(pca),
    }
    res = processing.runAndLoadResults("embeddings:load", params, context=context, feedback=QgsProcessingFeedback())
    assert res["OUTPUT_PCA"] == str(pca)
    with rasterio.open(pca) as ds:
        assert ds.count == 3 and ds.dtypes[0] == "uint8" and "of the variance" in ds.descriptions[0]
    layer = next(lay for lay in QgsProject.instance().mapLayers().values() if lay.name() == "Embeddings 2024 (PCA RGB)")
    assert layer.renderer().type() == "multibandcolor"
    assert (layer.renderer().redBand(), layer.renderer().greenBand(), layer.renderer().blueBand()) == (1, 2, 3)
    for lay in list(QgsProject.instance().mapLayers().values()):
        QgsProject.instance().removeMapLayer(lay.id())
