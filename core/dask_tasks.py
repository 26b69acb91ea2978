"""What a Dask worker runs for a map (see core.dask_run, the client's side).

A task is a group of the local run's windows. It opens the source itself (an http(s) mirror,
the public product, or a path every worker sees), reads its windows with the same reader on
the same grid as a local run, computes each window with the same kernel, and returns the
result blocks and its tallies. Everything it takes and returns is made of Python builtins and
NumPy arrays, so that neither side needs the other's copy of these classes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from affine import Affine

from .grid import Grid, Window
from .reader import MosaicReader, Plan
from .source import EmbeddingSource, RasterSource, SourceSpec, open_source, open_years
from .threads import keep_proj_context

# Tiles are looked up around the task's windows with this margin (on top of the index
# query's own), so that a tile whose pixels run past its footprint is found as locally.
TILE_PAD_PX = 256

SourceTuple = tuple[str | None, int | None, str | None]  # SourceSpec's fields
GridTuple = tuple[str, tuple[float, float, float, float, float, float], int, int]
WindowTuple = tuple[int, int, int, int]
PlanKey = tuple[int, bool, int, int]
# (readers on the grid, the grid, the windows, the kind's parameters) -> the kind's tallies
TaskKernel = Callable[[Sequence[MosaicReader], Grid, Sequence[Window], dict[str, Any]], dict[str, Any]]


def grid_tuple(grid: Grid) -> GridTuple:
    t = grid.transform
    return (grid.crs, (t.a, t.b, t.c, t.d, t.e, t.f), grid.width, grid.height)


def grid_of(spec: GridTuple) -> Grid:
    crs, t, width, height = spec
    return Grid(crs, Affine(*t), int(width), int(height))


def window_tuple(w: Window) -> WindowTuple:
    return (w.col_off, w.row_off, w.width, w.height)


def plan_key(plan: Plan) -> PlanKey:
    """What must agree between the client's plan and a task's for the same pixels."""
    return (plan.bands, plan.quantised, plan.factor, plan.level_factor)


def source_tuple(spec: SourceSpec) -> SourceTuple:
    return (spec.collection, spec.year, spec.raster)


def worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:
        return "this computer"


def missing_paths(paths: Sequence[str]) -> list[str]:
    """The local paths (of a collection or raster) this worker cannot see."""
    return [p for p in paths if not os.path.exists(p)]


def _open(specs: Sequence[SourceTuple], stack: ExitStack) -> list[EmbeddingSource]:
    if all(c is not None and r is None for c, _, r in specs) and len({c for c, _, _ in specs}) == 1:
        # Years of one collection: its index is opened once, as change_map does.
        years = [int(y) for _, y, _ in specs if y is not None]
        if len(years) == len(specs):
            return [stack.enter_context(s) for s in open_years(specs[0][0], years)]
    opened: list[EmbeddingSource] = []
    for collection, year, raster in specs:
        src = RasterSource(raster) if raster else open_source(SourceSpec(collection, year, raster))
        opened.append(stack.enter_context(src))
    return opened


def _readers(
    sources: Sequence[EmbeddingSource],
    grid: Grid,
    windows: Sequence[Window],
    plans: Sequence[PlanKey],
    stack: ExitStack,
) -> list[MosaicReader]:
    """Readers on the whole grid (pixel centres computed as locally) of the tiles around the
    windows; a reader whose plan differs from the client's (a tile far away changed the
    sampling) reads all the grid's tiles, exactly as the local run."""
    c0 = max(0, min(w.col_off for w in windows) - TILE_PAD_PX)
    r0 = max(0, min(w.row_off for w in windows) - TILE_PAD_PX)
    c1 = min(grid.width, max(w.col_off + w.width for w in windows) + TILE_PAD_PX)
    r1 = min(grid.height, max(w.row_off + w.height for w in windows) + TILE_PAD_PX)
    around = Grid(grid.crs, grid.window_transform(Window(c0, r0, 0, 0)), c1 - c0, r1 - r0)
    readers = []
    for src, expected in zip(sources, plans):
        reader: MosaicReader | None = None
        try:
            reader = stack.enter_context(MosaicReader(src.label, src.tiles_for(around), grid))
        except Exception:
            reader = None
        if reader is None or plan_key(reader.plan) != tuple(expected):
            reader = stack.enter_context(src.reader(grid))
        readers.append(reader)
    return readers


def _kernel(kind: str) -> TaskKernel:
    # Imported here: change and similarity import the client's side, which imports this module.
    if kind == "change":
        from .change import change_task

        return change_task
    if kind == "similarity":
        from .similarity import similarity_task

        return similarity_task
    raise ValueError(f"no task kernel for {kind!r}")


def run_task(job: dict[str, Any], windows: Sequence[WindowTuple]) -> dict[str, Any]:
    """One task of ``job`` (its "kind", "sources", "grid", "plans", "params"): its windows'
    result blocks ("blocks": [(window, array)]) and the kind's tallies, or {"error": sentence}
    naming what failed; "worker" is the worker that computed it."""
    worker = worker_address()
    try:
        keep_proj_context()
        grid = grid_of(job["grid"])
        wins = [Window(*w) for w in windows]
        with ExitStack() as stack:
            sources = _open(job["sources"], stack)
            readers = _readers(sources, grid, wins, job["plans"], stack)
            result = _kernel(job["kind"])(readers, grid, wins, job["params"])
    except Exception as exc:
        return {"error": str(exc) or type(exc).__name__, "worker": worker, "window": tuple(windows[0])}
    result["worker"] = worker
    return result
