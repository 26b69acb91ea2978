"""The click-to-search controller end to end in the pytest QGIS app: clicks run
embeddings:similarity as background tasks on the sample collection, results land in reused
layers, newer clicks supersede older ones, failures become one message-bar sentence."""

import os
import time

import numpy as np
import pytest
import rasterio
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsSingleBandPseudoColorRenderer,
)

from earth_embeddings.core.grid import transformer
from earth_embeddings.core.similarity import NODATA_SCORE
from earth_embeddings.plugin import search as search_module
from earth_embeddings.plugin.maptool import ADD_EXEMPLAR, ADD_NEGATIVE, REPLACE
from earth_embeddings.plugin.options import SearchOptions
from earth_embeddings.plugin.search import GROUP_NAME, SearchController
from earth_embeddings.scripts.sample import CLASSES, class_interior_points

YEAR = 2024  # the year with a planted no-data hole


@pytest.fixture
def controller(plugin_processing, qgis_iface, qgis_new_project, sample_index, truth):
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    canvas.setExtent(QgsRectangle(*truth.notes["bbox_wgs84"]))
    qgis_iface.messageBar().clear_messages()
    options = SearchOptions(source=sample_index, year=YEAR, top_k=3, opacity=0.7)
    ctl = SearchController(qgis_iface, lambda: options)
    ctl.test_options = options
    finished = []
    ctl.search_finished.connect(lambda serial, shown: finished.append((serial, shown)))
    ctl.finished_log = finished
    yield ctl
    ctl.shutdown()
    wait_for_tasks()


def wait_for_tasks(controller=None, timeout_s=180):
    """Run the event loop (as QGIS does) until our searches and the task manager are idle."""
    deadline = time.monotonic() + timeout_s
    manager = QgsApplication.taskManager()
    while time.monotonic() < deadline:
        QgsApplication.processEvents()
        if (controller is None or not controller.busy()) and manager.countActiveTasks() == 0:
            QgsApplication.processEvents()
            return
        time.sleep(0.02)
    raise AssertionError("the search tasks did not finish")


def scores_at(path, lonlat):
    """Scores of the raster at lon/lat points (NaN for no-data)."""
    with rasterio.open(path) as ds:
        to_crs = transformer("EPSG:4326", ds.crs.to_string())
        xs, ys = to_crs.transform([p[0] for p in lonlat], [p[1] for p in lonlat])
        values = np.array([v[0] for v in ds.sample(list(zip(xs, ys)))], dtype=np.float64)
    values[values == NODATA_SCORE] = np.nan
    return values


def class_scores(path, truth, n=6):
    return {c: scores_at(path, class_interior_points(truth, i, YEAR, n, seed=11)) for i, c in enumerate(CLASSES)}


def click(controller, lon, lat, mode=REPLACE):
    controller.handle_click(QgsPointXY(lon, lat), mode)


def similarity_layer():
    layers = [
        layer
        for layer in QgsProject.instance().mapLayers().values()
        if layer.customProperty(search_module.ROLE_PROPERTY) == search_module.SIMILARITY
    ]
    assert len(layers) == 1, "exactly one Similarity layer"
    return layers[0]


