"""Styles for results: QML files from resources/styles, applied by layer post-processors."""

from __future__ import annotations

import math
import os
from typing import Any

from qgis.core import (
    Qgis,
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
)
from qgis.PyQt.QtGui import QColor

from .resources import style_path

# Post-processors must outlive processAlgorithm (QGIS calls them afterwards, on the main
# thread); keep the latest ones referenced.
_KEEP: list[QgsProcessingLayerPostProcessorInterface] = []


def style_on_load(
    context: QgsProcessingContext, dest: str, name: str | None, post_processor: QgsProcessingLayerPostProcessorInterface
) -> None:
    """When Processing loads the output ``dest``, give it ``name`` (None: keep QGIS's) and style it."""
    if not context.willLoadLayerOnCompletion(dest):
        return
    details = context.layerToLoadOnCompletionDetails(dest)
    if name:
        details.name = name
    _KEEP.append(post_processor)
    del _KEEP[:-32]
    details.setPostProcessor(post_processor)


def apply_qml(layer: QgsMapLayer, name: str) -> bool:
    message, ok = layer.loadNamedStyle(style_path(name))
    layer.triggerRepaint()
    return bool(ok)


def expand_legend(layer: QgsMapLayer) -> None:
    """Show the layer's legend (QGIS may add a styled result with its legend collapsed)."""
    from qgis.core import QgsProject

    node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
    if node is not None:
        node.setExpanded(True)


def label_ramp(layer: QgsRasterLayer, minimum_label: str, maximum_label: str) -> None:
    """Say what the ends of a pseudocolor layer's continuous legend mean."""
    from qgis.core import QgsColorRampLegendNodeSettings, QgsSingleBandPseudoColorRenderer

    renderer = layer.renderer()
    if not isinstance(renderer, QgsSingleBandPseudoColorRenderer):
        return
    shader = renderer.shader().rasterShaderFunction()
    settings = QgsColorRampLegendNodeSettings()
    settings.setMinimumLabel(minimum_label)
    settings.setMaximumLabel(maximum_label)
    shader.setLegendSettings(settings)


def needs_signed_view(layer: QgsRasterLayer) -> bool:
    """True when this QGIS reads an int8 file as unsigned Byte (its GDAL is older than 3.7).

    Asks QGIS's own provider: rasterio may carry another GDAL than QGIS (pip wheels do).
    """
    provider = layer.dataProvider()
    return provider is not None and provider.dataType(1) == Qgis.DataType.Byte


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


class PcaRgbStyle(QgsProcessingLayerPostProcessorInterface):
    """Bands 1/2/3 of a PCA view as red/green/blue, as written (already stretched to 1..255)."""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        from qgis.core import QgsMultiBandColorRenderer

        if not isinstance(layer, QgsRasterLayer) or layer.dataProvider() is None:
            return
        layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3))
        expand_legend(layer)
        layer.triggerRepaint()


class GraduatedStyle(QgsProcessingLayerPostProcessorInterface):
    """A polygon layer coloured by a numeric field in quantile classes (blue - yellow - red)."""

    def __init__(self, field: str, classes: int = 7):
        super().__init__()
        self.field = field
        self.classes = classes

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        from qgis.core import (
            QgsClassificationQuantile,
            QgsGradientColorRamp,
            QgsGradientStop,
            QgsGraduatedSymbolRenderer,
            QgsSymbol,
            QgsVectorLayer,
        )
        from qgis.PyQt.QtGui import QColor

        if not isinstance(layer, QgsVectorLayer) or layer.fields().indexOf(self.field) < 0:
            return
        # A diverging ramp: principal components are centred on 0. Built here rather than
        # taken from the style database, which differs between installations.
        ramp = QgsGradientColorRamp(
            QColor("#2c7bb6"), QColor("#d7191c"), False, [QgsGradientStop(0.5, QColor("#ffffbf"))]
        )
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        renderer = QgsGraduatedSymbolRenderer(self.field)
        renderer.setSourceSymbol(symbol)
        renderer.setSourceColorRamp(ramp)
        renderer.setClassificationMethod(QgsClassificationQuantile())
        renderer.updateClasses(layer, self.classes)
        renderer.updateColorRamp(ramp.clone())
        layer.setRenderer(renderer)
        layer.triggerRepaint()


class QmlStyle(QgsProcessingLayerPostProcessorInterface):
    """Applies one QML file from resources/styles to the loaded layer (raster or vector)."""

    def __init__(self, qml: str):
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if layer is not None and not apply_qml(layer, self.qml) and feedback:
            feedback.reportError(f"The style {self.qml} could not be applied to {layer.name()}.")
        if layer is not None:
            expand_legend(layer)


