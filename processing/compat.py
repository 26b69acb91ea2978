"""Enum names that differ between QGIS 3.22 and 3.36+ (where the old ones are deprecated and
QGIS 4 drops them). Use these instead of the class-level names."""

from __future__ import annotations

from qgis.core import Qgis, QgsCoordinateReferenceSystem, QgsProcessingParameterDefinition, QgsProcessingParameterNumber

if hasattr(Qgis, "ProcessingNumberParameterType"):  # QGIS >= 3.36
    NUMBER_INTEGER = Qgis.ProcessingNumberParameterType.Integer
    NUMBER_DOUBLE = Qgis.ProcessingNumberParameterType.Double
    PARAMETER_ADVANCED = Qgis.ProcessingParameterFlag.Advanced
else:
    NUMBER_INTEGER = QgsProcessingParameterNumber.Type.Integer
    NUMBER_DOUBLE = QgsProcessingParameterNumber.Type.Double
    PARAMETER_ADVANCED = QgsProcessingParameterDefinition.Flag.FlagAdvanced

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
