"""The block pipeline every map runs on: readers of one or more sources on one grid, the
windows to visit, and a stream of (window, blocks) with progress and cancellation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from .block import Block
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
    """The windows of ``grid`` in visiting order (row by row), small enough for every reader."""
    return list(grid.blocks(min(r.window_size(block_size) for r in readers)))


def stream(
    readers: Sequence[MosaicReader], windows: Sequence[Window], progress: Progress
) -> Iterator[tuple[Window, list[Block]]]:
    """Each window with one block per reader, in order. Cancellation is checked before each
    window, so a run stops after at most the window it is working on."""
    for reader in readers:
        reader.expect(windows)
    for i, window in enumerate(windows):
        progress.check_cancelled()
        yield window, [reader.read(window) for reader in readers]
        progress.set_progress(100.0 * (i + 1) / len(windows))
