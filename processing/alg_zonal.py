"""embeddings:zonalstats - Embedding statistics per polygon."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from qgis.core import (
    QgsFeature,
    QgsFeatureRequest,
    QgsFeatureSink,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingUtils,
)

from ..core.zonal import ZonalRequest, ZonalStats, zonal_statistics
from .base import (
    EmbeddingsAlgorithm,
    FeedbackProgress,
    core_errors,
    crs_string,
    make_fields,
    tr,
    usable_polygon,
    with_help,
)
from .compat import NUMBER_INTEGER, SKIP_GEOMETRY_CHECKS, SOURCE_POLYGON
from .styles import GraduatedStyle, style_on_load

ZONES_HELP = (
    "Polygons to summarise (census blocks, fields, districts...), in any CRS and any number. The pixels "
    "are read only where the polygons are. Invalid geometries are repaired (or, when nothing polygonal "
    "is left, skipped and given empty statistics); both are counted in the log."
)
INPUT_HELP = (
    "An embedding raster to read instead of the collection (for example one written by 'Load embeddings "
    "for extent'): int8 with -128 no-data is de-quantized, float rasters are used as they are. With the "
    "target CRS empty the statistics use the raster's own pixels."
)
PCA_HELP = (
    "Number of principal components of the polygons' mean vectors to add as fields pc1..pcK (0 = none). "
    "They are fitted on all polygons with data, and their share of the variance is written to the log; "
    "the output is then styled on pc1."
)


class ZonalStatsAlgorithm(EmbeddingsAlgorithm):
    icon_name = "zonal.svg"
    help_text = (
        "Turns embeddings into a feature table keyed by polygons: for each polygon, the mean and the "
        "standard deviation of each embedding band over its pixels, and the pixel count.\n\n"
        "Inputs: the collection and year (or an embedding raster as INPUT), the polygons (any CRS), the "
        "number of principal components to add (0 = none), the CRS to compute in (TARGET_CRS; empty = the UTM "
        "zone of the polygons, or the input raster's own CRS), the resolution in metres (RESOLUTION) and the "
        "pixel limit (MAX_PIXELS).\n\n"
        "Rules: a pixel counts when its centre lies in the polygon; a polygon containing no pixel centre "
        "(smaller than a pixel) takes the pixel under its centroid (count 1); polygons across tiles or UTM "
        "zones pool all their pixels; statistics are on de-quantized values (value = sign(q) * (q / 127.5)^2) "
        "with no-data excluded; the standard deviation is the population one (divided by n). Polygons may "
        "overlap. A polygon without a valid pixel gets empty (NULL) statistics and is counted in a warning.\n\n"
        "Output: the polygons with their attributes and geometry, plus A00_mean..A63_mean, A00_std..A63_std "
        "(embedding units, -1..1; b01_mean.. for rasters without band names), pixel_count and, with "
        "principal components, pc1..pcK (centred, unit loadings); styled on pc1 when there are components.\n\n"
        "Only the blocks the polygons touch are read, and the pixel limit applies to the pixels read.\n\n"
        "Example (qgis_process): qgis_process run embeddings:zonalstats -- SOURCE=/data/aef/aef_index.csv "
        "YEAR=2024 ZONES=/data/blocks.gpkg PCA_COMPONENTS=3 OUTPUT=/tmp/block_stats.gpkg"
    )

    def name(self) -> str:
        return "zonalstats"

    def displayName(self) -> str:
        return tr("Embedding statistics per polygon")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_source_parameters(extent=False)
        self.add_input_raster("INPUT", "Embedding raster (instead of the collection)", INPUT_HELP)
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSource("ZONES", tr("Polygons (zones)"), [SOURCE_POLYGON]),
                ZONES_HELP,
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "PCA_COMPONENTS",
                    tr("Principal components to add (0 = none)"),
                    NUMBER_INTEGER,
                    defaultValue=3,
                    minValue=0,
                    maxValue=64,
                ),
                PCA_HELP,
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSink("OUTPUT", tr("Embedding statistics per polygon"), SOURCE_POLYGON),
                "The polygons with their attributes plus the statistics fields (GeoPackage, shapefile...).",
            )
        )
        # The shared texts speak of an extent; here the extent comes from the polygons.
        self.parameterDefinition("TARGET_CRS").setHelp(
            tr(
                "CRS to compute in. Empty: the input raster's own CRS, or the UTM zone of the polygons' centre, "
                "in which the product's own pixels line up (no resampling)."
            )
        )
        self.parameterDefinition("MAX_PIXELS").setHelp(
            tr(
                "Refuse runs that would read more pixels than this (only the blocks the polygons touch are "
                "read, so sparse polygons over a large area stay cheap)."
            )
        )
        self.parameterDefinition("MAX_PIXELS").setDescription(tr("Largest number of pixels to read"))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        progress = FeedbackProgress(feedback)
        source = self.source_spec(parameters, context)
        grid = self.grid_spec(parameters, context)
        k = self.parameterAsInt(parameters, "PCA_COMPONENTS", context)
        zones = self.parameterAsSource(parameters, "ZONES", context)
        if zones is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, "ZONES"))

        # Pass 1: geometries only, repaired where needed, as GeoJSON in the layer's CRS.
        geojson, kept_fids = [], []
        skipped = repaired = total = 0
        request = QgsFeatureRequest().setNoAttributes()
        for feat in zones.getFeatures(request, SKIP_GEOMETRY_CHECKS):
            if feedback.isCanceled():
                raise QgsProcessingException(tr("Cancelled by the user; no output was written."))
            total += 1
            if total % 1000 == 0:
                progress.set_progress(2.0 * total / max(zones.featureCount(), total))
            geom, was_repaired = usable_polygon(feat.geometry())
            if geom is None:
                skipped += 1
                continue
            repaired += was_repaired
            geojson.append(json.loads(geom.asJson()))
            kept_fids.append(feat.id())
        if total == 0:
            raise QgsProcessingException(
                tr("The polygons layer has no features; choose a layer (or selection) with polygons.")
            )
        if not geojson:
            raise QgsProcessingException(
                tr(
                    "None of the {total} features of the polygons layer has a usable polygon geometry; "
                    "repair them (Fix geometries) or choose another layer."
                ).format(total=total)
            )
        zones_crs = crs_string(zones.sourceCrs())
        if zones_crs is None:
            raise QgsProcessingException(
                tr("The polygons layer has no CRS; set its CRS (Layer Properties > Source) and run again.")
            )
        if repaired:
            progress.warning(f"{repaired} invalid polygon geometry(ies) were repaired (makeValid) before use.")
        if skipped:
            progress.warning(
                f"{skipped} feature(s) without a usable polygon geometry were skipped; their statistics are empty."
            )
        zonal = ZonalRequest(
            source=source,
            zones=geojson,
            zones_crs=zones_crs,
            target_crs=grid.target_crs,
            resolution_m=grid.resolution_m,
            max_pixels=grid.max_pixels,
            pca_components=k,
        )
        with core_errors():
            result = zonal_statistics(zonal, progress.sub(2, 95))
        del geojson

        # Pass 2: every input feature with its attributes, geometry and statistics.
        names = result.band_names
        spec = [(f"{b}_mean", float) for b in names] + [(f"{b}_std", float) for b in names]
        spec += [("pixel_count", int)] + [(f"pc{i + 1}", float) for i in range(k)]
        fields = QgsProcessingUtils.combineFields(zones.fields(), make_fields(spec))
        sink, dest_id = self.parameterAsSink(parameters, "OUTPUT", context, fields, zones.wkbType(), zones.sourceCrs())
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
        rows = _Rows(result, k)
        index = {fid: i for i, fid in enumerate(kept_fids)}
        empty_row = [None] * len(spec)
        for n, feat in enumerate(zones.getFeatures(QgsFeatureRequest(), SKIP_GEOMETRY_CHECKS)):
            # No cancellation here: the results are computed, and stopping now would leave a
            # half-written layer behind (the sink cannot be rolled back).
            if n % 500 == 0:
                progress.set_progress(95.0 + 5.0 * n / max(total, 1))
            i = index.get(feat.id())
            out = QgsFeature(fields)
            out.setGeometry(feat.geometry())
            out.setAttributes(list(feat.attributes()) + (empty_row if i is None else rows[i]))
            if not sink.addFeature(out, QgsFeatureSink.Flag.FastInsert):
                raise QgsProcessingException(tr("A feature could not be written to the output layer."))
        if k:
            style_on_load(context, dest_id, None, GraduatedStyle("pc1"))
        return {"OUTPUT": dest_id}


class _Rows:
    """The statistics of zone i as Python values in field order (NaN -> None = NULL)."""

    def __init__(self, result: ZonalStats, k: int):
        parts = [result.mean, result.std] + ([result.pcs] if k else [])
        self.table = np.concatenate(parts, axis=1)
        self.finite = np.isfinite(self.table).all(axis=1)
        self.n_stats = 2 * result.mean.shape[1]
        self.counts = result.pixel_count

    def __getitem__(self, i: int) -> list[Any]:
        row = self.table[i].astype(np.float64).tolist()
        if not self.finite[i]:
            row = [v if math.isfinite(v) else None for v in row]
        return row[: self.n_stats] + [int(self.counts[i])] + row[self.n_stats :]
