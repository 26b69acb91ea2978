"""Styles for results: QML files from resources/styles, applied by layer post-processors."""

from __future__ import annotations

import os

from qgis.core import QgsProcessingLayerPostProcessorInterface, QgsRasterLayer

STYLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "styles")

# Post-processors must outlive processAlgorithm (QGIS calls them afterwards, on the main
# thread); keep the latest ones referenced.
_KEEP: list = []


def keep(post_processor):
    _KEEP.append(post_processor)
    del _KEEP[:-32]
    return post_processor


def style_path(name: str) -> str:
    return os.path.join(STYLES, name)


def apply_qml(layer, name: str) -> bool:
    message, ok = layer.loadNamedStyle(style_path(name))
    layer.triggerRepaint()
    return bool(ok)


def needs_signed_view(layer: QgsRasterLayer) -> bool:
    """True when this QGIS reads an int8 file as unsigned Byte (GDAL < 3.7)."""
    from ..core.output import gdal_has_int8

    if gdal_has_int8():
        return False
    return layer.dataProvider() is not None and layer.dataProvider().dataType(1) == 1  # Qgis.Byte


def use_signed_view(layer: QgsRasterLayer) -> None:
    """Point an int8 layer at a VRT that shows signed codes (see core.output)."""
    from ..core.output import write_signed_view_vrt

    path = layer.source().split("|")[0]
    if not path.lower().endswith((".tif", ".tiff")):
        return
    vrt = write_signed_view_vrt(path)
    from qgis.core import QgsDataProvider

    layer.setDataSource(vrt, layer.name(), "gdal", QgsDataProvider.ProviderOptions())


class EmbeddingsRgbStyle(QgsProcessingLayerPostProcessorInterface):
    """Bands A01/A16/A09 as RGB, stretched to +-0.3 in de-quantized units (codes +-69.8)."""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if not isinstance(layer, QgsRasterLayer):
            return
        if needs_signed_view(layer):
            use_signed_view(layer)
            if feedback:
                feedback.pushInfo(
                    "This QGIS reads int8 rasters as unsigned bytes; the layer shows the file through "
                    "a VRT beside it that restores the signed codes."
                )
        apply_qml(layer, "embeddings_rgb.qml")


class QmlStyle(QgsProcessingLayerPostProcessorInterface):
    """Applies one QML file from resources/styles to the loaded layer."""

    def __init__(self, qml_name: str):
        super().__init__()
        self.qml_name = qml_name

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if layer is not None and not apply_qml(layer, self.qml_name) and feedback:
            feedback.reportError(f"The style {self.qml_name} could not be applied to {layer.name()}.")


def change_style() -> QmlStyle:
    """1 - cosine: black-blue-cyan-yellow-red over 0..0.5 (above 0.5 stays red), ramp legend."""
    return QmlStyle("change.qml")


def change_areas_style() -> QmlStyle:
    """Change polygons: a magenta outline, no fill, so the change map shows through."""
    return QmlStyle("change_areas.qml")
