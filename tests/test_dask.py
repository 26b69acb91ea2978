"""Maps on a Dask cluster (issue 20): two worker processes that cannot import the plugin give
outputs bit-identical to a local run, spread over both workers; cancel; a worker killed during
the run; a scheduler that does not answer; workers that cannot see or read the source."""

import importlib.util
import os
import shutil
import signal
import subprocess
from dataclasses import replace

import numpy as np
import pytest
import rasterio
from dask_cluster import DaskCluster

from earth_embeddings.core.change import ChangeRequest, change_map
from earth_embeddings.core.errors import Cancelled, EmbeddingsError
from earth_embeddings.core.grid import GridSpec
from earth_embeddings.core.progress import Progress
from earth_embeddings.core.similarity import Exemplar, SimilarityRequest, similarity_map
from earth_embeddings.core.source import SourceSpec
from earth_embeddings.core.tiff import parse
from earth_embeddings.scripts.sample import CLASSES, class_interior_points

pytest.importorskip("distributed")

# Small windows and tasks, so that the sample (706 x 418 px) makes 54 windows in 15 tasks.
BLOCK = 96
TASK_PX = 256


class Log(Progress):
    def __init__(self, on_progress=None):
        self.lines = []
        self.on_progress = on_progress
        self.cancelled = False

    def info(self, message):
        self.lines.append(message)

    def warning(self, message):
        self.lines.append(message)

    def set_progress(self, percent):
        if self.on_progress is not None and 0 < percent < 100:
            self.on_progress(self, percent)

    def is_cancelled(self):
        return self.cancelled


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = DaskCluster(tmp_path_factory.mktemp("dask"))
    yield c
    c.close()


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def change_request(index, truth, out, **kw):
    grid = GridSpec(truth.notes["bbox_wgs84"], "EPSG:4326", "EPSG:32616")
    return ChangeRequest(str(out), grid, index, 2017, 2024, block_size=BLOCK, task_px=TASK_PX, **kw)


def workers_used(log):
    line = next(s for s in log.lines if s.startswith("Dask: computed by"))
    return line.count("tcp://")


def test_workers_cannot_import_the_plugin(cluster):
    with cluster.client() as client:
        found = client.run(importlib.util.find_spec, "earth_embeddings")
    assert len(found) == 2 and all(v is None for v in found.values())


def test_change_is_bit_identical_to_the_local_run_on_both_workers(cluster, sample_index, truth, tmp_path):
    local = change_map(change_request(sample_index, truth, tmp_path / "local.tif"))
    log = Log()
    remote = change_map(change_request(sample_index, truth, tmp_path / "dask.tif", scheduler=cluster.address), log)
    assert np.array_equal(read(tmp_path / "local.tif"), read(tmp_path / "dask.tif"))
    assert (remote.valid_pixels, remote.above_pixels) == (local.valid_pixels, local.above_pixels)
    assert (remote.p50, remote.p90, remote.p99) == (local.p50, local.p90, local.p99)
    assert np.array_equal(remote.histogram.counts, local.histogram.counts)
    assert [(a.pixel_count, a.mean, a.max) for a in remote.areas] == [
        (a.pixel_count, a.mean, a.max) for a in local.areas
    ]
    assert len(local.areas) > 0
    assert any("15 tasks" in s for s in log.lines) and workers_used(log) == 2


def test_two_embedding_rasters_on_the_cluster(cluster, wisconsin_raster, tmp_path):
    shifted = tmp_path / "shifted.tif"
    with rasterio.open(wisconsin_raster) as src:
        profile, data = src.profile, src.read()
    with rasterio.open(shifted, "w", **profile) as dst:
        dst.write(np.roll(data, 5, axis=2))
    for name, scheduler in (("local", None), ("dask", cluster.address)):
        request = ChangeRequest(
            str(tmp_path / f"{name}.tif"),
            input_a=wisconsin_raster,
            input_b=str(shifted),
            block_size=32,
            task_px=64,
            scheduler=scheduler,
        )
        change_map(request)
    assert np.array_equal(read(tmp_path / "local.tif"), read(tmp_path / "dask.tif"))


def exemplars(truth, cls_name, n=3, seed=0):
    pts = class_interior_points(truth, CLASSES.index(cls_name), 2017, n, seed=seed)
    return [
        Exemplar({"type": "Point", "coordinates": [lon, lat]}, "EPSG:4326", f"{cls_name} {i}")
        for i, (lon, lat) in enumerate(pts)
    ]


