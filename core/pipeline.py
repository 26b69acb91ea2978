"""The block pipeline every map runs on: readers of one or more sources on one grid, the
windows to visit, and a stream of (window, blocks) with progress and cancellation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager

from .block import Block
from .blocks import pool
from .grid import DEFAULT_BLOCK, Grid, Window
from .progress import Progress
from .reader import MosaicReader
from .source import EmbeddingSource


@contextmanager
def reading(sources: Sequence[EmbeddingSource], grid: Grid) -> Iterator[list[MosaicReader]]:
    """Readers of ``sources`` onto ``grid``, closed together."""
    with ExitStack() as stack:
        yield [stack.enter_context(s.reader(grid)) for s in sources]


def windows_for(grid: Grid, readers: Sequence[MosaicReader], block_size: int = DEFAULT_BLOCK) -> list[Window]:
    """The windows of ``grid`` in visiting order (row by row), small enough for every reader.

    Where the first reader's tiles lie on the grid's own pixels, the windows follow those
    tiles' internal blocks (a whole number of blocks each, about ``block_size`` pixels), so
    that every compressed block is decoded for one window only. Elsewhere (other CRSs,
    coarser resolutions, offsets of a fraction of a pixel) they are ``block_size`` squares.
    """
    size = min(r.window_size(block_size) for r in readers)
    cols = _cuts(grid.width, size, readers[0].block_spans(axis=1) if readers else [])
    rows = _cuts(grid.height, size, readers[0].block_spans(axis=0) if readers else [])
    return [Window(c0, r0, c1 - c0, r1 - r0) for r0, r1 in rows for c0, c1 in cols]


def _cuts(length: int, size: int, spans: Sequence[tuple[int, int, int, int]]) -> list[tuple[int, int]]:
    """[start, stop) pieces of 0..length: within each (start, stop, phase, block) span the
    cuts fall on the block boundaries (phase + k * block), a whole number of blocks per
    piece; spans come in priority order and a column belongs to the first span holding it;
    the rest is cut every ``size``. Pieces shorter than a sixteenth of ``size`` join their
    neighbour."""
    cuts = {0, length}
    taken: list[tuple[int, int]] = []
    for start, stop, phase, block in spans:
        step = block * max(1, round(size / block))
        for lo, hi in _subtract((max(0, start), min(length, stop)), taken):
            cuts.update((lo, hi))
            first = phase + ((lo - phase) // step + 1) * step
            cuts.update(range(first, hi, step))
            taken.append((lo, hi))
    free_from = 0
    for a, b in sorted(taken) + [(length, length)]:  # uniform cuts where no span applies
        cuts.update(range(free_from, a, size))
        free_from = max(free_from, b)
    points = sorted(c for c in cuts if 0 <= c <= length)
    pieces = [(a, b) for a, b in zip(points, points[1:]) if b > a]
    small = max(1, size // 16)
    merged: list[tuple[int, int]] = []
    for a, b in pieces:
        if merged and (b - a < small or merged[-1][1] - merged[-1][0] < small):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def _subtract(span: tuple[int, int], taken: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``span`` outside every interval of ``taken``."""
    parts = [span] if span[1] > span[0] else []
    for a, b in taken:
        parts = [p for lo, hi in parts for p in ((lo, min(hi, a)), (max(lo, b), hi)) if p[1] > p[0]]
    return parts


def stream(
    readers: Sequence[MosaicReader], windows: Sequence[Window], progress: Progress
) -> Iterator[tuple[Window, list[Block]]]:
    """Each window with one block per reader, in order.

    While the caller computes one window, the next is read: every reader on a thread of its
    own (both years at once), each fanning its blocks out to the decode or HTTP threads.
    Cancellation is checked before each window is handed out, so a run stops after at most
    the window it is working on; a window read ahead is then waited for and dropped.

    A window's blocks are valid until the loop asks for the next window: their arrays are
    released then (otherwise the loop's own variables would keep a third window in memory
    while the next two are read). Copy what must outlive the loop body.
    """
    for reader in readers:
        reader.expect(windows)
    if not windows:
        return
    ahead = pool("read", max(1, len(readers)))

    def read_all(window: Window) -> list[Future[Block]]:
        return [ahead.submit(reader.read, window) for reader in readers]

    pending: list[Future[Block]] = read_all(windows[0])
    try:
        for i, window in enumerate(windows):
            progress.check_cancelled()
            blocks = [f.result() for f in pending]
            pending = read_all(windows[i + 1]) if i + 1 < len(windows) else []
            yield window, blocks
            for block in blocks:  # the caller is done with them (see the docstring)
                block.release()
            progress.set_progress(100.0 * (i + 1) / len(windows))
    finally:
        # Let a read in flight end before the readers close its tiles; its result is dropped.
        for f in pending:
            f.cancel() or f.exception()
