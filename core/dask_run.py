"""Maps on a Dask cluster (dask.distributed) when one computer is not enough: the client's side.

The client (QGIS, or the command line) plans the map exactly as a local run: the same grid
and the same windows (core.pipeline.windows_for, which follows the source's internal blocks).
Neighbouring windows are grouped into tasks of about ``task_px`` x ``task_px`` pixels; each
task (core.dask_tasks) opens the source on its worker, computes every one of its windows with
the local kernel and returns the result blocks and its tallies; the client writes the blocks
into the output as they arrive and adds the tallies up. The windows must be the local ones:
a kernel's rounding depends on how many pixels it is given at once (a 1 x 64 matrix product
over another number of pixels rounds some scores differently), so the same windows are what
makes the outputs bit-identical.

The core ships itself: its modules, zipped as a package named after a hash of their content
(``earth_embeddings_core_<hash>``), are registered with the scheduler as a worker plugin, so
every worker, including one that joins or restarts later, imports exactly this code; a
worker never reloads a module it already has, and a new hash is a new name. Workers need
numpy, rasterio, pyproj, requests and distributed, not the plugin.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import shutil
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .deps import require
from .errors import Cancelled, EmbeddingsError
from .grid import Grid, Window
from .output import RasterWriter
from .progress import Progress
from .reader import MosaicReader
from .remote import cache_dir
from .source import SourceSpec

TASK_PX = 2048  # pixels per side of a task (a whole number of the local windows)
CONNECT_TIMEOUT_S = 10.0
POLL_S = 0.2  # how often a waiting client looks at cancellation


@dataclass(frozen=True)
class ClusterRun:
    """Run a map's windows on the Dask scheduler at ``scheduler``; ``sources`` say what every
    worker opens (the same sources the map reads, in order)."""

    scheduler: str
    sources: tuple[SourceSpec, ...]
    task_px: int = TASK_PX


def is_local(path: str | None) -> bool:
    return bool(path) and not str(path).startswith(("http://", "https://", "/vsi"))


def for_workers(spec: SourceSpec) -> SourceSpec:
    """``spec`` with local paths made absolute (workers do not share the client's folder)."""
    collection = os.path.abspath(spec.collection) if spec.collection and is_local(spec.collection) else spec.collection
    raster = os.path.abspath(spec.raster) if spec.raster and is_local(spec.raster) else spec.raster
    return SourceSpec(collection or None, spec.year, raster)


def client_pixel_limit(output: str, bytes_per_pixel: int = 4) -> int:
    """With a scheduler the output's size is bounded by what the client can write: the free
    space of the output's folder, at ``bytes_per_pixel`` uncompressed."""
    folder = Path(output).parent
    free = shutil.disk_usage(folder if folder.exists() else Path.cwd()).free
    return max(1, free // bytes_per_pixel)


def check_whole_raster(grid: Grid, max_pixels: int, what: str) -> None:
    """Outputs found on the assembled raster are computed on the client, which MAX_PIXELS guards
    as in a local run: refuse them (before any task runs) for a larger map."""
    if max_pixels and grid.pixels > max_pixels:
        raise EmbeddingsError(
            f"The {what} are found on this computer from the assembled map, which is limited to "
            f"{int(max_pixels):,} pixels (MAX_PIXELS), and this map has {grid.pixels:,}: leave that output "
            "unset to map the whole extent on the cluster, or choose a smaller extent."
        )


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """A distributed.Client of the scheduler at ``address`` with at least one worker, or one
    sentence within the timeout."""
    distributed = _distributed()
    try:
        client = distributed.Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EmbeddingsError(
            f"The Dask scheduler at {address} did not answer within {timeout_s:g} s ({reason[:160]}); start one "
            f"with 'dask scheduler' and workers with 'dask worker {address}', check the address (tcp://host:8786), "
            "or leave DASK_SCHEDULER empty to run on this computer."
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except Exception:
        client.close()
        raise EmbeddingsError(
            f"The Dask scheduler at {address} has no workers; start some with 'dask worker {address}'."
        ) from None
    return client


PURPOSE = "Running on a Dask cluster (DASK_SCHEDULER)"


def _distributed(module: str = "distributed") -> Any:
    """dask.distributed (optional: one sentence with the install command when missing), untyped."""
    require("dask.distributed", PURPOSE)
    return importlib.import_module(module)


def core_package() -> tuple[str, Path]:
    """(package name, zip) of this core: the name carries a hash of the modules' content."""
    folder = Path(__file__).resolve().parent
    files = sorted(folder.glob("*.py"))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    name = f"earth_embeddings_core_{digest.hexdigest()[:16]}"
    path = cache_dir() / "dask" / f"{name}.zip"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for f in files:
                z.writestr(f"{name}/{f.name}", f.read_bytes())
        os.replace(tmp, path)
    return name, path


def ship_core(client: Any) -> ModuleType:
    """Register this core with the scheduler for every worker; the client imports the same
    zip, so that the task function it sends is the workers' own (pickled by name)."""
    name, path = core_package()
    client.register_worker_plugin(_distributed("distributed.diagnostics.plugin").UploadFile(str(path)), name=name)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    return importlib.import_module(f"{name}.dask_tasks")


def task_groups(windows: Sequence[Window], task_px: int) -> list[list[Window]]:
    """The windows grouped into tasks of about ``task_px`` x ``task_px`` pixels: whole windows,
    neighbours in the row-by-row order of the windows' columns and rows."""
    cols = sorted({w.col_off for w in windows})
    rows = sorted({w.row_off for w in windows})
    width = max(w.width for w in windows)
    height = max(w.height for w in windows)
    per_col = max(1, round(task_px / width))
    per_row = max(1, round(task_px / height))
    col_at = {c: i for i, c in enumerate(cols)}
    row_at = {r: i for i, r in enumerate(rows)}
    groups: dict[tuple[int, int], list[Window]] = {}
    for w in windows:
        groups.setdefault((row_at[w.row_off] // per_row, col_at[w.col_off] // per_col), []).append(w)
    return [groups[k] for k in sorted(groups)]


def _local_paths(cluster: ClusterRun) -> list[str]:
    return [p for s in cluster.sources for p in (s.collection, s.raster) if p and is_local(p)]


class _Call:
    """Pickles as "call fn(*args)": unpickling it runs the task."""

    def __init__(self, fn: Callable[..., Any], *args: Any):
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return self.fn, self.args


def _call_blob(fn: Callable[..., Any], *args: Any) -> bytes:
    """A task as bytes that ``pickle.loads`` runs. Newer schedulers (Debian 13's distributed)
    unpickle the task graph themselves, and the scheduler has no copy of the plugin's core (only
    the workers get it): with the call inside bytes, the scheduler sees only ``pickle.loads``."""
    return pickle.dumps(_Call(fn, *args), protocol=pickle.HIGHEST_PROTOCOL)


def run_tasks(
    cluster: ClusterRun,
    kind: str,
    params: dict[str, Any],
    grid: Grid,
    readers: Sequence[MosaicReader],
    windows: Sequence[Window],
    out: RasterWriter,
    merge: Callable[[dict[str, Any]], None],
    progress: Progress,
) -> None:
    """Compute ``windows`` on the cluster: each result block goes into ``out`` as it arrives,
    each task's tallies to ``merge``. Cancelling cancels the tasks; a task's error becomes one
    sentence naming the worker and the window; a worker lost mid-run has its tasks recomputed
    by the scheduler."""
    groups = task_groups(windows, cluster.task_px)
    client = connect(cluster.scheduler)
    futures: list[Any] = []
    try:
        tasks = ship_core(client)
        workers = sorted(client.scheduler_info()["workers"])
        _check_paths(client, tasks, _local_paths(cluster))
        specs = [for_workers(s) for s in cluster.sources]
        job = {
            "kind": kind,
            "sources": [tasks.source_tuple(s) for s in specs],
            "grid": tasks.grid_tuple(grid),
            "plans": [tasks.plan_key(r.plan) for r in readers],
            "params": params,
        }
        progress.info(
            f"Dask: {len(windows):,} windows in {len(groups):,} tasks of about {cluster.task_px} x "
            f"{cluster.task_px} px on {len(workers)} worker(s) at {cluster.scheduler}."
        )
        futures = [
            client.submit(
                pickle.loads,
                _call_blob(tasks.run_task, job, [tasks.window_tuple(w) for w in group]),
                pure=False,
                retries=0,
            )
            for group in groups
        ]
        by_worker: Counter[str] = Counter()
        pending = list(futures)
        done_count = 0
        while pending:
            if progress.is_cancelled():
                raise Cancelled()
            done = [f for f in pending if f.done()]
            if not done:
                time.sleep(POLL_S)
                continue
            pending = [f for f in pending if not f.done() or f not in done]
            for future in done:
                result = _result(future)
                future.release()
                for window, block in result.pop("blocks"):
                    out.write(block[None], Window(*window))
                by_worker[result["worker"]] += 1
                merge(result)
                done_count += 1
                progress.set_progress(100.0 * done_count / len(groups))
        progress.info(
            "Dask: computed by "
            + ", ".join(f"{w} ({n} task{'s' if n != 1 else ''})" for w, n in sorted(by_worker.items()))
            + "."
        )
    except BaseException:
        if futures:
            client.cancel(futures)
        raise
    finally:
        client.close()


def _result(future: Any) -> dict[str, Any]:
    """A task's result, or its failure as a sentence."""
    try:
        result: dict[str, Any] = future.result()
    except Exception as exc:
        if isinstance(exc, _distributed().KilledWorker):
            raise EmbeddingsError(
                "Dask workers died several times while computing one task of the map (out of memory, or "
                "killed); see the workers' logs, give them more memory, or run with fewer threads per worker."
            ) from None
        raise EmbeddingsError(f"A Dask task failed: {str(exc) or type(exc).__name__}.") from None
    if "error" in result:
        c, r, _, _ = result["window"]
        raise EmbeddingsError(
            f"The Dask worker {result['worker']} could not compute the window at column {c}, row {r}: "
            f"{result['error']}"
        )
    return result


def _check_paths(client: Any, tasks: ModuleType, paths: Sequence[str]) -> None:
    """Refuse local paths that some worker cannot see, naming the first such worker."""
    if not paths:
        return
    absolute = [os.path.abspath(p) for p in paths]
    missing: dict[str, list[str]] = client.run(tasks.missing_paths, absolute)
    for worker, gone in sorted(missing.items()):
        if gone:
            raise EmbeddingsError(
                f"The Dask worker {worker} cannot see {gone[0]}: a local path must be the same on every "
                "worker (a shared disk mounted at the same place); or serve the collection over http(s) and "
                "give its URL."
            )