def test_click_maps_similarity_in_the_background_and_reuses_the_layer(controller, truth):
    forest = class_interior_points(truth, CLASSES.index("forest"), YEAR, 1, seed=5)[0]
    click(controller, *forest)
    # The click returns at once: the search runs as a task, nothing is shown yet.
    assert controller.busy() and controller.layer(search_module.SIMILARITY) is None
    wait_for_tasks(controller)
    assert controller.finished_log == [(1, True)]
    layer = similarity_layer()
    assert isinstance(layer, QgsRasterLayer) and layer.isValid() and layer.name() == "Similarity 2024 (1 place)"
    assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
    assert layer.opacity() == pytest.approx(0.7)
    group = QgsProject.instance().layerTreeRoot().findGroup(GROUP_NAME)
    assert group is not None and group.findLayer(layer.id()) is not None
    path = layer.source()

    # Valid values where there is data, no-data in the planted hole, forest scores highest.
    scores = class_scores(path, truth)
    assert np.isfinite(np.concatenate(list(scores.values()))).all()
    assert scores_at(path, [forest])[0] > 0.95
    others = np.concatenate([v for c, v in scores.items() if c != "forest"])
    assert scores["forest"].min() > others.max()
    hole = truth.holes[0]
    hole_lonlat = truth.lonlat_of_local(hole["x"], hole["y"])
    assert np.isnan(scores_at(path, [tuple(map(float, hole_lonlat))])[0])

    # Top places: 3 points, all on forest; the exemplar layer shows the click.
    top = controller.layer(search_module.TOP_PLACES)
    assert top is not None and top.featureCount() == 3
    to_utm = transformer("EPSG:4326", top.crs().authid())
    click_xy = to_utm.transform(*forest)
    for f in top.getFeatures():
        assert truth.class_at(f["lon"], f["lat"], YEAR) == CLASSES.index("forest")
        # Places like this, elsewhere: none on the clicked place or next to it.
        assert np.hypot(f["x"] - click_xy[0], f["y"] - click_xy[1]) >= search_module.SEPARATION_M
    exemplars = controller.layer(search_module.EXEMPLARS)
    assert [f["kind"] for f in exemplars.getFeatures()] == ["exemplar"]

    # A second click updates the same layer in place: same id, new file, the user's opacity kept.
    layer.setOpacity(0.4)
    water = class_interior_points(truth, CLASSES.index("water"), YEAR, 1, seed=5)[0]
    click(controller, *water)
    wait_for_tasks(controller)
    assert similarity_layer().id() == layer.id() and layer.source() != path
    assert layer.opacity() == pytest.approx(0.4)
    assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
    scores = class_scores(layer.source(), truth)
    assert scores["water"].min() > np.concatenate([v for c, v in scores.items() if c != "water"]).max()
    assert len(group.findLayers()) == 3  # similarity, exemplars, top places: no new layer per click


def test_a_newer_click_supersedes_the_running_search(controller, truth):
    forest = class_interior_points(truth, CLASSES.index("forest"), YEAR, 1, seed=7)[0]
    urban = class_interior_points(truth, CLASSES.index("urban"), YEAR, 1, seed=7)[0]
    click(controller, *forest)
    click(controller, *urban)  # before the first one could finish
    wait_for_tasks(controller)
    # Only the second search is shown; the first reports nothing.
    assert controller.finished_log == [(2, True)]
    scores = class_scores(similarity_layer().source(), truth)
    assert scores["urban"].min() > np.concatenate([v for c, v in scores.items() if c != "urban"]).max()
    assert [f["kind"] for f in controller.layer(search_module.EXEMPLARS).getFeatures()] == ["exemplar"]
    assert not controller.iface.messageBar().get_messages(Qgis.MessageLevel.Warning)


def test_shift_and_ctrl_clicks_search_with_more_places_and_negatives(controller, truth):
    crop = class_interior_points(truth, CLASSES.index("cropland"), YEAR, 2, seed=3)
    crop_b = class_interior_points(truth, CLASSES.index("cropland_b"), YEAR, 1, seed=3)[0]
    click(controller, *crop[0])
    click(controller, *crop[1], mode=ADD_EXEMPLAR)
    click(controller, *crop_b, mode=ADD_NEGATIVE)
    wait_for_tasks(controller)
    assert controller.finished_log == [(3, True)]
    scores = class_scores(similarity_layer().source(), truth)
    # With cropland_b as a negative, the confusable class scores below zero, cropland above.
    assert scores["cropland"].min() > 0 > scores["cropland_b"].max()
    kinds = sorted(f["kind"] for f in controller.layer(search_module.EXEMPLARS).getFeatures())
    assert kinds == ["exemplar", "exemplar", "negative"]
    assert similarity_layer().name() == "Similarity 2024 (2 places, 1 negative)"


def test_threshold_shows_areas_above_it(controller, truth):
    controller.test_options.threshold = 0.9
    controller.test_options.top_k = 0
    water = class_interior_points(truth, CLASSES.index("water"), YEAR, 1, seed=2)[0]
    click(controller, *water)
    wait_for_tasks(controller)
    areas = controller.layer(search_module.AREAS)
    assert areas is not None and areas.featureCount() > 0
    assert all(f["mean_score"] > 0.9 for f in areas.getFeatures())
    assert all(f["area_m2"] >= search_module.MIN_AREA_M2 for f in areas.getFeatures())  # no speckle
    top = controller.layer(search_module.TOP_PLACES)
    assert top is None or top.featureCount() == 0


