"""What every Earth Embeddings algorithm shares: parameters, feedback and errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsMapLayer,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputHtml,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core.dask_run import PURPOSE as DASK_PURPOSE
from ..core.deps import importable, missing_sentence
from ..core.errors import EmbeddingsError
from ..core.grid import DEFAULT_MAX_PIXELS, GridSpec
from ..core.progress import Progress
from ..core.source import SourceSpec
from ..core.threads import keep_proj_context
from .compat import (
    FIELD_DOUBLE,
    FIELD_INT64,
    FIELD_STRING,
    GEOMETRY_POLYGON,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    PARAMETER_ADVANCED,
    WKT2_2019,
)
from .resources import icon_path

SOURCE_HELP = (
    "The collection to read: a local index file (aef_index.csv, .gpkg or .parquet) or the folder "
    "holding it, an http(s) URL of an index on a mirror, or empty for the public AlphaEarth "
    "Foundations product on Source Cooperative (needs internet). A folder without an index is "
    "read as a collection of its embedding GeoTIFFs (TESSERA, Earth Engine exports, other per-pixel "
    "products: two or more bands, in any CRS); it is scanned once and kept in the cache until its "
    "files change. Years come from year folders (2024/) or the file names (tile_2024.tif); a "
    "folder without years is one collection for any year. Float rasters: NaN and the declared "
    "no-data are no-data, vectors are renormalised; int8 rasters are read as AEF codes (-128 = no-data)."
)
YEAR_HELP = "The year of the annual embeddings (the public product has 2017-2025; a folder without years, any)."
EXTENT_HELP = "The area to read, in any CRS; normally the map canvas extent (use the button at the right of the field)."
CRS_HELP = (
    "CRS of the output grid. Empty: the UTM zone of the extent's centre, in which the "
    "product's own pixels line up with the output (no resampling)."
)
RES_HELP = (
    "Output pixel size in metres. 10 is the product's own; coarser values average the embeddings "
    "(de-quantized, averaged, renormalised)."
)
MAX_PIXELS_HELP = (
    "Refuse extents with more output pixels than this, to protect memory, disk and bandwidth "
    "(200 million pixels of 64 bands are 12.8 GB)."
)
REPORT_HELP = (
    "Optional: an HTML file (one file, pictures embedded) with a histogram of the change values, "
    "the percentiles, the hectares above 0.1 / 0.2 / 0.3 / 0.5 and the largest change areas with "
    "their coordinates{extra}. Processing's results viewer lists it. The pictures need matplotlib; "
    "without it the report has tables instead."
)
DASK_HELP = (
    "Optional: the address of a Dask scheduler (tcp://host:8786) whose workers compute the map; empty = "
    "this computer. Start one with 'dask scheduler' and workers with 'dask worker tcp://host:8786' (they need "
    "numpy, rasterio, pyproj, requests and distributed; the plugin sends its own code). The collection must be "
    "an http(s) URL or a path every worker sees at the same place. With a scheduler, MAX_PIXELS limits only "
    "what this computer computes from the assembled map (areas above a threshold, the report); the map itself "
    "is limited by what this computer can write (the free space of the output folder). The output is the same, "
    "bit for bit, as on this computer."
)
SOURCE_WIDGET = __package__.rsplit(".", 1)[0] + ".plugin.source_widget.SourceWidgetWrapper"
YEAR_LABELS = {"YEAR": ("Year", 2024), "YEAR_A": ("Year A (before)", 2017), "YEAR_B": ("Year B (after)", 2024)}


def tr(text: str) -> str:
    """Translate a fixed text; for texts with values, translate the template, then format it."""
    return QCoreApplication.translate("EarthEmbeddings", text)


def with_help(
    param: QgsProcessingParameterDefinition, text: str, advanced: bool = False
) -> QgsProcessingParameterDefinition:
    param.setHelp(tr(text))
    if advanced:
        param.setFlags(param.flags() | PARAMETER_ADVANCED)
    return param


class FeedbackProgress(Progress):
    """Forwards core progress and messages to a QgsProcessingFeedback."""

    def __init__(self, feedback: QgsProcessingFeedback | None):
        self.feedback = feedback

    def set_progress(self, percent: float) -> None:
        if self.feedback is not None:
            self.feedback.setProgress(percent)

    def is_cancelled(self) -> bool:
        return self.feedback is not None and self.feedback.isCanceled()

    def info(self, message: str) -> None:
        if self.feedback is not None:
            self.feedback.pushInfo(message)

    def warning(self, message: str) -> None:
        if self.feedback is not None:
            self.feedback.pushWarning(message)


@contextlib.contextmanager
def core_errors() -> Iterator[None]:
    """Run a core call: its errors for the user become a QgsProcessingException sentence,
    never a traceback. Algorithms run on QGIS's worker threads: see keep_proj_context."""
    keep_proj_context()
    try:
        yield
    except EmbeddingsError as exc:  # Cancelled included
        raise QgsProcessingException(str(exc)) from None
    except MemoryError:
        raise QgsProcessingException(tr("Out of memory: choose a smaller extent or a coarser resolution.")) from None
    except OSError as exc:
        raise QgsProcessingException(tr("A file could not be read or written: {error}").format(error=exc)) from None


