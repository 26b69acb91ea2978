"""Write the Processing models shipped in resources/models/ (``make models``).

The .model3 files are committed; this script is how they are made, so that a change to an
algorithm's parameters can be carried into the models by running it again rather than by
editing XML. The provider (processing/provider.py) loads every resources/models/*.model3 as
``embeddings:<file name>``.

Run with the venv's Python: ``.venv/bin/python scripts/make_models.py [--check]``
(--check: exit 1 when a committed model differs from what this script would write).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "resources" / "models"
GROUP = "Models"
EXTENT_EXAMPLE = '"-90.02,-89.98,44.44,44.46 [EPSG:4326]"'


def _qgis():
    from qgis.analysis import QgsNativeAlgorithms
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    registry = QgsApplication.processingRegistry()
    if registry.providerById("native") is None:
        registry.addProvider(QgsNativeAlgorithms())
    import earth_embeddings

    plugin = earth_embeddings.classFactory(None)
    plugin.initProcessing()
    return app, plugin


class ModelBuilder:
    """A thin layer over QgsProcessingModelAlgorithm: inputs, steps and outputs by name."""

    def __init__(self, name: str, help_text: str):
        from qgis.core import QgsProcessingModelAlgorithm

        self.model = QgsProcessingModelAlgorithm(name, GROUP)
        self.help = {"ALG_DESC": help_text, "ALG_CREATOR": "Earth Embeddings", "ALG_VERSION": "1"}
        self.x = 120.0

    def parameter(self, definition, help_text: str):
        """A model input; its help goes both on the parameter and into the help page."""
        from qgis.core import QgsProcessingModelParameter
        from qgis.PyQt.QtCore import QPointF

        definition.setHelp(help_text)
        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(QPointF(self.x, 60.0))
        self.x += 170.0
        self.model.addModelParameter(definition, component)
        self.help[definition.name()] = help_text
        return definition.name()

    def step(self, child_id: str, alg_id: str, sources: dict, outputs=(), row: int = 1):
        """A child algorithm. ``sources`` maps its parameters to ("model", name),
        ("child", child, output), ("expression", text) or ("static", value); ``outputs`` are
        (child output, model output name, description, help) made into model outputs."""
        from qgis.core import (
            QgsProcessingModelChildAlgorithm,
            QgsProcessingModelChildParameterSource,
            QgsProcessingModelOutput,
        )
        from qgis.PyQt.QtCore import QPointF

        child = QgsProcessingModelChildAlgorithm(alg_id)
        if child.algorithm() is None:
            raise RuntimeError(f"{alg_id} is not registered")
        child.setChildId(child_id)
        child.setDescription(child.algorithm().displayName())
        child.setPosition(QPointF(200.0 + 260.0 * (row - 1), 220.0 + 120.0 * (row - 1)))
        for name, source in sources.items():
            kind, *args = source
            make = {
                "model": QgsProcessingModelChildParameterSource.fromModelParameter,
                "child": QgsProcessingModelChildParameterSource.fromChildOutput,
                "expression": QgsProcessingModelChildParameterSource.fromExpression,
                "static": QgsProcessingModelChildParameterSource.fromStaticValue,
            }[kind]
            child.addParameterSources(name, [make(*args)])
        model_outputs = {}
        for child_output, name, description, help_text in outputs:
            out = QgsProcessingModelOutput(name, description)
            out.setChildId(child_id)
            out.setChildOutputName(child_output)
            out.setDescription(description)
            out.setPosition(QPointF(320.0 + 260.0 * (row - 1), 300.0 + 120.0 * (row - 1)))
            model_outputs[name] = out
            self.help[f"{child_id}:{name}"] = help_text
        child.setModelOutputs(model_outputs)
        self.model.addChildAlgorithm(child)
        return child_id

    def finish(self):
        self.model.setHelpContent(self.help)
        ok, errors = self.model.validate()
        if not ok:
            raise RuntimeError(f"model {self.model.name()} is not valid: {errors}")
        return self.model


def change_hotspots():
    """embeddings:change -> order by area -> rank -> keep the largest N."""
    from qgis.core import (
        QgsProcessingParameterCrs,
        QgsProcessingParameterExtent,
        QgsProcessingParameterNumber,
        QgsProcessingParameterString,
    )

    from earth_embeddings.core.change import DEFAULT_MIN_AREA_M2, DEFAULT_THRESHOLD
    from earth_embeddings.core.grid import DEFAULT_MAX_PIXELS
    from earth_embeddings.processing.base import CRS_HELP, EXTENT_HELP, RES_HELP, SOURCE_HELP
    from earth_embeddings.processing.compat import NUMBER_DOUBLE, NUMBER_INTEGER

    b = ModelBuilder(
        "Change hotspots",
        "Where did the most change happen between two years? Runs 'Change map (1 - cosine)' "
        "(embeddings:change) for an extent, turns the pixels above THRESHOLD into connected areas, "
        "and keeps the MAX_AREAS largest of them, ranked by area (rank 1 = largest).\n\n"
        "Inputs: SOURCE (the collection; empty = the public product), YEAR_A and YEAR_B (before and "
        "after), EXTENT, TARGET_CRS (empty = the UTM zone of the extent), RESOLUTION (metres), "
        "THRESHOLD (1 - cosine, 0..2), MIN_AREA_M2 (smallest area kept, m²) and MAX_AREAS (how many "
        "areas to keep).\n\n"
        "Outputs: change:CHANGE_MAP, the float32 change map (1 - cosine, unitless, 0..2, no-data "
        "-9999); largest:HOTSPOTS, polygons in the map's CRS with rank, area_m2 (m²), mean_change "
        "and max_change.\n\n"
        "Example (qgis_process): qgis_process run embeddings:change_hotspots -- "
        f"SOURCE=/data/aef/aef_index.csv YEAR_A=2017 YEAR_B=2024 EXTENT={EXTENT_EXAMPLE} "
        "MAX_AREAS=3 change:CHANGE_MAP=/tmp/change.tif largest:HOTSPOTS=/tmp/hotspots.gpkg",
    )
    source = b.parameter(QgsProcessingParameterString("SOURCE", "Collection", "", optional=True), SOURCE_HELP)
    year_a = b.parameter(
        QgsProcessingParameterNumber("YEAR_A", "Year A (before)", NUMBER_INTEGER, 2017, False, 1900, 2200),
        "The 'before' year.",
    )
    year_b = b.parameter(
        QgsProcessingParameterNumber("YEAR_B", "Year B (after)", NUMBER_INTEGER, 2024, False, 1900, 2200),
        "The 'after' year (must differ from year A).",
    )
    extent = b.parameter(QgsProcessingParameterExtent("EXTENT", "Extent"), EXTENT_HELP)
    crs = b.parameter(
        QgsProcessingParameterCrs("TARGET_CRS", "Target CRS (empty = UTM zone of the extent)", optional=True),
        CRS_HELP,
    )
    resolution = b.parameter(
        QgsProcessingParameterNumber("RESOLUTION", "Resolution (metres)", NUMBER_DOUBLE, 10.0, False, 1.0, 100000.0),
        RES_HELP,
    )
    threshold = b.parameter(
        QgsProcessingParameterNumber(
            "THRESHOLD", "Change threshold (1 - cosine)", NUMBER_DOUBLE, DEFAULT_THRESHOLD, False, 0.0, 2.0
        ),
        "Pixels whose change (1 - cosine) is above this value count as changed; stable land is about 0.04.",
    )
    min_area = b.parameter(
        QgsProcessingParameterNumber(
            "MIN_AREA_M2", "Smallest change area (m²)", NUMBER_DOUBLE, DEFAULT_MIN_AREA_M2, False, 0.0
        ),
        "Change areas smaller than this many square metres are dropped before ranking.",
    )
    b.parameter(
        QgsProcessingParameterNumber("MAX_AREAS", "Number of areas to keep", NUMBER_INTEGER, 10, False, 1),
        "How many of the largest change areas to keep.",
    )
    b.step(
        "change",
        "embeddings:change",
        {
            "SOURCE": ("model", source),
            "YEAR_A": ("model", year_a),
            "YEAR_B": ("model", year_b),
            "EXTENT": ("model", extent),
            "TARGET_CRS": ("model", crs),
            "RESOLUTION": ("model", resolution),
            "MAX_PIXELS": ("static", DEFAULT_MAX_PIXELS),
            "THRESHOLD": ("model", threshold),
            "MIN_AREA_M2": ("model", min_area),
            "OUTPUT_POLYGONS": ("static", "TEMPORARY_OUTPUT"),
        },
        outputs=[
            (
                "OUTPUT",
                "CHANGE_MAP",
                "Change map",
                "Float32 GeoTIFF of 1 - cosine per pixel (0..2, no-data -9999).",
            )
        ],
    )
    b.step(
        "order",
        "native:orderbyexpression",
        {
            "INPUT": ("child", "change", "OUTPUT_POLYGONS"),
            "EXPRESSION": ("static", '"area_m2"'),
            "ASCENDING": ("static", False),
            "NULLS_FIRST": ("static", False),
        },
        row=2,
    )
    # Field calculator's @row_number counts from 0 on QGIS 3.22 and 3.40 alike.
    b.step(
        "rank",
        "native:fieldcalculator",
        {
            "INPUT": ("child", "order", "OUTPUT"),
            "FIELD_NAME": ("static", "rank"),
            "FIELD_TYPE": ("static", 1),
            "FIELD_LENGTH": ("static", 0),
            "FIELD_PRECISION": ("static", 0),
            "FORMULA": ("static", "@row_number + 1"),
        },
        row=3,
    )
    b.step(
        "largest",
        "native:extractbyexpression",
        {
            "INPUT": ("child", "rank", "OUTPUT"),
            "EXPRESSION": ("expression", "'\"rank\" <= ' || to_string(@MAX_AREAS)"),
        },
        outputs=[
            (
                "OUTPUT",
                "HOTSPOTS",
                "Largest change areas",
                "The largest change areas: rank (1 = largest), area_m2 (m²), mean_change, max_change.",
            )
        ],
        row=4,
    )
    return b.finish()


def find_similar_places():
    """embeddings:similarity with top-k -> native:buffer around each place."""
    from qgis.core import (
        QgsProcessing,
        QgsProcessingParameterExtent,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
        QgsProcessingParameterString,
    )

    from earth_embeddings.core.grid import DEFAULT_MAX_PIXELS
    from earth_embeddings.processing.base import EXTENT_HELP, SOURCE_HELP
    from earth_embeddings.processing.compat import NUMBER_DOUBLE, NUMBER_INTEGER

    b = ModelBuilder(
        "Find similar places",
        "Finds the TOP_K places that look most like the exemplars and draws a circle of BUFFER_M "
        "metres around each: 'Similarity to exemplars' (embeddings:similarity) with its top-k "
        "search, then 'Buffer' (native:buffer).\n\n"
        "Inputs: SOURCE (the collection; empty = the public product), YEAR and EXTENT, or an "
        "embedding raster as INPUT instead; EXEMPLARS (points or polygons, any CRS); TOP_K (number "
        "of places); MIN_SEPARATION_M (metres between places); BUFFER_M (circle radius in the "
        "output's CRS units: metres for the default UTM grid).\n\n"
        "Outputs: similarity:SIMILARITY, the float32 cosine similarity map (-1..1, no-data "
        "-9999); similarity:TOP_PLACES, the places as points (rank, score, x, y, lon, lat); "
        "buffer:PLACES, the same places as circles.\n\n"
        "Example (qgis_process): qgis_process run embeddings:find_similar_places -- "
        f"SOURCE=/data/aef/aef_index.csv YEAR=2024 EXTENT={EXTENT_EXAMPLE} "
        "EXEMPLARS=/data/fields.geojson TOP_K=5 BUFFER_M=100 similarity:SIMILARITY=/tmp/similarity.tif "
        "similarity:TOP_PLACES=/tmp/top5.gpkg buffer:PLACES=/tmp/top5_areas.gpkg",
    )
    kinds = [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon]
    source = b.parameter(QgsProcessingParameterString("SOURCE", "Collection", "", optional=True), SOURCE_HELP)
    year = b.parameter(
        QgsProcessingParameterNumber("YEAR", "Year", NUMBER_INTEGER, 2024, True, 1900, 2200),
        "The year of the embeddings (not used with INPUT).",
    )
    extent = b.parameter(
        QgsProcessingParameterExtent("EXTENT", "Extent", optional=True),
        EXTENT_HELP + " Optional with INPUT (then the raster's own extent).",
    )
    raster = b.parameter(
        QgsProcessingParameterRasterLayer("INPUT", "Embedding raster (instead of a collection)", optional=True),
        "An embedding raster (for example from 'Load embeddings for extent') to search instead of the collection.",
    )
    exemplars = b.parameter(
        QgsProcessingParameterFeatureSource("EXEMPLARS", "Exemplars (points or polygons)", kinds),
        "Example places: points (the pixel under each) or polygons (the mean of their pixels), any CRS.",
    )
    top_k = b.parameter(
        QgsProcessingParameterNumber("TOP_K", "Number of places", NUMBER_INTEGER, 10, False, 1),
        "How many of the most similar distinct places to find.",
    )
    separation = b.parameter(
        QgsProcessingParameterNumber(
            "MIN_SEPARATION_M", "Minimum distance between places (metres)", NUMBER_DOUBLE, 100.0, False, 0.0
        ),
        "Places are at least this far apart, so that one large similar field yields one place.",
    )
    buffer_m = b.parameter(
        QgsProcessingParameterNumber("BUFFER_M", "Circle radius (metres)", NUMBER_DOUBLE, 50.0, False, 0.0),
        "Radius of the circle drawn around each place, in the output CRS's units (metres on the default UTM grid).",
    )
    b.step(
        "similarity",
        "embeddings:similarity",
        {
            "SOURCE": ("model", source),
            "YEAR": ("model", year),
            "EXTENT": ("model", extent),
            "INPUT": ("model", raster),
            "EXEMPLARS": ("model", exemplars),
            "AGGREGATE": ("static", 0),
            "RESOLUTION": ("static", 10.0),
            "MAX_PIXELS": ("static", DEFAULT_MAX_PIXELS),
            "TOP_K": ("model", top_k),
            "MIN_SEPARATION_M": ("model", separation),
        },
        outputs=[
            (
                "OUTPUT",
                "SIMILARITY",
                "Similarity",
                "Float32 GeoTIFF of cosine similarity to the exemplars (-1..1, no-data -9999).",
            ),
            (
                "OUTPUT_TOP_K",
                "TOP_PLACES",
                "Top places",
                "The places as points: rank (1 = most similar), score, x, y, lon, lat.",
            ),
        ],
    )
    b.step(
        "buffer",
        "native:buffer",
        {
            "INPUT": ("child", "similarity", "OUTPUT_TOP_K"),
            "DISTANCE": ("model", buffer_m),
            "SEGMENTS": ("static", 16),
            "END_CAP_STYLE": ("static", 0),
            "JOIN_STYLE": ("static", 0),
            "MITER_LIMIT": ("static", 2.0),
            "DISSOLVE": ("static", False),
        },
        outputs=[("OUTPUT", "PLACES", "Similar places (circles)", "A circle of BUFFER_M around each place.")],
        row=2,
    )
    return b.finish()


MODELS_TO_WRITE = {"change_hotspots": change_hotspots, "find_similar_places": find_similar_places}


def write_models(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, build in MODELS_TO_WRITE.items():
        path = folder / f"{stem}.model3"
        if not build().toFile(str(path)):
            raise RuntimeError(f"could not write {path}")
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed models")
    args = parser.parse_args()
    app, plugin = _qgis()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            stale = [p.name for p in write_models(Path(tmp)) if p.read_text() != (MODELS / p.name).read_text()]
        if stale:
            print(f"make_models: out of date: {', '.join(stale)}; run make models", file=sys.stderr)
            return 1
        print("make_models: resources/models is up to date")
        return 0
    for path in write_models(MODELS):
        print(f"wrote {path.relative_to(REPO)}")
    plugin.unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
