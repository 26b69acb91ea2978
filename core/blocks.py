"""Compressed blocks fetched and decoded by the reader itself: concurrently, each once.

A ``TileBlocks`` holds one GeoTIFF's layout (``core.tiff``) and a byte source: a local file
read with ``os.pread`` or an HTTP(S) object read with range requests, many in flight at a
time, each on its own connection with the plugin's User-Agent (no GDAL, so no environment
that must be entered on every thread). ``read`` assembles any window of a level from the
blocks under it: blocks the window covers entirely are decoded straight into the result and
forgotten; blocks it covers in part are kept, decoded, in a small shared cache until a
neighbouring window takes the rest.

Settings (environment variables, also set by the plugin's options):
``EARTH_EMBEDDINGS_THREADS`` decode threads (default: the number of cores),
``EARTH_EMBEDDINGS_HTTP_CONCURRENCY`` requests in flight (default 16),
``EARTH_EMBEDDINGS_BLOCK_CACHE_MB`` the cache of partly used blocks (default 96).
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import Array
from .errors import EmbeddingsError
from .tiff import Layout, Level, can_decode, decode_into, parse


def _setting(name: str, default: int, low: int = 1) -> int:
    try:
        return max(low, int(os.environ.get(name, "") or default))
    except ValueError:
        return default


def decode_threads() -> int:
    return _setting("EARTH_EMBEDDINGS_THREADS", os.cpu_count() or 1)


def http_concurrency() -> int:
    return _setting("EARTH_EMBEDDINGS_HTTP_CONCURRENCY", 16)


def cache_budget() -> int:
    return _setting("EARTH_EMBEDDINGS_BLOCK_CACHE_MB", 96, low=0) * 1024 * 1024


# ----------------------------------------------------------------------------- pools

_pools: dict[tuple[str, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def pool(kind: str, workers: int) -> ThreadPoolExecutor:
    """A shared pool of daemon-like worker threads (one per kind and size)."""
    with _pools_lock:
        key = (kind, workers)
        p = _pools.get(key)
        if p is None:
            p = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"embeddings-{kind}")
            _pools[key] = p
        return p


# ----------------------------------------------------------------------------- statistics


class Counters:
    """What was fetched and decoded (for tests and benchmarks)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.decoded: dict[tuple[str, int, int, int, int], int] = {}
        self.bytes_fetched = 0
        self.requests = 0

    def reset(self) -> None:
        with self.lock:
            self.decoded.clear()
            self.bytes_fetched = 0
            self.requests = 0

    def note_decode(self, key: tuple[str, int, int, int, int]) -> None:
        with self.lock:
            self.decoded[key] = self.decoded.get(key, 0) + 1

    def note_fetch(self, nbytes: int) -> None:
        with self.lock:
            self.bytes_fetched += nbytes
            self.requests += 1


COUNTERS = Counters()


# ----------------------------------------------------------------------------- byte sources


class ByteSource:
    """Reads byte ranges of one file."""

    remote = False

    def size(self) -> int | None:
        return None

    def read_at(self, offset: int, size: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalFile(ByteSource):
    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def _open(self) -> int:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            return self._fd

    def size(self) -> int | None:
        return os.fstat(self._open()).st_size

    def read_at(self, offset: int, size: int) -> bytes:
        fd = self._open()
        if hasattr(os, "pread"):
            data = os.pread(fd, size, offset)
        else:  # pragma: no cover - Windows
            with self._lock:
                os.lseek(fd, offset, os.SEEK_SET)
                data = os.read(fd, size)
        if len(data) != size:
            raise OSError(f"{self.path} ends before byte {offset + size}")
        COUNTERS.note_fetch(size)
        return data

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


_sessions = threading.local()


def _session() -> Any:
    s = getattr(_sessions, "session", None)
    if s is None:
        import requests
        from requests.adapters import HTTPAdapter

        from .remote import USER_AGENT

        s = requests.Session()
        s.headers["User-Agent"] = USER_AGENT
        s.headers["Accept-Encoding"] = "identity"
        s.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0))
        s.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0))
        _sessions.session = s
    return s