def test_failures_become_one_sentence_in_the_message_bar(controller, truth, monkeypatch):
    bar = controller.iface.messageBar()
    lon_min, lat_min, lon_max, lat_max = truth.notes["bbox_wgs84"]
    click(controller, lon_max + 5.0, lat_max + 5.0)  # far outside the collection
    wait_for_tasks(controller)
    assert controller.finished_log == [(1, False)]
    warnings = bar.get_messages(Qgis.MessageLevel.Warning)
    assert len(warnings) == 1
    text = warnings[0]
    assert "No embeddings at the clicked place (outside the collection, 2024)" in text
    assert "Traceback" not in text and text.count("\n") == 0 and "aef_index" not in text
    assert controller.layer(search_module.SIMILARITY) is None

    hole = truth.holes[0]
    click(controller, *map(float, truth.lonlat_of_local(hole["x"], hole["y"])))  # no data there
    wait_for_tasks(controller)
    assert (
        "No embeddings at the clicked place (the collection has no data there in 2024)"
        in (bar.get_messages(Qgis.MessageLevel.Warning)[-1])
    )

    monkeypatch.setattr(search_module, "ALGORITHM_ID", "embeddings:not_installed")
    click(controller, *class_interior_points(truth, 0, YEAR, 1)[0])
    assert "missing" in bar.get_messages(Qgis.MessageLevel.Warning)[-1] and not controller.busy()


def test_escape_clears_and_cancels_the_running_search(controller, truth):
    forest = class_interior_points(truth, CLASSES.index("forest"), YEAR, 1, seed=9)[0]
    statuses = []
    controller.status.connect(statuses.append)
    click(controller, *forest)
    controller.clear()
    wait_for_tasks(controller)
    assert controller.exemplars == [] and controller.negatives == []
    assert controller.layer(search_module.EXEMPLARS).featureCount() == 0
    # The search was cancelled (or had just finished): never an error message.
    assert controller.finished_log in ([(1, False)], [(1, True)])
    assert not controller.iface.messageBar().get_messages(Qgis.MessageLevel.Warning)
    assert any("Cleared" in s for s in statuses)


def test_results_move_beside_a_saved_project_and_come_back_when_it_is_reopened(controller, truth, tmp_path):
    forest = class_interior_points(truth, CLASSES.index("forest"), YEAR, 1, seed=5)[0]
    click(controller, *forest)
    wait_for_tasks(controller)
    roles = (search_module.SIMILARITY, search_module.EXEMPLARS, search_module.TOP_PLACES)
    # Before the project has a file the results live in the session's temp folder.
    assert all(controller.layer(r).source().startswith(controller.root) for r in roles)
    project = QgsProject.instance()
    path = tmp_path / "survey.qgz"
    project.setFileName(str(path))  # as the desktop's Save As does, before it writes
    assert project.write()
    folder = tmp_path / "survey_embeddings"
    sources = {r: controller.layer(r).source().split("|")[0] for r in roles}
    assert all(os.path.dirname(p) == str(folder) and os.path.isfile(p) for p in sources.values()), sources
    assert sources[search_module.SIMILARITY].endswith(".tif")
    assert sources[search_module.TOP_PLACES].endswith(".gpkg")
    # A later click updates the same layers, writing beside the project; the old files go.
    water = class_interior_points(truth, CLASSES.index("water"), YEAR, 1, seed=5)[0]
    click(controller, *water)
    wait_for_tasks(controller)
    heatmap = controller.layer(search_module.SIMILARITY).source()
    assert os.path.dirname(heatmap) == str(folder) and not os.path.exists(sources[search_module.SIMILARITY])
    assert project.write()
    ids = {r: controller.layer(r).id() for r in roles}

    project.clear()
    assert controller.layer(search_module.SIMILARITY) is None
    assert project.read(str(path))
    for role in roles:
        layer = controller.layer(role)
        assert layer is not None and layer.isValid() and layer.id() == ids[role], role
    assert controller.layer(search_module.TOP_PLACES).featureCount() == 3
    assert [f["kind"] for f in controller.layer(search_module.EXEMPLARS).getFeatures()] == ["exemplar"]
    scores = class_scores(controller.layer(search_module.SIMILARITY).source(), truth)
    assert scores["water"].min() > np.concatenate([v for c, v in scores.items() if c != "water"]).max()

    # Save results... copies the current results anywhere, with plain names.
    written = controller.save_results(str(tmp_path / "elsewhere"))
    assert sorted(os.path.basename(p) for p in written) == ["exemplars.gpkg", "similarity.tif", "top_places.gpkg"]
    project.clear()


