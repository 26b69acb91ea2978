"""embeddings:change - Change map (1 - cosine) between two years or two embedding rasters."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from ..core.change import DEFAULT_MIN_AREA_M2, DEFAULT_THRESHOLD, ChangeRequest, change_map
from .base import (
    EmbeddingsAlgorithm,
    FeedbackProgress,
    core_errors,
    make_fields,
    qgs_crs,
    tr,
    with_help,
    write_features,
)
from .compat import NUMBER_DOUBLE, SOURCE_POLYGON, WKB_POLYGON
from .styles import QmlStyle, style_on_load

AREA_FIELDS = (("area_m2", float), ("mean_change", float), ("max_change", float))


class ChangeMapAlgorithm(EmbeddingsAlgorithm):
    icon_name = "change.svg"
    help_text = (
        "How much did each pixel change between two years? Writes 1 - cos(a, b) of the two years' "
        "embeddings per pixel (vectors renormalised, so the cosine is exact): 0 = the same, about "
        "0.04 for stable land, 0.3-0.7 for real change (construction, clearing, flooding), up to 2.\n\n"
        "Inputs: the collection (empty = the public product on Source Cooperative), year A (before) "
        "and year B (after), the extent (normally the map canvas), the target CRS (TARGET_CRS; empty = the "
        "UTM zone of the extent), the resolution in metres (RESOLUTION) and the pixel limit (MAX_PIXELS), "
        "exactly as in 'Load embeddings for "
        "extent'. Instead, give two embedding rasters as INPUT_A and INPUT_B (for example two outputs "
        "of 'Load embeddings for extent'): the map then has INPUT_A's grid and INPUT_B is resampled "
        "onto it (nearest neighbour); the extent, CRS and resolution are ignored.\n\n"
        "Outputs: a float32 GeoTIFF of 1 - cosine (unitless, 0..2, no-data -9999 wherever either "
        "year has no data), styled black-blue-cyan-yellow-red over 0 to 0.5 (above 0.5 stays red); "
        "and, optionally, the connected areas above the threshold as polygons (8-connected, in the "
        "map's CRS) with area_m2 (square metres), mean_change and max_change, largest first; areas "
        "below the minimum area (MIN_AREA_M2, m²) are dropped. Optionally an HTML change report "
        "(OUTPUT_REPORT): histogram, percentiles, hectares above 0.1 / 0.2 / 0.3 / 0.5, the largest "
        "change areas with coordinates. The log ends with the number of valid pixels, the "
        "change percentiles p50/p90/p99 and the area above the threshold.\n\n"
        "The two years are read block by block onto one grid, so memory does not grow with the "
        "extent.\n\n"
        "DASK_SCHEDULER (advanced, optional): the address of a Dask scheduler (tcp://host:8786) whose "
        "workers compute the map, bit for bit the same as on this computer (README: Larger than one computer).\n\n"
        "Example (qgis_process): qgis_process run embeddings:change -- SOURCE=/data/aef/aef_index.csv "
        'YEAR_A=2017 YEAR_B=2024 EXTENT="-90.02,-89.98,44.44,44.46 [EPSG:4326]" TARGET_CRS=EPSG:32616 '
        "RESOLUTION=10 THRESHOLD=0.25 OUTPUT=/tmp/change.tif OUTPUT_POLYGONS=/tmp/change_areas.gpkg"
    )

    def name(self) -> str:
        return "change"

    def displayName(self) -> str:
        return tr("Change map (1 - cosine)")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_source_parameters(year_names=("YEAR_A", "YEAR_B"), optional_extent=True)
        self.add_input_raster(
            "INPUT_A",
            "Embedding raster A (before), instead of a collection",
            "Optional: an embedding raster (e.g. written by 'Load embeddings for extent') for the "
            "'before' side. Give INPUT_B too; the change map then has this raster's grid and the "
            "collection, years, extent, CRS and resolution are ignored.",
        )
        self.add_input_raster(
            "INPUT_B",
            "Embedding raster B (after), instead of a collection",
            "Optional: the 'after' embedding raster, with the same number of bands as INPUT_A; it is "
            "resampled onto INPUT_A's grid (nearest neighbour) if the grids differ.",
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "THRESHOLD",
                    tr("Change threshold for areas (1 - cosine)"),
                    NUMBER_DOUBLE,
                    defaultValue=DEFAULT_THRESHOLD,
                    minValue=0.0,
                    maxValue=2.0,
                ),
                "Pixels whose change (1 - cosine, 0..2) is above this value count as changed: they make "
                "up the change areas and the 'area above the threshold' in the log. Stable land is "
                "about 0.04; 0.25 separates real change from noise in most landscapes.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "MIN_AREA_M2",
                    tr("Smallest change area to keep (m²)"),
                    NUMBER_DOUBLE,
                    defaultValue=DEFAULT_MIN_AREA_M2,
                    minValue=0.0,
                ),
                "Change areas smaller than this many square metres are dropped from the polygons "
                "(500 m² = 5 pixels at 10 m), which removes isolated specks.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination("OUTPUT", tr("Change map")),
                "The float32 GeoTIFF to write (.tif): 1 - cosine per pixel, 0..2, no-data -9999.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSink(
                    "OUTPUT_POLYGONS",
                    tr("Change areas"),
                    SOURCE_POLYGON,
                    optional=True,
                    createByDefault=True,
                ),
                "Optional: the connected areas above the threshold as polygons in the change map's CRS, "
                "with area_m2, mean_change and max_change, largest first. Leave unset to skip.",
            )
        )
        self.add_report_parameter()
        self.add_scheduler_parameter()
        for name, label in (
            ("VALID_PIXELS", "Pixels with data in both years"),
            ("CHANGE_P50", "Median change (1 - cosine)"),
            ("CHANGE_P90", "90th percentile of change"),
            ("CHANGE_P99", "99th percentile of change"),
            ("AREA_ABOVE_M2", "Area above the threshold (m²)"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, tr(label)))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        output = self.geotiff_output(parameters, context)
        input_a = self.raster_path(parameters, "INPUT_A", context)
        input_b = self.raster_path(parameters, "INPUT_B", context)
        grid = self.grid_spec(parameters, context)
        if input_a and input_b and grid.extent is not None:
            feedback.pushInfo(tr("Comparing INPUT_A and INPUT_B on INPUT_A's grid; EXTENT is ignored."))
        want_polygons = parameters.get("OUTPUT_POLYGONS") not in (None, "")
        request = ChangeRequest(
            output=output,
            grid=grid,
            collection=self.source_string(parameters, context),
            year_a=self.parameterAsInt(parameters, "YEAR_A", context),
            year_b=self.parameterAsInt(parameters, "YEAR_B", context),
            input_a=input_a,
            input_b=input_b,
            threshold=self.parameterAsDouble(parameters, "THRESHOLD", context),
            min_area_m2=self.parameterAsDouble(parameters, "MIN_AREA_M2", context) if want_polygons else None,
            report=self.report_path(parameters, context),
            scheduler=self.scheduler(parameters, context),
        )
        with core_errors():
            summary = change_map(request, FeedbackProgress(feedback))
        pair = f"{summary.label_a}-{summary.label_b}"
        results: dict[str, Any] = {
            "OUTPUT": output,
            "VALID_PIXELS": summary.valid_pixels,
            "CHANGE_P50": summary.p50,
            "CHANGE_P90": summary.p90,
            "CHANGE_P99": summary.p99,
            "AREA_ABOVE_M2": summary.above_m2,
        }
        if summary.report:
            results["OUTPUT_REPORT"] = summary.report
        if want_polygons:
            fields = make_fields(AREA_FIELDS)
            sink, dest_id = self.parameterAsSink(
                parameters, "OUTPUT_POLYGONS", context, fields, WKB_POLYGON, qgs_crs(summary.grid.crs)
            )
            if sink is not None:
                rows = (
                    (a.wkt, {"area_m2": a.area_m2, "mean_change": a.mean, "max_change": a.max}) for a in summary.areas
                )
                write_features(sink, fields, rows)
                del sink  # flush to disk before QGIS loads it
                results["OUTPUT_POLYGONS"] = dest_id
                style_on_load(
                    context, dest_id, tr("Change areas {pair}").format(pair=pair), QmlStyle("change_areas.qml")
                )
        style_on_load(context, output, tr("Change {pair}").format(pair=pair), QmlStyle("change.qml"))
        feedback.pushInfo(summary.describe())
        return results