@pytest.mark.parametrize("aggregate,negatives,exclude_m", [("mean", 0, 0.0), ("max", 2, 0.0), ("mean", 0, 300.0)])
def test_similarity_is_bit_identical_with_the_same_top_places(
    cluster, sample_index, truth, tmp_path, aggregate, negatives, exclude_m
):
    base = SimilarityRequest(
        exemplars=exemplars(truth, "forest"),
        negatives=exemplars(truth, "cropland", negatives, seed=1) if negatives else (),
        output=str(tmp_path / "local.tif"),
        source=SourceSpec(sample_index, 2017),
        grid=GridSpec(truth.notes["bbox_wgs84"], "EPSG:4326", "EPSG:32616"),
        aggregate=aggregate,
        top_k=12,
        min_separation_m=150.0,
        threshold=0.8,
        block_size=BLOCK,
        task_px=TASK_PX,
        exclude_radius_m=exclude_m,  # places like these, elsewhere: the zones travel to the workers
    )
    local = similarity_map(base)
    log = Log()
    remote = similarity_map(replace(base, output=str(tmp_path / "dask.tif"), scheduler=cluster.address), log)
    assert np.array_equal(read(tmp_path / "local.tif"), read(tmp_path / "dask.tif"))
    assert len(local.top) == 12 and remote.top == local.top
    assert (remote.score_low, remote.score_max, remote.valid_pixels) == (
        local.score_low,
        local.score_max,
        local.valid_pixels,
    )
    assert [a.pixel_count for a in remote.areas] == [a.pixel_count for a in local.areas]
    assert workers_used(log) == 2


def test_cancel_cancels_the_tasks_and_leaves_no_output(cluster, sample_index, truth, tmp_path):
    def cancel(log, percent):
        log.cancelled = True

    with pytest.raises(Cancelled):
        change_map(change_request(sample_index, truth, tmp_path / "c.tif", scheduler=cluster.address), Log(cancel))
    assert not list(tmp_path.iterdir())
    with cluster.client() as client:  # nothing of the run is left on the workers
        assert not any(client.has_what().values())


def test_a_worker_killed_mid_run_changes_nothing(cluster, sample_index, truth, tmp_path):
    change_map(change_request(sample_index, truth, tmp_path / "local.tif"))
    pids = cluster.worker_pids()
    killed = []

    def kill(log, percent):
        if not killed:
            pid = sorted(pids.values())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    request = replace(change_request(sample_index, truth, tmp_path / "dask.tif", scheduler=cluster.address), task_px=64)
    change_map(request, Log(kill))
    assert killed and np.array_equal(read(tmp_path / "local.tif"), read(tmp_path / "dask.tif"))
    cluster.wait_for_workers()
    assert killed[0] not in cluster.worker_pids().values()  # the nanny started a new one


def test_an_unreachable_scheduler_is_one_sentence(sample_index, truth, tmp_path):
    with pytest.raises(EmbeddingsError, match=r"The Dask scheduler at tcp://127\.0\.0\.1:9 did not answer within"):
        change_map(change_request(sample_index, truth, tmp_path / "u.tif", scheduler="tcp://127.0.0.1:9"))
    assert not list(tmp_path.iterdir())


def test_a_damaged_tile_names_the_tile_and_the_worker(cluster, sample_dir, truth, tmp_path):
    folder = tmp_path / "annual"
    shutil.copytree(sample_dir, folder)
    tile = sorted((folder / "2024" / "16N").glob("*.tiff"))[0]
    raw = bytearray(tile.read_bytes())
    lv = parse(lambda off, n: bytes(raw[off : off + n]), len(raw)).levels[0]
    offset, size = lv.byte_range(5, 0, 0)
    raw[offset : offset + size] = b"\x00" * size  # the header is sound: only the workers' reads fail
    tile.write_bytes(bytes(raw))
    out = tmp_path / "damaged.tif"
    request = change_request(str(folder / "aef_index.csv"), truth, out, scheduler=cluster.address, min_area_m2=None)
    with pytest.raises(EmbeddingsError, match=rf"The Dask worker tcp://127\.0\.0\.1:\d+ could not .*{tile.stem}"):
        change_map(request)
    assert not out.exists()


def test_a_local_path_the_workers_cannot_see(sample_dir, truth, tmp_path_factory):
    # The workers get a mount namespace of their own in which the folder is empty. A chroot
    # whose root is not a mount point (the QGIS 3.40 one) cannot make one: there the test has
    # no way to hide a folder from the workers, so it says so instead of timing out.
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace for the workers here: {probe.stderr.strip()}")
    hidden = tmp_path_factory.mktemp("only-on-the-client")
    folder = hidden / "annual"
    shutil.copytree(sample_dir, folder)
    c = DaskCluster(tmp_path_factory.mktemp("dask-hidden"), workers=1, hide=hidden)
    try:
        out = tmp_path_factory.mktemp("out") / "h.tif"
        request = change_request(str(folder / "aef_index.csv"), truth, out, scheduler=c.address)
        with pytest.raises(EmbeddingsError, match=rf"The Dask worker tcp://\S+ cannot see {folder}/aef_index\.csv"):
            change_map(request)
        assert not out.exists()
    finally:
        c.close()


