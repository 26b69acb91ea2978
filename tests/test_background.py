"""Algorithms run on QGIS's worker threads (the Processing dialog and the task manager do that),
again and again on the same pooled threads, and give the same result each time.

Under pyproj 3.7 (QGIS 3.40 on Debian 13) the second run on a pooled thread used to crash QGIS:
see core.threads.keep_proj_context.
"""

import time

import numpy as np
import rasterio
from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsTask,
)
from qgis.PyQt.QtCore import QCoreApplication, QThreadPool


def run_in_background(alg_id, params):
    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = QgsProcessingFeedback()
    task = QgsProcessingAlgRunnerTask(alg, params, context, feedback)
    done = []
    task.executed.connect(lambda ok, results: done.append((ok, dict(results))))
    QgsApplication.taskManager().addTask(task)
    deadline = time.monotonic() + 300
    while not done or task.status() not in (QgsTask.Complete, QgsTask.Terminated):
        QCoreApplication.processEvents()
        time.sleep(0.01)
        assert time.monotonic() < deadline, "the task never finished"
    return done[0]


def test_repeated_background_runs_reuse_worker_threads(plugin_processing, sample_index, truth, tmp_path):
    w, s, e, n = truth.notes["bbox_wgs84"]
    # Runs more than there are pooled threads, so threads are reused.
    runs = QThreadPool.globalInstance().maxThreadCount() + 2
    results = []
    for i in range(runs):
        out = tmp_path / f"change_{i}.tif"
        ok, res = run_in_background(
            "embeddings:change",
            {
                "SOURCE": sample_index,
                "YEAR_A": 2017,
                "YEAR_B": 2024,
                "EXTENT": f"{w},{e},{s},{n} [EPSG:4326]",
                "RESOLUTION": 40,
                "OUTPUT": str(out),
            },
        )
        assert ok, f"background run {i} failed"
        with rasterio.open(res["OUTPUT"]) as src:
            results.append(src.read(1, masked=True))
    first = results[0]
    assert first.count() > 1000
    for other in results[1:]:
        assert np.array_equal(other.mask, first.mask) and np.array_equal(other.filled(0), first.filled(0))
