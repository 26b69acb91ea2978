"""The shipped Processing models (resources/models) and what the graphical modeler needs from
every algorithm: declared outputs, help on every parameter, a help page with an example."""

import math

import numpy as np
import pytest
from qgis.core import (
    QgsApplication,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterExtent,
    QgsProcessingParameterString,
    QgsVectorLayer,
)

from earth_embeddings.core.grid import transformer
from earth_embeddings.processing.provider import shipped_models
from earth_embeddings.scripts.sample import CLASSES

PYTHON_ALGORITHMS = ("load", "change", "similarity", "zonalstats")
MODELS = ("change_hotspots", "find_similar_places")


def extent_param(truth):
    w, s, e, n = truth.notes["bbox_wgs84"]
    return f"{w},{e},{s},{n} [EPSG:4326]"


def provider_algorithms():
    return QgsApplication.processingRegistry().providerById("embeddings").algorithms()


def to_lonlat(layer, points):
    tr = transformer(layer.crs().authid(), "EPSG:4326")
    lon, lat = tr.transform([p.x() for p in points], [p.y() for p in points])
    return np.asarray(lon), np.asarray(lat)


def test_models_are_registered_with_every_step_output(plugin_processing):
    assert sorted(p.rsplit("/", 1)[-1] for p in shipped_models()) == [f"{m}.model3" for m in MODELS]
    ids = {a.id() for a in provider_algorithms()}
    assert {f"embeddings:{m}" for m in MODELS + PYTHON_ALGORITHMS} <= ids
    outputs = {
        "change_hotspots": {"change:CHANGE_MAP", "largest:HOTSPOTS"},
        "find_similar_places": {"similarity:SIMILARITY", "similarity:TOP_PLACES", "buffer:PLACES"},
    }
    registry = QgsApplication.processingRegistry()
    for model, expected in outputs.items():
        alg = registry.algorithmById(f"embeddings:{model}")
        assert {o.name() for o in alg.outputDefinitions()} == expected
        ok, errors = alg.validate()
        assert ok, errors


def test_every_algorithm_is_ready_for_the_modeler(plugin_processing):
    unmentioned = []
    for alg in provider_algorithms():
        help_page = alg.shortHelpString()
        assert f"qgis_process run {alg.id()} -- " in help_page, alg.id()
        for param in alg.parameterDefinitions():
            assert param.help().strip(), f"{alg.id()} {param.name()} has no help"
            # The help page names each key, so a qgis_process user can tell what it does.
            if param.name() not in help_page:
                unmentioned.append(f"{alg.id()} {param.name()}")
        declared = {o.name() for o in alg.outputDefinitions()}
        for param in alg.destinationParameterDefinitions():
            assert param.name() in declared, f"{alg.id()}: {param.name()} is not an output"
    assert unmentioned == [], "\n".join(unmentioned)


def test_change_hotspots_keeps_the_largest_areas_on_planted_change(run_alg, sample_index, truth, tmp_path):
    params = {
        "SOURCE": sample_index,
        "YEAR_A": 2017,
        "YEAR_B": 2024,
        "EXTENT": extent_param(truth),
        "TARGET_CRS": "EPSG:32616",
        "RESOLUTION": 10,
        "THRESHOLD": 0.25,
        "MIN_AREA_M2": 500,
        "MAX_AREAS": 3,
    }
    res = run_alg(
        "embeddings:change_hotspots",
        {**params, "change:CHANGE_MAP": str(tmp_path / "c.tif"), "largest:HOTSPOTS": str(tmp_path / "hot.gpkg")},
    )
    hot = QgsVectorLayer(res["largest:HOTSPOTS"], "hot", "ogr")
    assert hot.isValid() and hot.crs().authid() == "EPSG:32616"
    feats = sorted(hot.getFeatures(), key=lambda f: f["rank"])
    assert [f["rank"] for f in feats] == [1, 2, 3]
    # The same as the algorithm's own areas, largest first, cut after three.
    direct = run_alg(
        "embeddings:change",
        {
            **{k: v for k, v in params.items() if k != "MAX_AREAS"},
            "OUTPUT": str(tmp_path / "d.tif"),
            "OUTPUT_POLYGONS": str(tmp_path / "all.gpkg"),
        },
    )
    all_areas = sorted(f["area_m2"] for f in QgsVectorLayer(direct["OUTPUT_POLYGONS"], "a", "ogr").getFeatures())
    assert len(all_areas) > 3
    assert [f["area_m2"] for f in feats] == pytest.approx(all_areas[::-1][:3])
    # Each hotspot sits on a planted change.
    lon, lat = to_lonlat(hot, [f.geometry().pointOnSurface().asPoint() for f in feats])
    assert truth.change_at(lon, lat).all()


