"""Benchmark: a change map on a Dask cluster of 1 worker vs 2 workers on this machine, side by side.

Two clusters are started once (tests/dask_cluster.py: a scheduler and worker processes of the
system's Python that cannot import the plugin; one thread per worker): one with 1 worker, one
with 2. The change 2017 -> 2024 over the benchmark collection's whole 16N mosaic (about 15 M
pixels at 10 m, the product's 1024 px internal blocks, tasks of about 2048 px) then runs as
fresh client processes, interleaved round by round: on this computer (no scheduler), on the
1-worker cluster and on the 2-worker cluster. Every run's raster is hashed: all must be equal.
Writes bench-results/dask.json and .md, with the on-paper plan for a national map.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

GERMANY_PX = 3.6e9  # 357,000 km2 at 10 m
BANDS = 64


def child(scheduler: str, out: str) -> None:
    import rasterio

    from earth_embeddings.core.change import ChangeRequest, change_map
    from earth_embeddings.core.grid import GridSpec
    from earth_embeddings.core.progress import Progress

    class Log(Progress):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def info(self, message: str) -> None:
            self.lines.append(message)

    facts = bl.collection_facts()
    log = Log()
    grid = GridSpec(bl.extent_16n(facts, 1.0, 1.0), "EPSG:32616", "EPSG:32616", 10.0)
    request = ChangeRequest(out, grid, facts["index"], 2017, 2024, min_area_m2=None, scheduler=scheduler or None)
    summary = change_map(request, log)
    with rasterio.open(out) as ds:
        digest = hashlib.sha1(ds.read(1).tobytes()).hexdigest()
    tasks = next((ln for ln in log.lines if ln.startswith("Dask:") and "tasks" in ln), "")
    bl.child_result(
        {
            "pixels": summary.grid.pixels,
            "sha1": digest,
            "tasks_line": tasks,
            "size": [summary.grid.width, summary.grid.height],
        }
    )


def _cluster_class():
    path = Path(__file__).resolve().parent.parent / "tests" / "dask_cluster.py"
    spec = importlib.util.spec_from_file_location("earth_embeddings_dask_cluster", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DaskCluster


def main() -> None:
    bl.collection()  # built once, shared with the other benchmarks
    DaskCluster = _cluster_class()
    tmp = Path(tempfile.mkdtemp(prefix="ee-bench-dask-"))
    one = DaskCluster(tmp / "one", workers=1)
    two = DaskCluster(tmp / "two", workers=2)
    try:
        me = [bl.PY, __file__, "child"]
        variants = {
            "local": me + ["", str(tmp / "local.tif")],
            "dask_1_worker": me + [one.address, str(tmp / "one.tif")],
            "dask_2_workers": me + [two.address, str(tmp / "two.tif")],
        }
        m = bl.measure(variants, env=bl.child_env())
    finally:
        one.close()
        two.close()
    payloads = [p for name in variants for p in m[name]["payloads"]]
    identical = len({p["sha1"] for p in payloads}) == 1
    pixels = m["local"]["payload"]["pixels"]
    tasks_line = m["dask_2_workers"]["payload"]["tasks_line"]
    n_tasks = int(tasks_line.split(" in ")[1].split()[0].replace(",", ""))
    ratio = bl.paired_ratio(m, "dask_1_worker", "dask_2_workers")
    per_task_s = m["dask_1_worker"]["median_wall_s"] / n_tasks
    px_per_task = pixels / n_tasks
    px_s_worker = px_per_task / per_task_s
    task_in_mb = 2048 * 2048 * BANDS * 2 / 1e6  # two years of int8 codes, uncompressed
    task_out_mb = 2048 * 2048 * 4 / 1e6  # float32 change
    national_tasks = GERMANY_PX / (2048 * 2048)
    rows = [
        [name, m[name]["median_wall_s"], m[name]["median_cpu_s"], m[name]["median_peak_rss_mb"]] for name in variants
    ]
    plan_rows = []
    for n in (1, 10, 50, 200):
        minutes = GERMANY_PX / (px_s_worker * n) / 60
        plan_rows.append([n, f"{minutes:,.1f} min"])
    md = "\n\n".join(
        [
            "# Dask: change map on 1 vs 2 workers (bench_dask.py)",
            f"Change 2017 -> 2024 over {m['local']['payload']['size'][0]} x {m['local']['payload']['size'][1]} = "
            f"{pixels:,} px (the 16N mosaic of the benchmark collection, 1024 px internal blocks); {tasks_line} "
            f"Medians of {m['_rounds']} interleaved rounds; client CPU only in cpu_s (workers are other processes).",
            bl.table(["variant", "wall s", "client CPU s", "client peak RSS MB"], rows),
            f"1 worker / 2 workers (wall, paired by round): **{ratio}x**. All {len(payloads)} rasters "
            f"bit-identical: {identical}.",
            f"Per task (1 worker: the run's wall time over its tasks, so connecting, shipping the code and "
            f"opening the collection count too): {per_task_s:.2f} s for "
            f"{px_per_task / 1e6:.2f} M px = {px_s_worker / 1e6:.2f} M px/s per worker thread.",
            "## On paper: Germany (3.6 billion px a year at 10 m)",
            f"{national_tasks:,.0f} tasks of 2048 x 2048 px; each reads {task_in_mb:,.0f} MB of int8 codes "
            f"(two years, uncompressed; the compressed bytes fetched depend on the product) and sends {task_out_mb:.1f} MB of float32 "
            f"to the client, which receives {GERMANY_PX * 4 / 1e9:,.1f} GB in all (less once compressed in the "
            "GeoTIFF). At the per-task throughput measured here (synthetic data on local disk, one thread per "
            "worker), the expected time on N workers in the same region as the data, if reading keeps up:",
            bl.table(["workers (1 thread each)", "expected time"], plan_rows),
        ]
    )
    bl.write(
        "dask",
        {
            "measure": m,
            "identical": identical,
            "ratio_1_over_2": ratio,
            "tasks": n_tasks,
            "per_task_s": per_task_s,
            "px_per_s_per_worker": px_s_worker,
        },
        md,
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
