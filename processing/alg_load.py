"""embeddings:load - Load embeddings for extent."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterRasterDestination,
)

from ..core.load import LoadRequest, load_embeddings
from ..core.pca import write_pca_rgb
from .base import EmbeddingsAlgorithm, FeedbackProgress, core_errors, tr, with_help
from .styles import EmbeddingsRgbStyle, PcaRgbStyle, style_on_load


class LoadEmbeddingsAlgorithm(EmbeddingsAlgorithm):
    icon_name = "load.svg"
    help_text = (
        "Reads one year of satellite embeddings (AlphaEarth Foundations or a collection in the same "
        "layout) for an extent and writes them as one 64-band GeoTIFF on a clean grid.\n\n"
        "Inputs: the collection (empty = the public product on Source Cooperative), the year, the "
        "extent (normally the map canvas), the target CRS (TARGET_CRS; empty = the UTM zone of the extent, "
        "where the product's pixels line up) and the resolution in metres (RESOLUTION; 10 = native; coarser values "
        "average the vectors and renormalise them).\n\n"
        "Output: int8 GeoTIFF, 64 bands A00..A63, no-data -128, the AEF quantisation kept "
        "(value = sign(q) * (q / 127.5)^2), tiled and compressed, north-up. It loads as an RGB "
        "rendering of A01/A16/A09 stretched to +-0.3. OUTPUT_PCA (optional) also writes a PCA RGB view: "
        "the extent's first three principal components as red, green and blue (the usual way to look at "
        "embeddings: similar places, similar colours).\n\n"
        "Only the tile blocks that the extent needs are read, block by block, so memory does not "
        "grow with the extent. Extents above the pixel limit (MAX_PIXELS) are refused with their size.\n\n"
        "Example (qgis_process): qgis_process run embeddings:load -- SOURCE=/data/aef/aef_index.csv "
        'YEAR=2024 EXTENT="-90.02,-89.98,44.44,44.46 [EPSG:4326]" OUTPUT=/tmp/emb_2024.tif'
    )

    def name(self) -> str:
        return "load"

    def displayName(self) -> str:
        return tr("Load embeddings for extent")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_source_parameters()
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination("OUTPUT", tr("Embeddings")),
                "The 64-band int8 GeoTIFF to write (.tif).",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination(
                    "OUTPUT_PCA", tr("PCA RGB view"), optional=True, createByDefault=False
                ),
                "Optional: a 3-band GeoTIFF showing the extent's first three principal components as "
                "red, green and blue, each stretched from its 2nd to its 98th percentile (0 = no-data): "
                "places with similar embeddings get similar colours. The components are the extent's "
                "own, so colours compare places within one view.",
            )
        )
        self.addOutput(QgsProcessingOutputNumber("VALID_PIXELS", tr("Pixels with embeddings")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        source = self.source_spec(parameters, context)
        grid = self.grid_spec(parameters, context)
        if grid.extent is None:
            raise QgsProcessingException(tr("Choose an extent to read (for example the map canvas extent)."))
        output = self.geotiff_output(parameters, context)
        with core_errors():
            result = load_embeddings(LoadRequest(source, grid, output), FeedbackProgress(feedback))
        style_on_load(context, output, tr("Embeddings {year}").format(year=source.year), EmbeddingsRgbStyle())
        results: dict[str, Any] = {"OUTPUT": output, "VALID_PIXELS": result.valid_pixels, "OUTPUT_PCA": None}
        if parameters.get("OUTPUT_PCA") not in (None, ""):
            pca = str(self.parameterAsOutputLayer(parameters, "OUTPUT_PCA", context))
            with core_errors():
                write_pca_rgb(output, pca, FeedbackProgress(feedback))
            style_on_load(context, pca, tr("Embeddings {year} (PCA RGB)").format(year=source.year), PcaRgbStyle())
            results["OUTPUT_PCA"] = pca
        return results
