"""The helpers whose QGIS enums changed between 3.22 and 3.40 (processing/compat.py), used for real."""

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsVectorLayer

from earth_embeddings.processing.base import crs_string, make_fields, write_features
from earth_embeddings.processing.compat import NUMBER_DOUBLE, NUMBER_INTEGER, PARAMETER_ADVANCED


def test_fields_of_each_type_round_trip_through_a_sink(qgis_app):
    fields = make_fields([("area_m2", float), ("pixels", int), ("label", str)])
    layer = QgsVectorLayer("Polygon?crs=EPSG:32616", "areas", "memory")
    assert layer.dataProvider().addAttributes(fields.toList())
    layer.updateFields()
    rows = [("POLYGON((0 0, 20 0, 20 10, 0 10, 0 0))", {"area_m2": 200.5, "pixels": 2**40, "label": "forest"})]
    assert write_features(layer.dataProvider(), layer.fields(), rows) == 1
    feat = next(layer.getFeatures())
    assert feat["area_m2"] == 200.5
    assert feat["pixels"] == 2**40  # 64-bit: would not survive a 32-bit integer field
    assert feat["label"] == "forest"
    assert feat.geometry().area() == 200.0


def test_crs_string_gives_epsg_codes_or_wkt2(qgis_app):
    assert crs_string(QgsCoordinateReferenceSystem("EPSG:32616")) == "EPSG:32616"
    custom = QgsCoordinateReferenceSystem.fromProj("+proj=laea +lat_0=44 +lon_0=-90 +datum=WGS84 +units=m")
    wkt = crs_string(custom)
    assert wkt.startswith("PROJCRS[")  # WKT2, which pyproj and GDAL read without loss
    assert QgsCoordinateReferenceSystem.fromWkt(wkt) == custom
    assert crs_string(QgsCoordinateReferenceSystem()) is None


def test_shared_parameters_have_the_intended_types(plugin_processing):
    alg = QgsApplication.processingRegistry().algorithmById("embeddings:load")
    assert alg.parameterDefinition("YEAR").dataType() == NUMBER_INTEGER
    assert alg.parameterDefinition("MAX_PIXELS").dataType() == NUMBER_INTEGER
    assert alg.parameterDefinition("RESOLUTION").dataType() == NUMBER_DOUBLE
    assert alg.parameterDefinition("MAX_PIXELS").flags() & PARAMETER_ADVANCED
    assert not alg.parameterDefinition("YEAR").flags() & PARAMETER_ADVANCED
