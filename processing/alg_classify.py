"""embeddings:classify - Classify from labelled places."""

from __future__ import annotations

import json
import math
from typing import Any

from qgis.core import (
    NULL,
    QgsFeatureSource,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from ..core.classify import ClassifyRequest, classify_map
from ..core.labels import ClassValue, LabelledPlace
from ..core.learn import DEFAULT_K_NEIGHBORS, METHODS
from ..core.sampling import DEFAULT_CAP_PER_FEATURE
from .base import EmbeddingsAlgorithm, FeedbackProgress, core_errors, crs_string, tr, usable_polygon, with_help
from .compat import GEOMETRY_POINT, NUMBER_INTEGER, SOURCE_POINT, SOURCE_POLYGON
from .styles import PalettedStyle, save_paletted_style, style_on_load

METHOD_LABELS = (
    "Logistic regression (multinomial, L2)",
    "k nearest neighbours (cosine)",
    "Nearest class centroid (cosine)",
    "Random forest (needs scikit-learn)",
)


def labelled_places(
    source: QgsFeatureSource, field: str, what: str, feedback: QgsProcessingFeedback
) -> list[LabelledPlace]:
    """The features of a point or polygon layer as GeoJSON in the layer's CRS, with the class
    field's value (None where NULL); polygons repaired as for the zones."""
    crs = crs_string(source.sourceCrs())
    if crs is None:
        raise QgsProcessingException(
            tr("The {what} layer has no coordinate reference system; set one on the layer.").format(what=what)
        )
    names = [f.name() for f in source.fields()]
    if field not in names:
        raise QgsProcessingException(
            tr("The {what} layer has no field '{field}'; choose the field that holds the classes ({names}).").format(
                what=what, field=field, names=", ".join(names) or tr("it has no fields")
            )
        )
    out = []
    for feature in source.getFeatures():
        if feedback.isCanceled():
            raise QgsProcessingException(tr("Cancelled by the user; no output was written."))
        label = f"{what} feature {feature.id()}"
        geom = feature.geometry()
        if geom is None or geom.isNull() or geom.isEmpty():
            feedback.pushWarning(tr("The {label} has no geometry and is skipped.").format(label=label))
            continue
        if geom.type() != GEOMETRY_POINT:
            geom, _ = usable_polygon(geom)
            if geom is None:
                feedback.pushWarning(tr("The {label} has no usable polygon and is skipped.").format(label=label))
                continue
        raw = feature[field]
        value: ClassValue = None if raw is None or raw == NULL else raw
        if value is not None and not isinstance(value, (int, float, str)):
            value = str(value)
        out.append(LabelledPlace(json.loads(geom.asJson(17)), crs, value, label))
    if not out:
        raise QgsProcessingException(
            tr("The {what} layer has no features with a geometry; add labelled points or polygons.").format(what=what)
        )
    return out


class ClassifyAlgorithm(EmbeddingsAlgorithm):
    icon_name = "embeddings.svg"
    help_text = (
        "Maps classes (land cover, crops, anything you can label) from a few labelled places: a "
        "classifier learns from the embeddings of the labelled pixels and is applied to every pixel "
        "of the extent, block by block.\n\n"
        "Inputs: a collection, year and extent (or an embedding raster as INPUT), as in 'Load "
        "embeddings for extent'. TRAINING: points or polygons in any CRS, inside or outside the extent, "
        "with a class field (CLASS_FIELD, whole numbers or text). They are read on the output grid "
        "(same year, CRS, resolution and pixel edges): a point takes the pixel under it, a polygon the "
        "pixels whose centres lie inside, at most CAP_PER_FEATURE (default 200) drawn at random per "
        "polygon so that one big polygon does not swamp the others (a polygon smaller than a pixel "
        "takes the pixel under its centroid). Places on no-data are skipped with a warning.\n\n"
        "METHOD: logistic regression (multinomial, L2-regularised; the default: the standard linear "
        "probe on embeddings), k nearest neighbours by cosine (K_NEIGHBORS, faiss when installed), "
        "nearest class centroid by cosine, or a random forest (only with scikit-learn installed). "
        "Every method is deterministic for a given SEED.\n\n"
        "Output: the class raster. Whole-number classes keep their values (class 0 stays 0); text "
        "classes get codes 1..N in sorted order. uint8 with no-data 255 when every code fits 0..254, "
        "else int16 with no-data -32768. It loads with one distinct colour and the class name per "
        "class, and the style is saved beside it (<name>.qml) so the names come back when it is "
        "reopened. OUTPUT_CONFIDENCE (optional, float32, no-data -9999): the winning class's "
        "probability (logistic, forest), its share of the K votes (kNN), or the cosine margin to the "
        "runner-up (centroid).\n\n"
        "Accuracy is never measured on the pixels trained on: on the VALIDATION places when given "
        "(same class field; at most 5,000 random pixels per polygon; the figures are those of the "
        "written map at those pixels), else by stratified k-fold cross-validation, k = min(5, places "
        "of the smallest class), grouped by place (a polygon's pixels stay in one fold). The log "
        "shows the confusion matrix, per-class precision and recall; OVERALL_ACCURACY (0-1) and "
        "KAPPA are returned, and OUTPUT_REPORT writes them as HTML or CSV.\n\n"
        "OUTPUT_MODEL saves the fitted model (logistic, kNN or centroid; plain arrays in an .npz, "
        "never pickle, so a shared model cannot run code). Give it as MODEL (TRAINING is then not "
        "needed) to classify another year or area without retraining; a model for another band "
        "count is refused. Random forests cannot be saved.\n\n"
        "Source keys: SOURCE, YEAR, EXTENT, TARGET_CRS, RESOLUTION, MAX_PIXELS or INPUT. Other keys: "
        "TRAINING, CLASS_FIELD, METHOD (0-3), K_NEIGHBORS, SEED, CAP_PER_FEATURE, VALIDATION, MODEL, "
        "OUTPUT, OUTPUT_CONFIDENCE, OUTPUT_MODEL, OUTPUT_REPORT.\n\n"
        "Example (qgis_process): qgis_process run embeddings:classify -- SOURCE=/data/aef/aef_index.csv "
        'YEAR=2017 EXTENT="-90.02,-89.98,44.44,44.46 [EPSG:4326]" TRAINING=/data/training.geojson '
        "CLASS_FIELD=class OUTPUT=/tmp/classes.tif OUTPUT_MODEL=/tmp/landcover.npz"
    )

    def name(self) -> str:
        return "classify"

    def displayName(self) -> str:
        return tr("Classify from labelled places")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_source_parameters(optional_extent=True)
        self.add_input_raster(
            "INPUT",
            "Embedding raster (instead of a collection)",
            "An embedding raster (for example from 'Load embeddings for extent'); when given, the "
            "collection, year, target CRS and resolution are not used and the labels are read from it.",
        )
        kinds = [SOURCE_POINT, SOURCE_POLYGON]
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSource("TRAINING", tr("Training places"), kinds, optional=True),
                "Labelled points or polygons, any CRS, with the class in CLASS_FIELD. Not needed with MODEL.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterField(
                    "CLASS_FIELD",
                    tr("Class field"),
                    defaultValue="class",
                    parentLayerParameterName="TRAINING",
                    optional=True,
                ),
                "The field holding each place's class: whole numbers (kept as the raster's values) or text "
                "(coded 1..N in sorted order). The validation layer must have a field of the same name.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterEnum(
                    "METHOD", tr("Method"), options=[tr(m) for m in METHOD_LABELS], defaultValue=0
                ),
                "0 logistic regression (default), 1 k nearest neighbours, 2 nearest class centroid, "
                "3 random forest (scikit-learn must be installed into QGIS's Python).",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "K_NEIGHBORS", tr("Neighbours (kNN)"), NUMBER_INTEGER, DEFAULT_K_NEIGHBORS, False, 1
                ),
                "How many nearest labelled pixels vote (k nearest neighbours only); at most the number of "
                "labelled pixels.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber("SEED", tr("Random seed"), NUMBER_INTEGER, 0, False, 0),
                "Seeds the per-polygon pixel draw, the cross-validation folds and the random forest: the "
                "same inputs and seed give the same map.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "CAP_PER_FEATURE",
                    tr("Most pixels per training polygon"),
                    NUMBER_INTEGER,
                    DEFAULT_CAP_PER_FEATURE,
                    False,
                    1,
                ),
                "A polygon with more pixel centres inside than this contributes this many, drawn at random.",
                advanced=True,
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSource("VALIDATION", tr("Validation places"), kinds, optional=True),
                "Labelled places kept apart for measuring accuracy (same class field). Without them the "
                "accuracy comes from grouped cross-validation on the training places.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFile(
                    "MODEL", tr("Saved model (instead of training)"), extension="npz", optional=True
                ),
                "A model file written by OUTPUT_MODEL: it classifies this extent and year without "
                "retraining. Its band count must match the embeddings.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination("OUTPUT", tr("Classes")),
                "The class raster (.tif): uint8 (no-data 255) or int16 (no-data -32768), styled by class.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination(
                    "OUTPUT_CONFIDENCE", tr("Confidence"), optional=True, createByDefault=False
                ),
                "Optional float32 raster (no-data -9999): probability (logistic, forest), vote share "
                "(kNN) or cosine margin (centroid) of the winning class.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFileDestination(
                    "OUTPUT_MODEL", tr("Model file"), "NumPy archive (*.npz)", optional=True, createByDefault=False
                ),
                "Optional: save the fitted model (.npz of plain arrays) to apply later with MODEL.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFileDestination(
                    "OUTPUT_REPORT",
                    tr("Accuracy report"),
                    "HTML (*.html);;CSV (*.csv)",
                    optional=True,
                    createByDefault=False,
                ),
                "Optional: overall accuracy, kappa, per-class precision and recall, and the confusion "
                "matrix, as HTML or CSV.",
            )
        )
        self.addOutput(QgsProcessingOutputNumber("OVERALL_ACCURACY", tr("Overall accuracy (0-1)")))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", tr("Cohen's kappa")))
        self.addOutput(QgsProcessingOutputNumber("CLASSES", tr("Number of classes")))
        self.addOutput(QgsProcessingOutputString("CLASS_ACCURACY", tr("Per-class precision and recall (JSON)")))

    def places(
        self,
        parameters: dict[str, Any],
        name: str,
        field: str,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> list[LabelledPlace]:
        if parameters.get(name) in (None, ""):
            return []
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, name))
        return labelled_places(source, field, "training" if name == "TRAINING" else "validation", feedback)

    def file_output(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str | None:
        if parameters.get(name) in (None, ""):
            return None
        value = self.parameterAsFileOutput(parameters, name, context)
        return str(value) if value else None

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        source = self.source_spec(parameters, context)
        grid = self.grid_spec(parameters, context)
        if not source.raster and grid.extent is None:
            raise QgsProcessingException(
                tr("Choose an extent to classify (for example the map canvas extent), or an embedding raster as input.")
            )
        output = self.geotiff_output(parameters, context)
        model = self.parameterAsFile(parameters, "MODEL", context) or None
        field = self.parameterAsString(parameters, "CLASS_FIELD", context) or ""
        training = [] if model else self.places(parameters, "TRAINING", field, context, feedback)
        if not model and not training:
            raise QgsProcessingException(
                tr("Give training places (points or polygons with a class field), or a saved model file as MODEL.")
            )
        confidence = None
        if parameters.get("OUTPUT_CONFIDENCE") not in (None, ""):
            confidence = str(self.parameterAsOutputLayer(parameters, "OUTPUT_CONFIDENCE", context)) or None
        request = ClassifyRequest(
            output=output,
            source=source,
            grid=grid,
            training=training,
            validation=self.places(parameters, "VALIDATION", field, context, feedback),
            class_field=field,
            method=METHODS[self.parameterAsEnum(parameters, "METHOD", context)],
            k_neighbors=self.parameterAsInt(parameters, "K_NEIGHBORS", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            cap_per_feature=self.parameterAsInt(parameters, "CAP_PER_FEATURE", context),
            model=model,
            model_output=self.file_output(parameters, "OUTPUT_MODEL", context),
            confidence_output=confidence,
            report_output=self.file_output(parameters, "OUTPUT_REPORT", context),
        )
        with core_errors():
            result = classify_map(request, FeedbackProgress(feedback))
        classes = [(c.code, c.name, c.colour) for c in result.classes]
        if save_paletted_style(output, classes) is None:
            feedback.pushWarning(tr("The class style could not be saved beside {output}.").format(output=output))
        style_on_load(context, output, tr("Classes"), PalettedStyle(classes))
        per_class = {}
        if result.assessment is not None:
            a = result.assessment
            for c, p, r in zip(result.classes, a.precision, a.recall):
                per_class[c.name] = {
                    "code": c.code,
                    "precision": None if not math.isfinite(p) else round(float(p), 4),
                    "recall": None if not math.isfinite(r) else round(float(r), 4),
                }
        return {
            "OUTPUT": output,
            "OUTPUT_CONFIDENCE": result.confidence_path,
            "OUTPUT_MODEL": result.model_path,
            "OUTPUT_REPORT": result.report_path,
            "OVERALL_ACCURACY": None if result.assessment is None else result.overall_accuracy,
            "KAPPA": None if result.assessment is None or not math.isfinite(result.kappa) else result.kappa,
            "CLASSES": len(result.classes),
            "CLASS_ACCURACY": json.dumps(per_class),
        }
