"""embeddings:trajectory - Change over years: change to a baseline per year, year of change,
largest step, anomaly and a change report."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.change import DEFAULT_THRESHOLD
from ..core.trajectory import TrajectoryRequest, trajectory_map
from .base import (
    EmbeddingsAlgorithm,
    FeedbackProgress,
    core_errors,
    make_fields,
    tr,
    with_help,
    write_features,
)
from .compat import NUMBER_DOUBLE, SOURCE_RASTER, SOURCE_TABLE, WKB_NO_GEOMETRY
from .styles import ChangeBandStyle, YearStyle, style_on_load

TABLE_FIELDS = (("year", int), ("persistent_ha", float), ("temporary_ha", float), ("valid_ha", float))
OPTIONAL_RASTERS = ("OUTPUT_MAGNITUDE", "OUTPUT_STEP_YEAR", "OUTPUT_ANOMALY")


class TrajectoryAlgorithm(EmbeddingsAlgorithm):
    icon_name = "change.svg"
    help_text = (
        "When did each pixel change, did it stay changed, and which year was unusual? Compares every "
        "year with a baseline (1 - cosine of the embeddings, as in 'Change map'): 0 = the same, about "
        "0.04 for stable land, 0.3-0.7 for real change.\n\n"
        "Inputs: the collection, the years (YEARS: '2018-2024' or '2017, 2019, 2024'; empty = every "
        "year the collection has for the extent), the baseline (BASELINE_YEARS, same syntax; empty = the "
        "first year; several years = their renormalised mean; they must come before the other years), "
        "the extent, TARGET_CRS, RESOLUTION and MAX_PIXELS as in 'Load embeddings for extent'. Instead of "
        "a collection, give several embedding rasters as INPUTS, one per year: a raster's year is the one "
        "'Load embeddings for extent' recorded in it, else a four-digit year in its file name; the maps "
        "then have the grid of the earliest year's raster and the extent is ignored.\n\n"
        "Outputs: OUTPUT, one float32 band per year after the baseline (band names = the years): 1 - "
        "cos(year, baseline), no-data -9999; shown like the change map on its last band. OUTPUT_YEAR "
        "(int16): since when the pixel has stayed changed, the first year Y such that Y and every later "
        "year with data differ from the baseline by at least THRESHOLD; 0 for stable land and for a "
        "disturbance that came back; no-data -1 only where fewer than two years have data; shown with "
        "one colour per year. Optional: OUTPUT_MAGNITUDE, the largest change between consecutive years "
        "with data, and OUTPUT_STEP_YEAR, the later year of that step (0 where it is below the "
        "threshold); OUTPUT_ANOMALY, one band per year, 1 - cos(year, mean of the other years): which "
        "year was unusual. OUTPUT_TABLE: per year, the hectares that became persistently changed and "
        "the hectares disturbed only temporarily. OUTPUT_REPORT: an HTML change report.\n\n"
        "A pixel without data in some year uses the years it has: a step spans the missing year, and "
        "where the baseline has no data the pixel's first year with data is its baseline.\n\n"
        "Every year of a block is read at once (years x 64 bytes a pixel), block by block, so memory "
        "does not grow with the extent.\n\n"
        "Example (qgis_process): qgis_process run embeddings:trajectory -- SOURCE=/data/aef/aef_index.csv "
        'YEARS=2017-2024 EXTENT="-90.02,-89.98,44.44,44.46 [EPSG:4326]" THRESHOLD=0.25 '
        "OUTPUT=/tmp/change_by_year.tif OUTPUT_YEAR=/tmp/year_of_change.tif OUTPUT_REPORT=/tmp/report.html"
    )

    def name(self) -> str:
        return "trajectory"

    def displayName(self) -> str:
        return tr("Change over years")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_source_parameters(year_names=(), optional_extent=True)
        self.addParameter(
            with_help(
                QgsProcessingParameterString("YEARS", tr("Years (e.g. 2018-2024 or 2017, 2019, 2024)"), optional=True),
                "The years to compare, as a range (2018-2024), a list (2017, 2019, 2024) or both; empty = "
                "every year the collection (or INPUTS) has for the extent. At least two years.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    "BASELINE_YEARS", tr("Baseline years (empty = the first year)"), optional=True
                ),
                "The year(s) every other year is compared with, written like YEARS; empty = the first year. "
                "Several years are averaged (renormalised mean of their vectors). Baseline years come "
                "before the other years and get no band in OUTPUT.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterMultipleLayers(
                    "INPUTS", tr("Embedding rasters, one per year"), SOURCE_RASTER, optional=True
                ),
                "Optional, instead of a collection: two or more embedding rasters with the same number of "
                "bands, one per year (for example outputs of 'Load embeddings for extent', which records the "
                "year; otherwise the year is read from a four-digit year in the file name).",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "THRESHOLD",
                    tr("Change threshold (1 - cosine)"),
                    NUMBER_DOUBLE,
                    defaultValue=DEFAULT_THRESHOLD,
                    minValue=0.0,
                    maxValue=2.0,
                ),
                "A year counts as changed at a pixel when it differs from the baseline by at least this "
                "(1 - cosine, 0..2). Stable land is about 0.04; 0.25 separates real change from noise in "
                "most landscapes.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination("OUTPUT", tr("Change per year")),
                "The float32 GeoTIFF (.tif): one band per year after the baseline, 1 - cosine to the "
                "baseline, no-data -9999.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination("OUTPUT_YEAR", tr("Year of change")),
                "The int16 GeoTIFF (.tif): since when the pixel has stayed changed; 0 = not persistently "
                "changed; -1 (no-data) where fewer than two years have data.",
            )
        )
        for name, label, text in (
            (
                "OUTPUT_MAGNITUDE",
                "Largest step between years",
                "Optional float32 GeoTIFF: the largest 1 - cosine between consecutive years with data.",
            ),
            (
                "OUTPUT_STEP_YEAR",
                "Year of the largest step",
                "Optional int16 GeoTIFF: the later year of the largest step; 0 where that step is below "
                "the threshold, -1 where fewer than two years have data.",
            ),
            (
                "OUTPUT_ANOMALY",
                "Anomaly per year",
                "Optional float32 GeoTIFF, one band per year: 1 - cosine between the year and the mean "
                "of the other years, high in an unusual year.",
            ),
        ):
            self.addParameter(
                with_help(
                    QgsProcessingParameterRasterDestination(name, tr(label), optional=True, createByDefault=False),
                    text,
                )
            )
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSink(
                    "OUTPUT_TABLE", tr("Hectares per year"), SOURCE_TABLE, optional=True, createByDefault=True
                ),
                "Optional table, one row per year after the baseline: year, persistent_ha (became "
                "persistently changed that year), temporary_ha (differed by the threshold that year but "
                "had not changed for good), valid_ha (area with data that year).",
            )
        )
        self.add_report_parameter(", the per-year table and a chart of hectares per year")
        for name, label in (
            ("VALID_PIXELS", "Pixels with at least two years of data"),
            ("CHANGED_HA", "Persistently changed area (ha)"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, tr(label)))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        output = self.geotiff_output(parameters, context)
        output_year = str(self.parameterAsOutputLayer(parameters, "OUTPUT_YEAR", context))
        optional = {
            name: str(self.parameterAsOutputLayer(parameters, name, context))
            for name in OPTIONAL_RASTERS
            if parameters.get(name) not in (None, "")
        }
        inputs = self.raster_paths(parameters, "INPUTS", context)
        grid = self.grid_spec(parameters, context)
        if inputs and grid.extent is not None:
            feedback.pushInfo(tr("Reading the INPUTS rasters on the earliest year's grid; EXTENT is ignored."))
        report = self.report_path(parameters, context)
        request = TrajectoryRequest(
            output=output,
            output_year=output_year,
            grid=grid,
            collection=self.source_string(parameters, context),
            years=self.parameterAsString(parameters, "YEARS", context),
            baseline_years=self.parameterAsString(parameters, "BASELINE_YEARS", context),
            inputs=tuple(inputs),
            threshold=self.parameterAsDouble(parameters, "THRESHOLD", context),
            output_magnitude=optional.get("OUTPUT_MAGNITUDE"),
            output_step_year=optional.get("OUTPUT_STEP_YEAR"),
            output_anomaly=optional.get("OUTPUT_ANOMALY"),
            report=report,
        )
        with core_errors():
            summary = trajectory_map(request, FeedbackProgress(feedback))
        span = f"{summary.years[0]}-{summary.years[-1]}"
        results: dict[str, Any] = {
            "OUTPUT": output,
            "OUTPUT_YEAR": output_year,
            "VALID_PIXELS": summary.valid_pixels,
            "CHANGED_HA": summary.changed_ha,
            **optional,
        }
        if parameters.get("OUTPUT_TABLE") not in (None, ""):
            fields = make_fields(TABLE_FIELDS)
            sink, dest_id = self.parameterAsSink(parameters, "OUTPUT_TABLE", context, fields, WKB_NO_GEOMETRY)
            if sink is not None:
                rows = summary.totals.rows()
                write_features(sink, fields, (("", {k: r[k] for k, _ in TABLE_FIELDS}) for r in rows))
                del sink
                results["OUTPUT_TABLE"] = dest_id
        if report:
            results["OUTPUT_REPORT"] = report
        last = len(summary.change_years)
        style_on_load(context, output, tr("Change per year {span}").format(span=span), ChangeBandStyle(last))
        style_on_load(
            context,
            output_year,
            tr("Year of change {span}").format(span=span),
            YearStyle(summary.change_years, tr("not persistently changed"), tr("since {year}")),
        )
        if "OUTPUT_MAGNITUDE" in optional:
            style_on_load(
                context, optional["OUTPUT_MAGNITUDE"], tr("Largest step {span}").format(span=span), ChangeBandStyle(1)
            )
        if "OUTPUT_STEP_YEAR" in optional:
            style_on_load(
                context,
                optional["OUTPUT_STEP_YEAR"],
                tr("Year of the largest step {span}").format(span=span),
                YearStyle(summary.years[1:], tr("largest step below the threshold")),
            )
        if "OUTPUT_ANOMALY" in optional:
            style_on_load(
                context,
                optional["OUTPUT_ANOMALY"],
                tr("Anomaly per year {span}").format(span=span),
                ChangeBandStyle(len(summary.years)),
            )
        feedback.pushInfo(summary.describe())
        return results