def stretch_pseudocolor(layer: QgsRasterLayer, minimum: float, maximum: float) -> bool:
    """Re-spread a single-band pseudocolor layer's ramp (from its QML) over [minimum, maximum]."""
    from qgis.core import QgsColorRampShader, QgsSingleBandPseudoColorRenderer

    renderer = layer.renderer()
    if not isinstance(renderer, QgsSingleBandPseudoColorRenderer):
        return False
    if not (math.isfinite(minimum) and math.isfinite(maximum)):
        return False
    if maximum <= minimum:
        maximum = minimum + 1e-6
    function = renderer.shader().rasterShaderFunction()
    ramp = function.sourceColorRamp()
    if ramp is None:
        return False
    renderer.setClassificationMin(minimum)
    renderer.setClassificationMax(maximum)
    renderer.createShader(ramp.clone(), QgsColorRampShader.Interpolated, QgsColorRampShader.Continuous, 0)
    layer.triggerRepaint()
    return True


class PseudocolorStyle(QmlStyle):
    """A QML with a single-band pseudocolor ramp, stretched to a range known after the run."""

    def __init__(self, qml: str, minimum: float, maximum: float):
        super().__init__(qml)
        self.minimum = float(minimum)
        self.maximum = float(maximum)

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if not isinstance(layer, QgsRasterLayer):
            return
        apply_qml(layer, self.qml)
        stretch_pseudocolor(layer, self.minimum, self.maximum)
        if self.qml == "similarity.qml":
            label_ramp(layer, *similarity_labels(self.minimum, self.maximum))
        expand_legend(layer)


def similarity_labels(low: float, high: float) -> tuple[str, str]:
    """The ends of the similarity legend: what a score means."""
    return f"{low:.2f} unlike", f"{high:.2f} (1 = identical to the exemplars)"


def paletted_renderer(layer: QgsRasterLayer, classes: list[tuple[int, str, tuple[int, int, int]]]) -> Any:
    """A paletted renderer on band 1: one colour and name per class code."""
    from qgis.core import QgsPalettedRasterRenderer
    from qgis.PyQt.QtGui import QColor

    entries = [QgsPalettedRasterRenderer.Class(int(code), QColor(*rgb), name) for code, name, rgb in classes]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, entries)


def save_paletted_style(path: str, classes: list[tuple[int, str, tuple[int, int, int]]]) -> str | None:
    """Write ``<name>.qml`` beside a class raster, so that QGIS shows the classes' colours and
    names whenever the file is opened; the QML path, or None when it could not be written."""
    qml = os.path.splitext(path)[0] + ".qml"
    layer = QgsRasterLayer(path, "classes", "gdal")
    if not layer.isValid():
        return None
    layer.setRenderer(paletted_renderer(layer, classes))
    _, ok = layer.saveNamedStyle(qml)
    return qml if ok else None


class PalettedStyle(QgsProcessingLayerPostProcessorInterface):
    """A paletted renderer with class names (legend) for a class, cluster or year raster."""

    def __init__(self, classes: list[tuple[int, str, tuple[int, int, int]]]):
        super().__init__()
        self.classes = classes

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if not isinstance(layer, QgsRasterLayer) or layer.dataProvider() is None:
            return
        layer.setRenderer(paletted_renderer(layer, self.classes))
        expand_legend(layer)
        layer.triggerRepaint()


class ChangeBandStyle(QmlStyle):
    """The change map's ramp (change.qml) on one band of a multi-band change raster."""

    def __init__(self, band: int):
        super().__init__("change.qml")
        self.band = int(band)

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if not isinstance(layer, QgsRasterLayer):
            return
        apply_qml(layer, self.qml)
        renderer = layer.renderer()
        if renderer is not None and hasattr(renderer, "setBand"):
            renderer.setBand(self.band)
        expand_legend(layer)
        layer.triggerRepaint()


# Early years dark (violet), late years light (yellow): viridis, readable in grey too.
YEAR_RAMP = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")
NOT_CHANGED_COLOUR = "#d9d9d9"


def year_colours(years) -> list:
    """(year, QColor) for each year, evenly along YEAR_RAMP."""
    from qgis.core import QgsGradientColorRamp, QgsGradientStop
    from qgis.PyQt.QtGui import QColor

    inner = [QgsGradientStop(i / (len(YEAR_RAMP) - 1), QColor(c)) for i, c in enumerate(YEAR_RAMP[1:-1], start=1)]
    ramp = QgsGradientColorRamp(QColor(YEAR_RAMP[0]), QColor(YEAR_RAMP[-1]), False, inner)
    years = list(years)
    return [(y, ramp.color(i / max(1, len(years) - 1))) for i, y in enumerate(years)]


class YearStyle(PalettedStyle):
    """An int16 year raster as one colour per year with a legend entry each; 0 grey."""

    def __init__(self, years, zero_label: str, year_label: str = "{year}"):
        grey = QColor(NOT_CHANGED_COLOUR)
        classes = [(0, zero_label, (grey.red(), grey.green(), grey.blue()))]
        for year, colour in year_colours([int(y) for y in years]):
            classes.append((year, year_label.format(year=year), (colour.red(), colour.green(), colour.blue())))
        super().__init__(classes)
