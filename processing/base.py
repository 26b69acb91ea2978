"""What every Earth Embeddings algorithm shares: parameters, feedback and errors."""

from __future__ import annotations

import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core.errors import Cancelled, EmbeddingsError
from ..core.grid import DEFAULT_MAX_PIXELS, keep_proj_context
from ..core.progress import Progress
from .compat import (
    FIELD_DOUBLE,
    FIELD_INT64,
    FIELD_STRING,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    PARAMETER_ADVANCED,
    WKT2_2019,
)

ICONS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icons")

SOURCE_HELP = (
    "The collection to read: a local index file (aef_index.csv, .gpkg or .parquet) or the folder "
    "holding it, an http(s) URL of an index on a mirror, or empty for the public AlphaEarth "
    "Foundations product on Source Cooperative (needs internet)."
)
YEAR_HELP = "The year of the annual embeddings (the public product has 2017-2025)."
EXTENT_HELP = (
    "The area to read, in any CRS; normally the map canvas extent (use the button at the right " "of the field)."
)
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


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthEmbeddings", text)


def with_help(param: QgsProcessingParameterDefinition, text: str, advanced: bool = False):
    param.setHelp(tr(text))
    if advanced:
        param.setFlags(param.flags() | PARAMETER_ADVANCED)
    return param


class FeedbackProgress(Progress):
    """Forwards core progress and messages to a QgsProcessingFeedback."""

    def __init__(self, feedback):
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
            self.feedback.pushWarning(message) if hasattr(self.feedback, "pushWarning") else self.feedback.reportError(
                message
            )


_FIELD_TYPES = {float: FIELD_DOUBLE, int: FIELD_INT64, str: FIELD_STRING}


def make_fields(spec) -> QgsFields:
    """QgsFields from [(name, python type)] (float, int or str)."""
    fields = QgsFields()
    for name, kind in spec:
        fields.append(QgsField(name, _FIELD_TYPES[kind]))
    return fields


def write_features(sink, fields: QgsFields, rows, feedback=None) -> int:
    """Add (wkt, {field: value}) rows to a sink; returns how many were written.

    Not cancellable on purpose: the rows are already computed, writing them is quick, and a
    sink cannot be rolled back, so stopping half-way would leave a half-written layer.
    """
    count = 0
    for wkt, attrs in rows:
        feat = QgsFeature(fields)
        feat.setGeometry(QgsGeometry.fromWkt(wkt))
        for key, value in attrs.items():
            feat[key] = value
        if not sink.addFeature(feat, QgsFeatureSink.Flag.FastInsert):
            raise QgsProcessingException(tr("A feature could not be written to the output layer."))
        count += 1
    return count


def crs_string(crs: QgsCoordinateReferenceSystem) -> str | None:
    """An authority id (EPSG:...) when there is one, else WKT; None for an invalid CRS."""
    if crs is None or not crs.isValid():
        return None
    authid = crs.authid()
    if authid and authid.upper().startswith("EPSG:"):
        return authid
    return crs.toWkt(WKT2_2019)


class EmbeddingsAlgorithm(QgsProcessingAlgorithm):
    """Base class: naming, icons, shared parameters, and turning core errors into sentences."""

    icon_name = "embeddings.svg"
    help_text = ""

    def createInstance(self):
        return type(self)()

    def group(self) -> str:
        return ""

    def groupId(self) -> str:
        return ""

    def icon(self) -> QIcon:
        return QIcon(os.path.join(ICONS, self.icon_name))

    def svgIconPath(self) -> str:
        return os.path.join(ICONS, self.icon_name)

    def shortHelpString(self) -> str:
        return tr(self.help_text)

    def helpUrl(self) -> str:
        return "https://github.com/earth-embeddings/earth-embeddings#algorithms"

    # Shared parameters ---------------------------------------------------------
    def add_source_parameters(self, year_names=("YEAR",), optional_extent=False, extent=True):
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    "SOURCE", tr("Collection (index path or URL; empty = public AEF)"), defaultValue="", optional=True
                ),
                SOURCE_HELP,
            )
        )
        for name in year_names:
            label = {"YEAR": "Year", "YEAR_A": "Year A (before)", "YEAR_B": "Year B (after)"}.get(name, name)
            default = {"YEAR": 2024, "YEAR_A": 2017, "YEAR_B": 2024}.get(name, 2024)
            self.addParameter(
                with_help(
                    QgsProcessingParameterNumber(
                        name,
                        tr(label),
                        NUMBER_INTEGER,
                        defaultValue=default,
                        minValue=1900,
                        maxValue=2200,
                        optional=optional_extent,
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

    def add_input_raster(self, name: str, label: str, help_text: str):
        self.addParameter(with_help(QgsProcessingParameterRasterLayer(name, tr(label), optional=True), help_text))

    def grid_parameters(self, parameters, context) -> dict:
        """Extent (as xmin, ymin, xmax, ymax + CRS string), target CRS, resolution, limit."""
        out = {
            "target_crs": crs_string(self.parameterAsCrs(parameters, "TARGET_CRS", context)),
            "resolution_m": self.parameterAsDouble(parameters, "RESOLUTION", context),
            "max_pixels": self.parameterAsInt(parameters, "MAX_PIXELS", context),
        }
        if self.parameterDefinition("EXTENT") is not None and parameters.get("EXTENT") not in (None, ""):
            rect = self.parameterAsExtent(parameters, "EXTENT", context)
            ecrs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
            if not ecrs.isValid():
                ecrs = context.project().crs() if context.project() else QgsCoordinateReferenceSystem("EPSG:4326")
            if rect.isNull() or rect.isEmpty():
                raise QgsProcessingException(tr("The extent is empty; choose an extent with a width and a height."))
            out["extent"] = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            out["extent_crs"] = crs_string(ecrs) or "EPSG:4326"
        return out

    def source_string(self, parameters, context) -> str:
        return (self.parameterAsString(parameters, "SOURCE", context) or "").strip()

    def raster_path(self, parameters, name: str, context) -> str | None:
        if parameters.get(name) in (None, ""):
            return None
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(tr(f"The raster given as {name} cannot be opened; choose a GDAL raster file."))
        path = layer.source().split("|")[0]
        if layer.providerType() != "gdal" or not path:
            raise QgsProcessingException(
                tr(f"The layer given as {name} is not a raster file on disk; save it as a GeoTIFF first.")
            )
        return path

    def run_core(self, func, feedback, *args, **kwargs):
        """Call into the core; user errors become QgsProcessingException sentences."""
        keep_proj_context()  # algorithms run on QGIS's worker threads: see its docstring
        try:
            return func(*args, **kwargs)
        except Cancelled as exc:
            raise QgsProcessingException(str(exc)) from None
        except EmbeddingsError as exc:
            raise QgsProcessingException(str(exc)) from None
        except MemoryError:
            raise QgsProcessingException(
                tr("Out of memory: choose a smaller extent or a coarser resolution.")
            ) from None
        except OSError as exc:
            raise QgsProcessingException(tr(f"A file could not be read or written: {exc}")) from None