def test_a_failed_click_after_a_good_one_leaves_no_stale_heatmap(controller, truth):
    bar = controller.iface.messageBar()
    forest = class_interior_points(truth, CLASSES.index("forest"), YEAR, 1, seed=5)[0]
    click(controller, *forest)
    wait_for_tasks(controller)
    assert controller.layer(search_module.SIMILARITY) is not None
    old = controller.layer(search_module.SIMILARITY).source()
    lon_min, lat_min, lon_max, lat_max = truth.notes["bbox_wgs84"]
    click(controller, lon_max + 5.0, lat_max + 5.0)
    wait_for_tasks(controller)
    assert controller.finished_log == [(1, True), (2, False)]
    assert controller.layer(search_module.SIMILARITY) is None and not os.path.exists(old)
    assert controller.layer(search_module.TOP_PLACES) is None
    assert len(bar.get_messages(Qgis.MessageLevel.Warning)) == 1
    assert controller.last_error is not None
    click(controller, *forest)
    wait_for_tasks(controller)
    assert controller.layer(search_module.SIMILARITY) is not None and controller.last_error is None


def test_a_zoomed_out_search_follows_the_map_and_reads_overviews(controller, sample_dir, truth, fresh_cache):
    from httpserver import RangeServer

    from earth_embeddings.plugin.search import map_resolution_m

    canvas = controller.iface.mapCanvas()
    w, s, e, n = truth.notes["bbox_wgs84"]
    cx, cy = (w + e) / 2, (s + n) / 2
    size = canvas.mapSettings().outputSize()
    width_px, aspect = size.width(), size.height() / size.width()
    metres_per_degree = 111_320 * np.cos(np.radians(cy))
    forest = class_interior_points(truth, CLASSES.index("forest"), YEAR, 1, seed=5)[0]

    def search_at(ground_m_per_px, resolution_m=None):
        """Zoom so that a screen pixel is about ``ground_m_per_px`` wide; click; what was read."""
        half = ground_m_per_px * width_px / metres_per_degree / 2
        canvas.setExtent(QgsRectangle(cx - half, cy - half * aspect, cx + half, cy + half * aspect))
        controller.test_options.resolution_m = resolution_m
        server.stats.reset()
        click(controller, *forest)
        run = controller.runs[controller.serial]
        wait_for_tasks(controller)
        assert controller.finished_log[-1] == (controller.serial, True), run.feedback.errors
        with rasterio.open(similarity_layer().source()) as ds:
            return map_resolution_m(canvas), ds.res[0], server.stats.bytes_sent, run.feedback.plan

    with RangeServer(sample_dir) as server:
        controller.test_options.source = server.url + "aef_index.csv"
        search_at(5.0)  # the index is downloaded and cached once
        near_res, near_px, _, near_plan = search_at(5.0)
        far_res, far_px, far_bytes, far_plan = search_at(50.0)
        _, fine_px, fine_bytes, _ = search_at(50.0, resolution_m=10.0)  # the same view at 10 m
        # Inside a tile whose origin is 20 m off the 40 m lattice: the grid follows the tile.
        tx0, ty0, tx1, ty1 = truth.zones["15N"]["tiles"][3]
        lon, lat = transformer("EPSG:32615", "EPSG:4326").transform((tx0 + tx1) / 2 + 30, (ty0 + ty1) / 2 + 30)
        cx, cy = lon, lat
        _, shifted_px, _, shifted_plan = search_at(1000.0 / width_px, resolution_m=40.0)
        with rasterio.open(similarity_layer().source()) as ds:
            origin = (ds.transform.c, ds.transform.f)
    assert near_res == near_px == 10.0 and "overview" not in near_plan
    assert far_res == far_px == 40.0 and "at 40 m" in far_plan and "overview 1/" in far_plan, far_plan
    assert fine_px == 10.0
    # The same view read at 40 m from the overviews costs a fraction of the bytes read at 10 m
    # (not a quarter: the sample's tiles are small, so their headers weigh in).
    assert far_bytes < fine_bytes / 2, (far_bytes, fine_bytes)
    assert shifted_px == 40.0 and "from overview 1/4" in shifted_plan, shifted_plan
    assert origin[0] % 40 == pytest.approx(tx0 % 40) and (tx0 % 40) == pytest.approx(20)