def test_find_similar_places_circles_forest(run_alg, sample_index, sample_dir, truth, tmp_path):
    res = run_alg(
        "embeddings:find_similar_places",
        {
            "SOURCE": sample_index,
            "YEAR": 2017,
            "EXTENT": extent_param(truth),
            "EXEMPLARS": str(sample_dir / "exemplars.geojson"),
            "TOP_K": 5,
            "MIN_SEPARATION_M": 200,
            "BUFFER_M": 50,
            "similarity:SIMILARITY": str(tmp_path / "s.tif"),
            "similarity:TOP_PLACES": str(tmp_path / "top.gpkg"),
            "buffer:PLACES": str(tmp_path / "circles.gpkg"),
        },
    )
    top = QgsVectorLayer(res["similarity:TOP_PLACES"], "top", "ogr")
    circles = QgsVectorLayer(res["buffer:PLACES"], "circles", "ogr")
    assert top.featureCount() == 5 and circles.featureCount() == 5
    for f in circles.getFeatures():
        assert f.geometry().area() == pytest.approx(math.pi * 50**2, rel=0.02)
    centres = [f.geometry().centroid().asPoint() for f in circles.getFeatures()]
    lon, lat = to_lonlat(circles, centres)
    assert (truth.class_at(lon, lat, 2017) == CLASSES.index("forest")).all()
    assert sorted(f["rank"] for f in circles.getFeatures()) == [1, 2, 3, 4, 5]


def test_load_chains_into_change_and_zonal_in_a_model(run_alg, sample_index, sample_dir, truth, tmp_path):
    """A raster output of load is accepted as INPUT by the other algorithms inside a model."""
    model = QgsProcessingModelAlgorithm("chain", "tests")
    src = QgsProcessingModelChildParameterSource.fromModelParameter
    static = QgsProcessingModelChildParameterSource.fromStaticValue
    for definition in (
        QgsProcessingParameterString("SOURCE", "Collection"),
        QgsProcessingParameterExtent("EXTENT", "Extent"),
        QgsProcessingParameterString("ZONES", "Zones"),
    ):
        model.addModelParameter(definition, QgsProcessingModelParameter(definition.name()))

    def child(child_id, alg_id, sources, outputs=()):
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(child_id)
        for name, source in sources.items():
            c.addParameterSources(name, [source])
        # As the modeler's dialog does: every other input at its default.
        for param in c.algorithm().parameterDefinitions():
            if param.name() not in sources and not param.isDestination():
                c.addParameterSources(param.name(), [static(param.defaultValue())])
        c.setModelOutputs({o: _output(child_id, o) for o in outputs})
        model.addChildAlgorithm(c)

    def _output(child_id, name):
        out = QgsProcessingModelOutput(name, name)
        out.setChildId(child_id)
        out.setChildOutputName("OUTPUT")
        return out

    for year in (2017, 2024):
        child(
            f"load{year}",
            "embeddings:load",
            {
                "SOURCE": src("SOURCE"),
                "YEAR": static(year),
                "EXTENT": src("EXTENT"),
                "TARGET_CRS": static("EPSG:32616"),
            },
        )
    out = QgsProcessingModelChildParameterSource.fromChildOutput
    child(
        "change",
        "embeddings:change",
        {"INPUT_A": out("load2017", "OUTPUT"), "INPUT_B": out("load2024", "OUTPUT")},
        ["CHANGE"],
    )
    child("zonal", "embeddings:zonalstats", {"INPUT": out("load2024", "OUTPUT"), "ZONES": src("ZONES")}, ["STATS"])
    ok, errors = model.validate()
    assert ok, errors
    # "change:CHANGE" on QGIS 3.22, "change" on 3.40: find the names the model gave them.
    dest = {d.description(): d.name() for d in model.destinationParameterDefinitions()}
    results = run_alg(
        model,
        {
            "SOURCE": sample_index,
            "EXTENT": extent_param(truth),
            "ZONES": str(sample_dir / "zones.geojson"),
            dest["CHANGE"]: str(tmp_path / "chain_change.tif"),
            dest["STATS"]: str(tmp_path / "chain_stats.gpkg"),
        },
    )
    direct = run_alg(
        "embeddings:change",
        {
            "SOURCE": sample_index,
            "YEAR_A": 2017,
            "YEAR_B": 2024,
            "EXTENT": extent_param(truth),
            "TARGET_CRS": "EPSG:32616",
            "OUTPUT": str(tmp_path / "direct.tif"),
        },
    )
    import rasterio

    with rasterio.open(results[dest["CHANGE"]]) as a, rasterio.open(direct["OUTPUT"]) as b:
        assert np.array_equal(a.read(1), b.read(1))
    stats = QgsVectorLayer(results[dest["STATS"]], "stats", "ogr")
    assert stats.featureCount() == 14 and stats.fields().indexOf("A00_mean") >= 0
