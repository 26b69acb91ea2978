"""Enum names that differ between QGIS 3.22 and 3.36+ (where the old ones are deprecated and
QGIS 4 drops them). Use these instead of the class-level names."""

from __future__ import annotations

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingFeatureSource,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)

if hasattr(Qgis, "ProcessingNumberParameterType"):  # QGIS >= 3.36
    NUMBER_INTEGER = Qgis.ProcessingNumberParameterType.Integer
    NUMBER_DOUBLE = Qgis.ProcessingNumberParameterType.Double
    PARAMETER_ADVANCED = Qgis.ProcessingParameterFlag.Advanced
    SOURCE_POINT = Qgis.ProcessingSourceType.VectorPoint
    SOURCE_POLYGON = Qgis.ProcessingSourceType.VectorPolygon
    SOURCE_ANY_GEOMETRY = Qgis.ProcessingSourceType.VectorAnyGeometry
    SOURCE_TABLE = Qgis.ProcessingSourceType.Vector
    SOURCE_RASTER = Qgis.ProcessingSourceType.Raster
    SKIP_GEOMETRY_CHECKS = Qgis.ProcessingFeatureSourceFlag.SkipGeometryValidityChecks
else:
    NUMBER_INTEGER = QgsProcessingParameterNumber.Type.Integer
    NUMBER_DOUBLE = QgsProcessingParameterNumber.Type.Double
    PARAMETER_ADVANCED = QgsProcessingParameterDefinition.Flag.FlagAdvanced
    SOURCE_POINT = QgsProcessing.SourceType.TypeVectorPoint
    SOURCE_POLYGON = QgsProcessing.SourceType.TypeVectorPolygon
    SOURCE_ANY_GEOMETRY = QgsProcessing.SourceType.TypeVectorAnyGeometry
    SOURCE_TABLE = QgsProcessing.SourceType.TypeVector
    SOURCE_RASTER = QgsProcessing.SourceType.TypeRaster
    SKIP_GEOMETRY_CHECKS = QgsProcessingFeatureSource.Flag.FlagSkipGeometryValidityChecks

if hasattr(Qgis, "WkbType"):  # QGIS >= 3.30
    WKB_POINT = Qgis.WkbType.Point
    WKB_POLYGON = Qgis.WkbType.Polygon
    WKB_NO_GEOMETRY = Qgis.WkbType.NoGeometry
    GEOMETRY_POINT = Qgis.GeometryType.Point
    GEOMETRY_POLYGON = Qgis.GeometryType.Polygon
else:
    WKB_POINT = QgsWkbTypes.Type.Point
    WKB_POLYGON = QgsWkbTypes.Type.Polygon
    WKB_NO_GEOMETRY = QgsWkbTypes.Type.NoGeometry
    GEOMETRY_POINT = QgsWkbTypes.GeometryType.PointGeometry
    GEOMETRY_POLYGON = QgsWkbTypes.GeometryType.PolygonGeometry

if hasattr(Qgis, "CrsWktVariant"):  # QGIS >= 3.36
    WKT2_2019 = Qgis.CrsWktVariant.Wkt2_2019
else:
    WKT2_2019 = QgsCoordinateReferenceSystem.WktVariant.WKT2_2019

# QgsField takes QMetaType.Type from 3.38 on; QVariant.Type is gone in Qt 6.
if Qgis.QGIS_VERSION_INT >= 33800:
    from qgis.PyQt.QtCore import QMetaType

    FIELD_DOUBLE, FIELD_INT64, FIELD_STRING = QMetaType.Type.Double, QMetaType.Type.LongLong, QMetaType.Type.QString
else:
    from qgis.PyQt.QtCore import QVariant

    FIELD_DOUBLE, FIELD_INT64, FIELD_STRING = QVariant.Type.Double, QVariant.Type.LongLong, QVariant.Type.String

# Where a model step's input comes from (the enum moved to Qgis in 3.24; 3.40 has only that).
if hasattr(Qgis, "ProcessingModelChildParameterSource"):
    FROM_MODEL_PARAMETER = Qgis.ProcessingModelChildParameterSource.ModelParameter
else:
    from qgis.core import QgsProcessingModelChildParameterSource

    FROM_MODEL_PARAMETER = QgsProcessingModelChildParameterSource.ModelParameter