def test_polygons_of_a_map_above_max_pixels_are_refused_before_any_task(cluster, sample_index, truth, tmp_path):
    request = change_request(sample_index, truth, tmp_path / "big.tif", scheduler=cluster.address)
    request = replace(request, grid=replace(request.grid, max_pixels=100_000))
    with pytest.raises(EmbeddingsError, match="change areas .* limited to 100,000 pixels"):
        change_map(request)
    # Without polygons the cluster writes it: MAX_PIXELS guards what this computer computes.
    summary = change_map(replace(request, min_area_m2=None))
    assert summary.grid.pixels > 100_000 and (tmp_path / "big.tif").exists()


def readme_dask_commands():
    """The sh commands of README's "Larger than one computer" section, continuation lines joined."""
    import re

    from qgis_cli import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Larger than one computer", 1)[1].split("\n## ", 1)[0]
    return [
        line.strip()
        for block in re.findall(r"```sh\n(.*?)```", section, re.S)
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip()
    ]


def substitute(words, cluster, sample_index, tmp_path):
    out = []
    for w in words:
        if w.startswith("/tmp/"):
            w = str(tmp_path / w[len("/tmp/") :])
        if w.startswith("OUTPUT=/tmp/"):
            w = "OUTPUT=" + str(tmp_path / w[len("OUTPUT=/tmp/") :])
        out.append(
            w.replace("tcp://scheduler-host:8786", cluster.address).replace("/data/aef/aef_index.csv", sample_index)
        )
    return out


def test_readme_command_line_and_qgis_process_on_the_cluster(cluster, sample_index, tmp_path):
    import json
    import shlex
    import subprocess

    from qgis_cli import REPO, make_profile, run_algorithm

    commands = readme_dask_commands()
    assert any(c.startswith("dask scheduler") for c in commands) and any(c.startswith("dask worker") for c in commands)
    grid = GridSpec((-90.02, 44.44, -89.98, 44.46), "EPSG:4326", "EPSG:32616")
    local = change_map(ChangeRequest(str(tmp_path / "local.tif"), grid, sample_index, 2017, 2024))

    cli = next(c for c in commands if "python3 -m earth_embeddings.core change" in c)
    words = substitute(shlex.split(cli), cluster, sample_index, tmp_path)
    assert words[0].startswith("PYTHONPATH=") and words[1] == "python3"
    env = dict(os.environ, PYTHONPATH=str(REPO / "build" / "pkgpath"))
    proc = subprocess.run(["/usr/bin/python3"] + words[2:], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Dask: computed by" in proc.stderr and "Traceback" not in proc.stderr
    assert np.array_equal(read(tmp_path / "change_cli.tif"), read(tmp_path / "local.tif"))
    areas = json.loads((tmp_path / "change_cli.geojson").read_text())["features"]
    assert [f["properties"]["pixels"] for f in areas] == [a.pixel_count for a in local.areas]

    qp = next(c for c in commands if c.startswith("qgis_process.bin run"))
    words = substitute(shlex.split(qp), cluster, sample_index, tmp_path)
    params = dict(w.split("=", 1) for w in words[4:])
    proc = run_algorithm(words[2], params, make_profile(tmp_path / "profile"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    assert np.array_equal(read(tmp_path / "change_cluster.tif"), read(tmp_path / "local.tif"))


def test_processing_run_with_dask_scheduler(cluster, run_alg, sample_index, truth, tmp_path):
    from ee_helpers import extent_param

    base = {"SOURCE": sample_index, "YEAR_A": 2017, "YEAR_B": 2024, "TARGET_CRS": "EPSG:32616"}
    base["EXTENT"] = extent_param(truth.notes["bbox_wgs84"])
    run_alg("embeddings:change", dict(base, OUTPUT=str(tmp_path / "local.tif")))
    res = run_alg("embeddings:change", dict(base, OUTPUT=str(tmp_path / "dask.tif"), DASK_SCHEDULER=cluster.address))
    assert np.array_equal(read(tmp_path / "local.tif"), read(tmp_path / "dask.tif"))
    assert res["VALID_PIXELS"] > 0


def test_without_distributed_the_scheduler_says_what_to_install(sample_index, truth, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # what importing a missing package gives
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(
        EmbeddingsError, match=r"Running on a Dask cluster \(DASK_SCHEDULER\) needs distributed.*--no-deps"
    ):
        change_map(change_request(sample_index, truth, tmp_path / "n.tif", scheduler="tcp://127.0.0.1:9"))
    assert not list(tmp_path.iterdir())