_FIELD_TYPES = {float: FIELD_DOUBLE, int: FIELD_INT64, str: FIELD_STRING}


def make_fields(spec: Iterable[tuple[str, type]]) -> QgsFields:
    """QgsFields from [(name, python type)] (float, int or str)."""
    fields = QgsFields()
    for name, kind in spec:
        fields.append(QgsField(name, _FIELD_TYPES[kind]))
    return fields


def write_features(sink: QgsFeatureSink, fields: QgsFields, rows: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Add (wkt, {field: value}) rows to a sink (wkt "" for a table row without geometry);
    returns how many were written.

    Not cancellable on purpose: the rows are already computed, writing them is quick, and a
    sink cannot be rolled back, so stopping half-way would leave a half-written layer.
    """
    count = 0
    for wkt, attrs in rows:
        feat = QgsFeature(fields)
        if wkt:
            feat.setGeometry(QgsGeometry.fromWkt(wkt))
        for key, value in attrs.items():
            feat[key] = value
        if not sink.addFeature(feat, QgsFeatureSink.Flag.FastInsert):
            raise QgsProcessingException(tr("A feature could not be written to the output layer."))
        count += 1
    return count


def usable_polygon(geom: QgsGeometry) -> tuple[QgsGeometry | None, bool]:
    """(valid polygon geometry or None, whether it had to be repaired)."""
    if geom is None or geom.isNull() or geom.isEmpty():
        return None, False
    if QgsWkbTypes.isCurvedType(geom.wkbType()):
        geom = QgsGeometry(geom.constGet().segmentize())
    if geom.type() != GEOMETRY_POLYGON:
        return None, False
    if geom.isGeosValid():
        return geom, False
    fixed = geom.makeValid()
    if fixed is not None and not fixed.isNull() and fixed.type() != GEOMETRY_POLYGON:
        # makeValid can return a collection of polygons and lines; keep the polygons.
        fixed = fixed.convertToType(GEOMETRY_POLYGON, True)
    if fixed is None or fixed.isNull() or fixed.isEmpty() or fixed.area() <= 0:
        return None, False
    return fixed, True


def crs_string(crs: QgsCoordinateReferenceSystem | None) -> str | None:
    """An authority id (EPSG:...) when there is one, else WKT; None for an invalid CRS."""
    if crs is None or not crs.isValid():
        return None
    authid = crs.authid()
    if authid and authid.upper().startswith("EPSG:"):
        return authid
    return crs.toWkt(WKT2_2019)


def qgs_crs(text: str) -> QgsCoordinateReferenceSystem:
    """The QGIS CRS of a core CRS string (an authority id or WKT)."""
    crs = QgsCoordinateReferenceSystem(text)
    return crs if crs.isValid() else QgsCoordinateReferenceSystem.fromWkt(text)


def raster_file(layer: QgsMapLayer | None, name: str) -> str:
    """The file on disk behind a raster layer given as parameter ``name``."""
    if not isinstance(layer, QgsRasterLayer):
        raise QgsProcessingException(
            tr("The raster given as {name} cannot be opened; choose a GDAL raster file.").format(name=name)
        )
    path = layer.source().split("|")[0]
    if layer.providerType() != "gdal" or not path:
        raise QgsProcessingException(
            tr("The layer given as {name} is not a raster file on disk; save it as a GeoTIFF first.").format(name=name)
        )
    return str(path)


class EmbeddingsAlgorithm(QgsProcessingAlgorithm):
    """Base class: naming, icons, shared parameters, and turning core errors into sentences."""

    icon_name = "embeddings.svg"
    help_text = ""

    def createInstance(self) -> QgsProcessingAlgorithm:
        return type(self)()

    def group(self) -> str:
        return ""

    def groupId(self) -> str:
        return ""

    def icon(self) -> QIcon:
        return QIcon(icon_path(self.icon_name))

    def svgIconPath(self) -> str:
        return icon_path(self.icon_name)

    def shortHelpString(self) -> str:
        return tr(self.help_text)

    def helpUrl(self) -> str:
        return "https://github.com/earth-embeddings/earth-embeddings#algorithms"

    # Shared parameters ---------------------------------------------------------
    def add_source_parameters(
        self, year_names: tuple[str, ...] = ("YEAR",), optional_extent: bool = False, extent: bool = True
    ) -> None:
        source = QgsProcessingParameterString(
            "SOURCE", tr("Collection (index, folder or URL; empty = public AEF)"), defaultValue="", optional=True
        )
        # The desktop's picker for a file, a folder or a URL (plugin/source_widget.py).
        source.setMetadata({"widget_wrapper": {"class": SOURCE_WIDGET}})
        self.addParameter(with_help(source, SOURCE_HELP))
        for name in year_names:
            label, default = YEAR_LABELS[name]
            self.addParameter(
                with_help(
                    QgsProcessingParameterNumber(
                        name,
                        tr(label),
                        NUMBER_INTEGER,
                        defaultValue=default,
                        minValue=1900,
                        maxValue=2200,
                    ),
                    YEAR_HELP,
                )
            )
        if extent:
            self.addParameter(
                with_help(QgsProcessingParameterExtent("EXTENT", tr("Extent"), optional=optional_extent), EXTENT_HELP)
            )
        self.addParameter(
            with_help(
                QgsProcessingParameterCrs(
                    "TARGET_CRS", tr("Target CRS (empty = UTM zone of the extent)"), optional=True
                ),
                CRS_HELP,
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "RESOLUTION",
                    tr("Resolution (metres)"),
                    NUMBER_DOUBLE,
                    defaultValue=10.0,
                    minValue=1.0,
                    maxValue=100000.0,
                ),
                RES_HELP,
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "MAX_PIXELS",
                    tr("Largest extent to accept (pixels)"),
                    NUMBER_INTEGER,
                    defaultValue=DEFAULT_MAX_PIXELS,
                    minValue=1,
                ),
                MAX_PIXELS_HELP,
                advanced=True,
            )
        )

    def add_report_parameter(self, extra: str = "") -> None:
        """OUTPUT_REPORT: an HTML file destination, declared as an HTML output so that
        Processing's results viewer lists it."""
        self.addParameter(
            with_help(
                QgsProcessingParameterFileDestination(
                    "OUTPUT_REPORT",
                    tr("Change report"),
                    tr("HTML files (*.html)"),
                    optional=True,
                    createByDefault=False,
                ),
                REPORT_HELP.format(extra=extra),
            ),
            createOutput=False,
        )
        self.addOutput(QgsProcessingOutputHtml("OUTPUT_REPORT", tr("Change report")))

    def report_path(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        if parameters.get("OUTPUT_REPORT") in (None, ""):
            return None
        return self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context) or None

    def add_scheduler_parameter(self) -> None:
        """DASK_SCHEDULER (advanced): run the map on a Dask cluster (core.dask_run)."""
        text = DASK_HELP
        if not importable("dask.distributed"):
            text += " " + missing_sentence("dask.distributed", DASK_PURPOSE)
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    "DASK_SCHEDULER", tr("Dask scheduler (empty = this computer)"), defaultValue="", optional=True
                ),
                text,
                advanced=True,
            )
        )

    def scheduler(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        return (self.parameterAsString(parameters, "DASK_SCHEDULER", context) or "").strip() or None

    def add_input_raster(self, name: str, label: str, help_text: str) -> None:
        """An embedding raster that replaces the collection: under Advanced, the collection reads first."""
        self.addParameter(
            with_help(QgsProcessingParameterRasterLayer(name, tr(label), optional=True), help_text, advanced=True)
        )

    # Reading parameters ----------------------------------------------------------
    def grid_spec(self, parameters: dict[str, Any], context: QgsProcessingContext) -> GridSpec:
        """Extent (xmin, ymin, xmax, ymax + its CRS, when given), target CRS, resolution, limit."""
        extent = extent_crs = None
        if self.parameterDefinition("EXTENT") is not None and parameters.get("EXTENT") not in (None, ""):
            rect = self.parameterAsExtent(parameters, "EXTENT", context)
            ecrs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
            if not ecrs.isValid():
                ecrs = context.project().crs() if context.project() else QgsCoordinateReferenceSystem("EPSG:4326")
            if rect.isNull() or rect.isEmpty():
                raise QgsProcessingException(tr("The extent is empty; choose an extent with a width and a height."))
            extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            extent_crs = crs_string(ecrs) or "EPSG:4326"
        return GridSpec(
            extent=extent,
            extent_crs=extent_crs,
            target_crs=crs_string(self.parameterAsCrs(parameters, "TARGET_CRS", context)),
            resolution_m=self.parameterAsDouble(parameters, "RESOLUTION", context),
            max_pixels=self.parameterAsInt(parameters, "MAX_PIXELS", context),
        )

    def source_string(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        return (self.parameterAsString(parameters, "SOURCE", context) or "").strip()

    def source_spec(
        self, parameters: dict[str, Any], context: QgsProcessingContext, year: str = "YEAR", raster: str = "INPUT"
    ) -> SourceSpec:
        """The collection and year, or the input raster when one is given."""
        return SourceSpec(
            collection=self.source_string(parameters, context),
            year=self.parameterAsInt(parameters, year, context),
            raster=self.raster_path(parameters, raster, context) if self.parameterDefinition(raster) else None,
        )

    def raster_path(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str | None:
        if parameters.get(name) in (None, ""):
            return None
        return raster_file(self.parameterAsRasterLayer(parameters, name, context), name)

    def raster_paths(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> list[str]:
        """The files of a multiple-raster parameter, in the order given."""
        if parameters.get(name) in (None, "", []):
            return []
        return [raster_file(layer, name) for layer in self.parameterAsLayerList(parameters, name, context)]

    def geotiff_output(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        output = str(self.parameterAsOutputLayer(parameters, "OUTPUT", context))
        if not output.lower().endswith((".tif", ".tiff")):
            raise QgsProcessingException(tr("The output must be a GeoTIFF file (.tif)."))
        return output
