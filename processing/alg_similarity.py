"""embeddings:similarity - Similarity to exemplars."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from qgis.core import (
    QgsFeatureSink,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsWkbTypes,
)

from ..core.similarity import AGGREGATES, Exemplar, SimilarityRequest, similarity_map
from .base import (
    EmbeddingsAlgorithm,
    FeedbackProgress,
    core_errors,
    crs_string,
    make_fields,
    qgs_crs,
    tr,
    with_help,
    write_features,
)
from .compat import (
    GEOMETRY_POINT,
    GEOMETRY_POLYGON,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    SOURCE_POINT,
    SOURCE_POLYGON,
    WKB_POINT,
    WKB_POLYGON,
)
from .styles import PseudocolorStyle, QmlStyle, style_on_load

AGGREGATE_LABELS = ("Mean of the exemplars (one query vector)", "Maximum similarity over the exemplars")
NAME_FIELDS = ("name", "label", "title")
TOP_K_FIELDS = [("rank", int), ("score", float), ("x", float), ("y", float), ("lon", float), ("lat", float)]
AREA_FIELDS = [("area_id", int), ("area_m2", float), ("pixels", int), ("mean_score", float), ("max_score", float)]


class SimilarityAlgorithm(EmbeddingsAlgorithm):
    icon_name = "similarity.svg"
    help_text = (
        "Maps how much every pixel of an extent looks like one or more example places "
        "(exemplars), and finds the most similar places.\n\n"
        "Inputs: a collection, year and extent (as in 'Load embeddings for extent'), or an "
        "embedding raster as INPUT (its own grid, cropped to the extent if one is given; year, "
        "target CRS and resolution are then not used). TARGET_CRS, RESOLUTION and MAX_PIXELS: the output "
        "grid's CRS (empty = the UTM zone of the extent), pixel size in metres and pixel limit; "
        "ALIGN_TO_TILES puts a coarser grid on the tiles' pixel lattice so that their overviews are read "
        "(the click-to-search panel does). EXEMPLARS: point or polygon features in any "
        "CRS; a point takes the pixel under it, a polygon the mean of the pixels whose centres lie "
        "in it (renormalised; a polygon smaller than a pixel takes the pixel under its centroid); at a resolution "
        "coarser than the collection's, a point takes the output pixel under it (the averaged vector the map shows). "
        "Exemplars may lie outside the extent: they are read wherever they are. NEGATIVES "
        "(optional): places that should score low. AGGREGATE: the cosine with the mean of the "
        "exemplars (default), or the maximum cosine over the exemplars.\n\n"
        "Output: a float32 GeoTIFF of cosine similarity in [-1, 1] (1 = the same embedding), no-data "
        "-9999 where the embeddings have none. With negatives the score is cos(x, positives) - "
        "cos(x, negatives), in [-2, 2]: positive where a pixel is closer to the exemplars than to the "
        "negatives. It loads with the magma ramp stretched from the 2nd percentile of the scores to "
        "their maximum.\n\n"
        "TOP_K > 0 writes the K most similar places at least MIN_SEPARATION_M metres apart (pixel "
        "centres, fields rank and score, in the output's CRS), and at least EXCLUDE_RADIUS_M metres "
        "from the exemplars and negatives (default 0: the exemplars themselves may rank first). The search is exact: faiss inner "
        "products over each block's vectors (NumPy when faiss is not installed, with the same "
        "result; the maximum with negatives, not an inner product, always ranks the scores with "
        "NumPy). THRESHOLD (optional) writes the connected areas scoring above it as OUTPUT_AREAS, with their area "
        "in m2 and mean score; areas under MIN_AREA_M2 are left out.\n\n"
        "DASK_SCHEDULER (advanced, optional): the address of a Dask scheduler (tcp://host:8786) whose "
        "workers compute the map, bit for bit the same as on this computer (README: Larger than one computer).\n\n"
        "Example (qgis_process): qgis_process run embeddings:similarity -- "
        "SOURCE=/data/aef/aef_index.csv YEAR=2024 "
        'EXTENT="-90.02,-89.98,44.44,44.46 [EPSG:4326]" EXEMPLARS=/data/fields.geojson TOP_K=5 '
        "OUTPUT=/tmp/similarity.tif OUTPUT_TOP_K=/tmp/top5.gpkg"
    )

    def name(self) -> str:
        return "similarity"

    def displayName(self) -> str:
        return tr("Similarity to exemplars")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_source_parameters(optional_extent=True)
        self.add_input_raster(
            "INPUT",
            "Embedding raster (instead of a collection)",
            "An embedding raster (for example from 'Load embeddings for extent'); when given, the "
            "collection, year, target CRS and resolution are not used, and the exemplars are read "
            "from this raster.",
        )
        kinds = [SOURCE_POINT, SOURCE_POLYGON]
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSource("EXEMPLARS", tr("Exemplars (points or polygons)"), kinds),
                "Example places: points (the pixel under each) or polygons (the renormalised mean of "
                "their pixels), in any CRS, inside or outside the extent. A 'name' field, if any, "
                "names them in messages.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSource("NEGATIVES", tr("Negative exemplars"), kinds, optional=True),
                "Places that must score low (for example a similar-looking class to tell apart). The "
                "score becomes cos(x, positives) - cos(x, negatives).",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterEnum(
                    "AGGREGATE", tr("Combine exemplars by"), options=[tr(a) for a in AGGREGATE_LABELS], defaultValue=0
                ),
                "Mean: cosine with the renormalised mean of the exemplars (one query; best when the "
                "exemplars show one kind of place). Maximum: the best cosine over the exemplars (keeps "
                "several different kinds of place apart).",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "TOP_K", tr("Number of top places (0 = none)"), NUMBER_INTEGER, 10, False, 0
                ),
                "How many of the most similar distinct places to write to the top places layer; 0 skips the search.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "MIN_SEPARATION_M",
                    tr("Minimum distance between top places (metres)"),
                    NUMBER_DOUBLE,
                    100.0,
                    False,
                    0.0,
                ),
                "Top places are at least this far apart (between pixel centres), so that one large "
                "similar field yields one place, not K neighbouring pixels. 0 = the K best pixels.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "EXCLUDE_RADIUS_M",
                    tr("Keep top places this far from the exemplars (metres)"),
                    NUMBER_DOUBLE,
                    0.0,
                    True,  # optional: models made before it keep running
                    0.0,
                ),
                "Top places are at least this far from every exemplar and negative (from a polygon's "
                "bounding box): places like the exemplars, elsewhere. 0 = the exemplars' own pixels may "
                "rank first.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "THRESHOLD",
                    tr("Score threshold for areas"),
                    NUMBER_DOUBLE,
                    None,
                    True,
                    -2.0,
                    2.0,
                ),
                "When set, the connected areas (8-connected pixels) scoring above this value are written "
                "as polygons with their area and mean score. Empty: no areas.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "MIN_AREA_M2", tr("Smallest area to keep (m²)"), NUMBER_DOUBLE, 0.0, True, 0.0
                ),
                "Areas above the threshold smaller than this are left out of the similar areas (no "
                "speckle of single pixels); 0 keeps every area.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterBoolean(
                    "ALIGN_TO_TILES",
                    tr("Align a coarser grid to the tiles' pixels (reads their overviews)"),
                    False,
                    optional=True,
                ),
                "At a resolution coarser than the collection's 10 m, put the output grid's lines on the "
                "pixel lattice of the tile under the extent, so that the tiles' overviews (means of 2 x 2, "
                "4 x 4 ... pixels) are read instead of every native pixel: far fewer bytes, the same "
                "averages. Off: the grid lines fall on multiples of the resolution.",
                advanced=True,
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination("OUTPUT", tr("Similarity")),
                "The float32 GeoTIFF of scores to write (.tif); no-data -9999.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSink(
                    "OUTPUT_TOP_K",
                    tr("Top places"),
                    SOURCE_POINT,
                    defaultValue=QgsProcessing.TEMPORARY_OUTPUT,
                    optional=True,
                    createByDefault=True,
                ),
                "Points at the centres of the top pixels, in the output's CRS: rank (1 = best), score, x/y "
                "and lon/lat. Written when the number of top places is above 0.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSink(
                    "OUTPUT_AREAS",
                    tr("Similar areas"),
                    SOURCE_POLYGON,
                    defaultValue=QgsProcessing.TEMPORARY_OUTPUT,
                    optional=True,
                    createByDefault=True,
                ),
                "Polygons of the areas scoring above the threshold (area_m2, pixels, mean_score, "
                "max_score), largest first. Written when a threshold is set.",
            )
        )
        self.add_scheduler_parameter()
        self.addOutput(QgsProcessingOutputNumber("VALID_PIXELS", tr("Pixels with a score")))
        self.addOutput(QgsProcessingOutputNumber("SCORE_LOW", tr("2nd percentile of the scores")))
        self.addOutput(QgsProcessingOutputNumber("SCORE_MAX", tr("Highest score")))
        self.addOutput(QgsProcessingOutputNumber("RESOLUTION_USED", tr("Pixel size of the output (metres)")))

    # Inputs ------------------------------------------------------------------------
    def optional_number(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> float:
        """An optional number parameter; 0 when it is not given."""
        if parameters.get(name) in (None, ""):
            return 0.0
        return self.parameterAsDouble(parameters, name, context)

    def exemplars(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> list[Exemplar]:
        """The features of EXEMPLARS or NEGATIVES as GeoJSON in their layer's CRS."""
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            if name == "NEGATIVES":
                return []
            raise QgsProcessingException(tr("Choose a point or polygon layer of exemplars."))
        kind = "exemplar" if name == "EXEMPLARS" else "negative"
        if source.featureCount() == 0:  # before the CRS: an empty layer often has none
            if name == "NEGATIVES":
                return []
            raise QgsProcessingException(tr("The exemplar layer has no features; add at least one point or polygon."))
        crs = crs_string(source.sourceCrs())
        if crs is None:
            raise QgsProcessingException(
                tr("The {kind} layer has no coordinate reference system; set one on the layer.").format(kind=kind)
            )
        field_names = [f.name() for f in source.fields()]
        label_field = next((f for f in field_names if f.lower() in NAME_FIELDS), None)
        out = []
        for feature in source.getFeatures():
            if feedback.isCanceled():
                break
            label = f"feature {feature.id()}"
            if label_field is not None and feature[label_field] not in (None, ""):
                label += f" ('{feature[label_field]}')"
            geom = feature.geometry()
            if geom is None or geom.isNull() or geom.isEmpty():
                raise QgsProcessingException(
                    tr("The {kind} {label} has no geometry; remove it or draw it.").format(kind=kind, label=label)
                )
            if QgsWkbTypes.geometryType(geom.wkbType()) not in (GEOMETRY_POINT, GEOMETRY_POLYGON):
                raise QgsProcessingException(
                    tr("The {kind} {label} is not a point or a polygon.").format(kind=kind, label=label)
                )
            out.append(Exemplar(json.loads(geom.asJson(17)), crs, label, kind))
        if not out and name == "EXEMPLARS":
            raise QgsProcessingException(tr("The exemplar layer has no features; add at least one point or polygon."))
        return out

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        source = self.source_spec(parameters, context)
        grid = replace(
            self.grid_spec(parameters, context),
            align_to_tiles=self.parameterAsBool(parameters, "ALIGN_TO_TILES", context),
        )
        if not source.raster and grid.extent is None:
            raise QgsProcessingException(
                tr("Choose an extent to map (for example the map canvas extent), or an embedding raster as input.")
            )
        output = self.geotiff_output(parameters, context)
        threshold = None
        if parameters.get("THRESHOLD") not in (None, ""):
            threshold = self.parameterAsDouble(parameters, "THRESHOLD", context)
        top_k = self.parameterAsInt(parameters, "TOP_K", context)
        request = SimilarityRequest(
            exemplars=self.exemplars(parameters, "EXEMPLARS", context, feedback),
            negatives=self.exemplars(parameters, "NEGATIVES", context, feedback),
            output=output,
            source=source,
            grid=grid,
            aggregate=AGGREGATES[self.parameterAsEnum(parameters, "AGGREGATE", context)],
            top_k=top_k,
            min_separation_m=self.parameterAsDouble(parameters, "MIN_SEPARATION_M", context),
            threshold=threshold,
            scheduler=self.scheduler(parameters, context),
            exclude_radius_m=self.optional_number(parameters, "EXCLUDE_RADIUS_M", context),
            min_area_m2=self.optional_number(parameters, "MIN_AREA_M2", context),
        )
        with core_errors():
            result = similarity_map(request, FeedbackProgress(feedback))
        results: dict[str, Any] = {
            "OUTPUT": output,
            "VALID_PIXELS": result.valid_pixels,
            "SCORE_LOW": result.score_low,
            "SCORE_MAX": result.score_max,
            "RESOLUTION_USED": result.grid.resolution,
            "OUTPUT_TOP_K": None,
            "OUTPUT_AREAS": None,
        }
        crs = qgs_crs(result.grid.crs)
        if top_k > 0:
            fields = make_fields(TOP_K_FIELDS)
            sink, dest = self.parameterAsSink(
                parameters,
                "OUTPUT_TOP_K",
                context,
                fields,
                WKB_POINT,
                crs,
                QgsFeatureSink.SinkFlag.RegeneratePrimaryKey,
            )
            if sink is not None:
                rows = [
                    (p.wkt, {"rank": p.rank, "score": p.score, "x": p.x, "y": p.y, "lon": p.lon, "lat": p.lat})
                    for p in result.top
                ]
                write_features(sink, fields, rows)
                results["OUTPUT_TOP_K"] = dest
                style_on_load(context, dest, tr("Top {k} places").format(k=top_k), QmlStyle("similarity_top_k.qml"))
        if threshold is not None:
            fields = make_fields(AREA_FIELDS)
            sink, dest = self.parameterAsSink(
                parameters,
                "OUTPUT_AREAS",
                context,
                fields,
                WKB_POLYGON,
                crs,
                QgsFeatureSink.SinkFlag.RegeneratePrimaryKey,
            )
            if sink is not None:
                rows = [
                    (
                        a.wkt,
                        {
                            "area_id": i + 1,
                            "area_m2": a.area_m2,
                            "pixels": a.pixel_count,
                            "mean_score": a.mean,
                            "max_score": a.max,
                        },
                    )
                    for i, a in enumerate(result.areas)
                ]
                write_features(sink, fields, rows)
                results["OUTPUT_AREAS"] = dest
                style_on_load(
                    context,
                    dest,
                    tr("Similarity above {threshold}").format(threshold=f"{threshold:g}"),
                    QmlStyle("similarity_areas.qml"),
                )
        style_on_load(
            context, output, tr("Similarity"), PseudocolorStyle("similarity.qml", result.score_low, result.score_max)
        )
        return results
