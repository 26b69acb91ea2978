"""Cancelling from QGIS's task manager (what the Processing dialog's background run and the
click-to-search tool use): every algorithm stops within about one block of work, reports that it
was cancelled, and leaves no output file.

"Within a couple of seconds" is shown behaviourally, not by timing: after the cancel, the
algorithm may finish the block it is in and must do no more. Each block reports progress once,
so we count progress reports after the cancel.
"""

import time

import pytest
from ee_helpers import extent_param
from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsTask,
)
from qgis.PyQt.QtCore import QCoreApplication

from earth_embeddings.core.grid import grid_for_extent
from earth_embeddings.scripts.sample import CLASSES, class_interior_points

# Progress reports allowed once cancel is pressed: the block in flight, plus the algorithm's
# own closing report (e.g. "writing") if it races the cancel.
AFTER_CANCEL_MAX = 2


class Counting(QgsProcessingFeedback):
    """Counts progress reports, and those that arrive after cancel()."""

    def __init__(self, cancel_above: float):
        super().__init__()
        self.cancel_above = cancel_above
        self.reports = 0
        self.after_cancel = 0
        self.errors = []

    def setProgress(self, p):  # noqa: N802
        if self.isCanceled():
            self.after_cancel += 1
        else:
            self.reports += 1
        super().setProgress(p)

    def reportError(self, error, fatalError=False):  # noqa: N802, N803
        self.errors.append(error)
        super().reportError(error, fatalError)


def cases(sample_dir, sample_index, truth):
    bbox = extent_param(truth.notes["bbox_wgs84"])
    year = 2024
    lon, lat = class_interior_points(truth, CLASSES.index("forest"), year, 1)[0]
    # Resolutions finer than native make many blocks, so a cancel lands early in the run.
    return {
        "load": {"SOURCE": sample_index, "YEAR": year, "EXTENT": bbox, "TARGET_CRS": "EPSG:3857", "RESOLUTION": 3},
        "change": {
            "SOURCE": sample_index,
            "YEAR_A": 2017,
            "YEAR_B": 2024,
            "EXTENT": bbox,
            "TARGET_CRS": "EPSG:3857",
            "RESOLUTION": 3,
        },
        "similarity": {
            "SOURCE": sample_index,
            "YEAR": year,
            "EXTENT": bbox,
            "TARGET_CRS": "EPSG:3857",
            "RESOLUTION": 3,
            "EXEMPLARS": f"{lon},{lat} [EPSG:4326]",
        },
        "zonalstats": {
            "SOURCE": sample_index,
            "YEAR": year,
            "ZONES": str(sample_dir / "zones.geojson"),
            "RESOLUTION": 2,
        },
    }


def planned_blocks(truth, resolution_m):
    grid = grid_for_extent(truth.notes["bbox_wgs84"], "EPSG:4326", "EPSG:3857", resolution_m)
    return len(list(grid.blocks(512)))


def test_the_cases_have_enough_blocks_for_a_cancel_to_matter(truth):
    # Were the whole run only a few blocks, "stopped within a block" could not be told apart
    # from "ignored the cancel".
    assert planned_blocks(truth, 3) >= 10 * AFTER_CANCEL_MAX


def wait_for(task, timeout_s=300):
    deadline = time.monotonic() + timeout_s
    while task.status() not in (QgsTask.Complete, QgsTask.Terminated):
        QCoreApplication.processEvents()
        time.sleep(0.01)
        assert time.monotonic() < deadline, "the task never finished"


@pytest.mark.parametrize("name", ["load", "change", "similarity", "zonalstats"])
def test_task_manager_cancel_stops_within_a_block(plugin_processing, sample_dir, sample_index, truth, tmp_path, name):
    alg = QgsApplication.processingRegistry().createAlgorithmById(f"embeddings:{name}")
    assert alg is not None
    params = cases(sample_dir, sample_index, truth)[name]
    if name == "similarity":
        # A point parameter is not a layer: give the exemplar as a one-point layer file.
        exemplar = tmp_path / "exemplar.geojson"
        lon, lat = params.pop("EXEMPLARS").split(" ")[0].split(",")
        exemplar.write_text(
            '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},'
            f'"geometry":{{"type":"Point","coordinates":[{lon},{lat}]}}}}]}}'
        )
        params["EXEMPLARS"] = str(exemplar)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    params["OUTPUT"] = str(out_dir / ("zones.gpkg" if name == "zonalstats" else "out.tif"))

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = Counting(cancel_above=0)
    task = QgsProcessingAlgRunnerTask(alg, params, context, feedback)
    finished = []
    task.executed.connect(lambda ok, results: finished.append((ok, results)))
    QgsApplication.taskManager().addTask(task)

    # Cancel as the task manager's cancel button does, once the algorithm has read a block.
    deadline = time.monotonic() + 300
    while feedback.reports < 2 and task.status() not in (QgsTask.Complete, QgsTask.Terminated):
        QCoreApplication.processEvents()
        time.sleep(0.005)
        assert time.monotonic() < deadline
    reports_before = feedback.reports
    assert task.status() not in (
        QgsTask.Complete,
        QgsTask.Terminated,
    ), f"{name} finished before it could be cancelled ({reports_before} progress reports)"
    task.cancel()
    wait_for(task)
    QCoreApplication.processEvents()

    assert finished and finished[0][0] is False, f"{name} reported success after a cancel"
    assert (
        feedback.after_cancel <= AFTER_CANCEL_MAX
    ), f"{name} went on for {feedback.after_cancel} progress reports after the cancel"
    assert any("cancel" in e.lower() for e in feedback.errors), feedback.errors
    assert list(out_dir.iterdir()) == [], f"{name} left files behind: {list(out_dir.iterdir())}"