class HttpFile(ByteSource):
    """An object on an HTTP(S) server read with single-range requests (one connection per
    thread; retries on 429/5xx, dropped connections and short bodies)."""

    remote = True

    def __init__(self, url: str):
        self.url = url
        self._size: int | None = None

    def read_at(self, offset: int, size: int) -> bytes:
        from .remote import RETRY_STATUSES, http_error_message, http_limits

        connect_s, read_s, retries = http_limits()
        last = ""
        for attempt in range(retries + 1):
            if attempt:  # exponential backoff with jitter, so concurrent retries spread out
                time.sleep(random.uniform(0.5, 1.0) * min(4.0, 0.1 * 2 ** (attempt - 1)))
            try:
                r = _session().get(
                    self.url,
                    headers={"Range": f"bytes={offset}-{offset + size - 1}"},
                    timeout=(connect_s, read_s),
                )
            except Exception as exc:  # requests' connection and read errors
                last = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
                continue
            if r.status_code in RETRY_STATUSES:
                last = f"HTTP {r.status_code}"
                continue
            if r.status_code == 200 and len(r.content) >= offset + size:
                data = r.content[offset : offset + size]  # a server that ignores Range
            elif r.status_code == 206:
                data = r.content
            else:
                raise OSError(http_error_message(self.url, r.status_code))
            total = _total_size(r.headers.get("Content-Range", ""))
            if total is not None and offset + size > total:
                size = max(0, total - offset)  # a header read past the end of a small file
            if len(data) != size:
                last = f"{len(data)} bytes received of {size}"
                continue
            COUNTERS.note_fetch(len(r.content))
            return bytes(data)
        raise OSError(f"reading {self.url} failed after {retries + 1} tries ({last})")


def _total_size(content_range: str) -> int | None:
    """The object's size from a Content-Range header ("bytes 0-99/1234"), if it says."""
    _, _, total = content_range.rpartition("/")
    return int(total) if total.isdigit() else None


def byte_source(gdal_path: str) -> ByteSource | None:
    """The byte source for a GDAL path this module can read itself (a local file, or
    /vsicurl/ of http(s)), else None."""
    path = gdal_path
    if path.startswith("/vsicurl/"):
        path = path[len("/vsicurl/") :]
    if path.startswith(("http://", "https://")):
        return HttpFile(path)
    if path.startswith("/vsi") or not os.path.isfile(path):
        return None
    return LocalFile(path)


# ----------------------------------------------------------------------------- cache


@dataclass
class Piece:
    """The part of a decoded block a window left unused: rows and columns from (row, col)."""

    data: Array
    row: int
    col: int

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def holds(self, rows: slice, cols: slice) -> bool:
        h, w = self.data.shape[:2]
        return bool(
            self.row <= rows.start
            and rows.stop <= self.row + h
            and self.col <= cols.start
            and cols.stop <= self.col + w
        )


@dataclass
class Pieces:
    """What the cache keeps of one block: one or two of its rectangles."""

    parts: list[Piece]

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)

    def holding(self, rows: slice, cols: slice) -> Piece | None:
        return next((p for p in self.parts if p.holds(rows, cols)), None)


class BlockCache:
    """The unused parts of decoded blocks a window used only in part, for a later window;
    least recently used dropped first."""

    def __init__(self, budget: int):
        self.budget = budget
        self.lock = threading.Lock()
        self.items: OrderedDict[tuple[Any, ...], Pieces] = OrderedDict()
        self.bytes = 0

    def take(self, key: tuple[Any, ...], keep: bool) -> Pieces | None:
        with self.lock:
            value = self.items.get(key)
            if value is None:
                return None
            if keep:
                self.items.move_to_end(key)
            else:
                del self.items[key]
                self.bytes -= value.nbytes
            return value

    def put(self, key: tuple[Any, ...], value: Pieces) -> None:
        if value.nbytes > self.budget:
            return
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self.items[key] = value
            self.bytes += value.nbytes
            while self.bytes > self.budget and self.items:
                _, dropped = self.items.popitem(last=False)
                self.bytes -= dropped.nbytes

    def drop(self, owner: int) -> None:
        with self.lock:
            for key in [k for k in self.items if k[0] == owner]:
                self.bytes -= self.items.pop(key).nbytes


CACHE = BlockCache(cache_budget())
_OWNERS = itertools.count(1)

# Per decode thread: the buffer of the last block it decoded and did not keep.
_scratch = threading.local()

# Remote blocks next to each other in the file are fetched together (see TileBlocks._groups).
MERGE_GAP = 64  # ghost bytes between blocks (COG leaders and trailers), never a whole block
MERGE_MIN = 256 * 1024
MERGE_MAX = 8 * 1024 * 1024


# ----------------------------------------------------------------------------- tiles


@dataclass
class _Part:
    """One block (one band of it, for band-separate files) and where it goes in a window."""

    band: int  # -1: every band (chunky)
    brow: int
    bcol: int
    src_rows: slice
    src_cols: slice
    dst_rows: slice
    dst_cols: slice
    whole: bool  # the window takes all of the block
    keep: bool = False  # kept decoded for a later window
    crop: bool = False  # keep only what the window left (windows that take exact rectangles)


class TileBlocks:
    """One GeoTIFF read block by block (see the module's docstring)."""

    def __init__(self, label: str, source: ByteSource, layout: Layout, owner: int | None = None):
        self.label = label
        self.source = source
        self.layout = layout
        # The cache's key for this file: the Tile's own number, so that blocks kept survive a
        # close and reopen of the tile (never reused by another file, unlike id()).
        self._owner = next(_OWNERS) if owner is None else owner

    @classmethod
    def open(
        cls, gdal_path: str, label: str, layout: Layout | None = None, owner: int | None = None
    ) -> TileBlocks | None:
        """None when the file is not one this module reads (GDAL reads it then). ``layout``:
        the header parsed earlier (a tile closed and reopened does not fetch it again)."""
        source = byte_source(gdal_path)
        if source is None:
            return None
        if layout is not None:
            return cls(label, source, layout, owner)
        try:
            size = source.size()
            layout = parse(source.read_at, size)
        except OSError as exc:
            source.close()
            raise EmbeddingsError(
                f"The tile {label} cannot be opened ({exc}); check that it exists and that the server is reachable."
            ) from None
        if layout is None or not all(can_decode(lv) for lv in layout.levels):
            source.close()
            return None
        return cls(label, source, layout, owner)

    def close(self, drop_cache: bool = True) -> None:
        if drop_cache:
            CACHE.drop(self._owner)
        self.source.close()

    @property
    def remote(self) -> bool:
        return self.source.remote

    def read_into(
        self,
        level: int,
        rows: tuple[int, int],
        cols: tuple[int, int],
        out: Array,
        keep: Callable[[int, int, int], bool] | None = None,
        crop: bool = False,
    ) -> None:
        """All bands of rows [r0, r1) x cols [c0, c1) of a level into ``out`` (bands, r, c),
        which may be any view (a flipped one, a part of a larger array)."""
        lv = self.layout.levels[level]
        parts = self._parts(lv, rows, cols)
        todo: list[_Part] = []
        for p in parts:
            key = (self._owner, level, p.band, p.brow, p.bcol)
            p.keep = keep(level, p.brow, p.bcol) if keep is not None else not p.whole
            p.crop = crop
            cached = CACHE.take(key, keep=p.keep)
            piece = cached.holding(p.src_rows, p.src_cols) if cached is not None else None
            if piece is not None:
                self._place(lv, p, piece.data, out, piece.row, piece.col)
            else:  # not kept, or a later window wants more of it than foreseen
                todo.append(p)
        if not todo:
            return
        groups = self._groups(lv, todo)
        workers = http_concurrency() if self.remote else decode_threads()
        if workers <= 1 or len(groups) == 1:
            for g in groups:
                self._fetch_group(level, lv, g, out)
            return
        executor = pool("http" if self.remote else "decode", workers)
        futures: Sequence[Future[None]] = [executor.submit(self._fetch_group, level, lv, g, out) for g in groups]
        first: BaseException | None = None
        for f in futures:
            try:
                f.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after every part ended
                first = first or exc
        if first is not None:
            raise first

    def _groups(self, lv: Level, parts: list[_Part]) -> list[list[_Part]]:
        """Parts whose compressed blocks lie next to each other in the file, fetched with one
        request each (remote files only: a local read costs the same either way, and one
        part per task spreads decoding over the threads). A group never spans a gap of
        more than ``MERGE_GAP`` bytes (so never an unneeded block) nor grows past ``MERGE_MAX`` bytes, and the groups are
        at least as many as there are requests in flight, so merging never serialises."""
        if not self.remote:
            return [[p] for p in parts]
        ranged = sorted(parts, key=lambda p: lv.byte_range(max(p.band, 0), p.brow, p.bcol)[0])
        total = sum(lv.byte_range(max(p.band, 0), p.brow, p.bcol)[1] for p in ranged)
        cap = max(MERGE_MIN, min(MERGE_MAX, total // max(1, http_concurrency())))
        groups: list[list[_Part]] = []
        end = -1
        size = 0
        for p in ranged:
            offset, count = lv.byte_range(max(p.band, 0), p.brow, p.bcol)
            if groups and count and 0 <= offset - end <= MERGE_GAP and size + count <= cap:
                groups[-1].append(p)
                size += offset - end + count
            else:
                groups.append([p])
                size = count
            end = offset + count if count else end
        return groups

    def _fetch_group(self, level: int, lv: Level, group: list[_Part], out: Array) -> None:
        ranges = [lv.byte_range(max(p.band, 0), p.brow, p.bcol) for p in group]
        if len(group) == 1:
            self._one(level, lv, group[0], out, None)
            return
        start = ranges[0][0]
        stop = ranges[-1][0] + ranges[-1][1]
        try:
            data = self.source.read_at(start, stop - start)
        except OSError as exc:
            raise self._failed(exc) from None
        view = memoryview(data)
        for p, (offset, count) in zip(group, ranges):
            self._one(level, lv, p, out, view[offset - start : offset - start + count])

    def _parts(self, lv: Level, rows: tuple[int, int], cols: tuple[int, int]) -> list[_Part]:
        r0, r1 = rows
        c0, c1 = cols
        bh, bw = lv.block_height, lv.block_width
        bands = range(lv.bands) if lv.planar == 2 else (-1,)
        parts = []
        for brow in range(r0 // bh, (r1 - 1) // bh + 1):
            br0 = brow * bh
            br1 = min(br0 + bh, lv.height)
            for bcol in range(c0 // bw, (c1 - 1) // bw + 1):
                bc0 = bcol * bw
                bc1 = min(bc0 + bw, lv.width)
                lo_r, hi_r = max(r0, br0), min(r1, br1)
                lo_c, hi_c = max(c0, bc0), min(c1, bc1)
                whole = lo_r == br0 and hi_r == br1 and lo_c == bc0 and hi_c == bc1
                for band in bands:
                    parts.append(
                        _Part(
                            band,
                            brow,
                            bcol,
                            slice(lo_r - br0, hi_r - br0),
                            slice(lo_c - bc0, hi_c - bc0),
                            slice(lo_r - r0, hi_r - r0),
                            slice(lo_c - c0, hi_c - c0),
                            whole,
                        )
                    )
        return parts

    def _one(self, level: int, lv: Level, p: _Part, out: Array, raw: memoryview | None) -> None:
        block = self._decode(level, lv, p, raw)
        self._place(lv, p, block, out)
        if p.keep:
            CACHE.put((self._owner, level, p.band, p.brow, p.bcol), _unused(block, p))
        else:
            _scratch.free = block  # used up: the thread decodes its next block into it

    def _failed(self, exc: Exception) -> EmbeddingsError:
        return EmbeddingsError(
            f"The tile {self.label} could not be read ({exc}); it may be truncated or the server may have "
            "failed. Try again, or remove the tile from the collection."
        )

    def _decode(self, level: int, lv: Level, p: _Part, raw: memoryview | None) -> Array:
        """One block decoded; ``raw``: its compressed bytes when they were fetched already."""
        rows = lv.rows_in(p.brow)
        shape: tuple[int, ...] = (rows, lv.block_width) if lv.planar == 2 else (rows, lv.block_width, lv.bands)
        dtype = lv.dtype.newbyteorder("=")
        spare: Array | None = getattr(_scratch, "free", None)
        if not p.keep and spare is not None and spare.shape == shape and spare.dtype == dtype:
            block, _scratch.free = spare, None  # no new pages to fault in for every block
        else:
            block = np.empty(shape, dtype=dtype)
        offset, size = lv.byte_range(max(p.band, 0), p.brow, p.bcol)
        try:
            if size == 0:  # a sparse block: GDAL reads it as no-data (or 0)
                nodata = self.layout.nodata
                block[...] = 0 if nodata is None or not np.isfinite(nodata) and block.dtype.kind != "f" else nodata
            else:
                decode_into(lv, raw if raw is not None else self.source.read_at(offset, size), block)
        except (OSError, ValueError) as exc:
            raise self._failed(exc) from None
        COUNTERS.note_decode((self.label, level, p.band, p.brow, p.bcol))
        return block

    @staticmethod
    def _place(lv: Level, p: _Part, block: Array, out: Array, row: int = 0, col: int = 0) -> None:
        """Copy the part's pixels of ``block`` (whose first pixel is (row, col) of the block)."""
        rows = slice(p.src_rows.start - row, p.src_rows.stop - row)
        cols = slice(p.src_cols.start - col, p.src_cols.stop - col)
        if p.band >= 0:
            out[p.band, p.dst_rows, p.dst_cols] = block[rows, cols]
        else:
            out[:, p.dst_rows, p.dst_cols] = np.moveaxis(block[rows, cols], -1, 0)


def _unused(block: Array, p: _Part) -> Pieces:
    """What to keep of a block for later windows. For windows that take exact rectangles
    (``crop``), the pixels the part did not take, as at most two rectangles (copies, so
    the rest of the block is freed): beside a window that took all rows or all columns of
    the block, one strip; beside one that took a corner of it, the strip of the other rows
    and the strip of the other columns. Otherwise (windows mapped pixel by pixel from another
    grid ask for overlapping boxes) the whole block."""
    h, w = block.shape[:2]
    r, c = p.src_rows, p.src_cols

    def outside(s: slice, n: int) -> tuple[int, int] | None:  # the range beside s, if one
        if s.start == 0 and s.stop < n:
            return s.stop, n
        if s.start > 0 and s.stop == n:
            return 0, s.start
        return None

    rows_out, cols_out = outside(r, h), outside(c, w)
    all_rows, all_cols = r.start == 0 and r.stop == h, c.start == 0 and c.stop == w
    rects: list[tuple[int, int, int, int]] = []
    if all_rows and cols_out:
        rects = [(0, h, *cols_out)]
    elif all_cols and rows_out:
        rects = [(*rows_out, 0, w)]
    elif rows_out and cols_out:  # a corner: the other rows (all columns), then the other columns
        rects = [(*rows_out, 0, w), (r.start, r.stop, *cols_out)]
    if not rects or not p.crop:
        return Pieces([Piece(block, 0, 0)])
    return Pieces([Piece(block[r0:r1, c0:c1].copy(), r0, c0) for r0, r1, c0, c1 in rects])
