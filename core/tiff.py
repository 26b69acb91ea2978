"""A GeoTIFF's internal layout read from its header, and its compressed blocks decoded directly.

The reader fetches and decodes the blocks a window needs itself, instead of going through
GDAL's block cache (process-wide, shared with QGIS's rendering, and overflowing on a row of
the product's 1024 px band blocks) and GDAL's one-request-at-a-time remote reads of
band-separate files. What it supports is what embedding products use: tiled or striped,
chunky or band-separate, uncompressed, Deflate or ZSTD, no predictor, 8-64 bit samples.
``parse`` returns None for anything else and the reader uses GDAL for that file.

Decoding releases the GIL (zlib and libzstd through ctypes), so blocks decode on several
threads at once. The result is bit-identical to GDAL's: the same bytes, decompressed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import struct
import threading
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine

from .arrays import Array

# Compression tags this module decodes.
NONE, DEFLATE, ADOBE_DEFLATE, ZSTD = 1, 8, 32946, 50000
SUPPORTED_COMPRESSION = (NONE, DEFLATE, ADOBE_DEFLATE, ZSTD)

_TYPES: dict[int, tuple[str, int]] = {
    1: ("B", 1),
    2: ("c", 1),
    3: ("H", 2),
    4: ("I", 4),
    5: ("II", 8),
    6: ("b", 1),
    7: ("B", 1),
    8: ("h", 2),
    9: ("i", 4),
    10: ("ii", 8),
    11: ("f", 4),
    12: ("d", 8),
    16: ("Q", 8),
    17: ("q", 8),
    18: ("Q", 8),
}

ReadAt = Callable[[int, int], bytes]  # (offset, size) -> exactly those bytes


@dataclass
class Level:
    """One image of the file (the full resolution or an overview): its blocks and how to decode them."""

    width: int
    height: int
    block_width: int
    block_height: int
    bands: int
    dtype: np.dtype[Any]
    compression: int
    planar: int  # 1 = chunky (a block holds every band), 2 = separate (a block holds one band)
    offsets: Array  # uint64, one per block, in the file's order
    byte_counts: Array
    tiled: bool

    @property
    def blocks_across(self) -> int:
        return -(-self.width // self.block_width)

    @property
    def blocks_down(self) -> int:
        return -(-self.height // self.block_height)

    def index(self, band: int, brow: int, bcol: int) -> int:
        """The position of a block in the offset tables (band counts from 0)."""
        k = brow * self.blocks_across + bcol
        return k + band * self.blocks_across * self.blocks_down if self.planar == 2 else k

    def rows_in(self, brow: int) -> int:
        """Rows a block holds once decoded (strips at the bottom are shorter; tiles are padded)."""
        if self.tiled:
            return self.block_height
        return min(self.block_height, self.height - brow * self.block_height)

    def byte_range(self, band: int, brow: int, bcol: int) -> tuple[int, int]:
        k = self.index(band, brow, bcol)
        return int(self.offsets[k]), int(self.byte_counts[k])

    def bytes_under(self, rows: tuple[int, int], cols: tuple[int, int]) -> int:
        """Compressed bytes of every block (all bands) under rows [r0, r1) x cols [c0, c1)."""
        total = 0
        for band in range(self.bands if self.planar == 2 else 1):
            for brow in range(rows[0] // self.block_height, (rows[1] - 1) // self.block_height + 1):
                for bcol in range(cols[0] // self.block_width, (cols[1] - 1) // self.block_width + 1):
                    total += self.byte_range(band, brow, bcol)[1]
        return total


@dataclass
class Layout:
    """What a GeoTIFF's header says: its levels (full resolution first) and georeferencing."""

    levels: list[Level]
    transform: Affine | None
    epsg: int | None
    pixel_is_point: bool
    nodata: float | None
    descriptions: list[str]
    tags: dict[str, str] = field(default_factory=dict)
    header_bytes: int = 0


class _Header:
    """Reads header bytes through ``read_at`` in 64 KB pieces, each fetched once."""

    PIECE = 65536

    def __init__(self, read_at: ReadAt, size: int | None):
        self.read_at = read_at
        self.size = size
        self.pieces: dict[int, bytes] = {}
        self.fetched = 0

    def get(self, offset: int, n: int) -> bytes:
        out = bytearray()
        end = offset + n
        pos = offset
        while pos < end:
            k = pos // self.PIECE
            piece = self.pieces.get(k)
            if piece is None:
                start = k * self.PIECE
                want = self.PIECE if self.size is None else max(0, min(self.PIECE, self.size - start))
                piece = self.read_at(start, want) if want else b""
                self.fetched += len(piece)
                self.pieces[k] = piece
            lo = pos - k * self.PIECE
            take = min(end - pos, len(piece) - lo)
            if take <= 0:
                raise ValueError("the TIFF header points past the end of the file")
            out += piece[lo : lo + take]
            pos += take
        return bytes(out)


def parse(read_at: ReadAt, size: int | None = None) -> Layout | None:
    """The layout of a TIFF, or None when it is not a TIFF this module can decode."""
    h = _Header(read_at, size)
    try:
        return _parse(h)
    except (ValueError, struct.error, KeyError, IndexError):
        return None


def _parse(h: _Header) -> Layout | None:
    head = h.get(0, 16)
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None:
        return None
    magic = struct.unpack(order + "H", head[2:4])[0]
    if magic == 42:
        big = False
        ifd = struct.unpack(order + "I", head[4:8])[0]
    elif magic == 43:
        big = True
        ifd = struct.unpack(order + "Q", head[8:16])[0]
    else:
        return None
    ifds: list[dict[int, Any]] = []
    seen = set()
    while ifd and ifd not in seen and len(ifds) < 64:
        seen.add(ifd)
        tags, ifd = _read_ifd(h, order, big, ifd)
        ifds.append(tags)
    if not ifds:
        return None
    levels = []
    first = ifds[0]
    for tags in ifds:
        subfile = int(tags.get(254, (0,))[0])
        if tags is not first and (not subfile & 1 or subfile & 4):
            continue  # not a reduced-resolution image, or a mask
        level = _level(tags, order)
        if level is None:
            return None
        levels.append(level)
    base = levels[0]
    if any(lv.bands != base.bands or lv.dtype != base.dtype for lv in levels):
        return None
    transform, epsg, point = _georef(first)
    nodata = None
    if 42113 in first:
        text = _text(first[42113])
        try:
            nodata = float(text)
        except ValueError:
            nodata = None
    descriptions, tags_out = _gdal_metadata(_text(first[42112]) if 42112 in first else "", base.bands)
    return Layout(levels, transform, epsg, point, nodata, descriptions, tags_out, h.fetched)


def _read_ifd(h: _Header, order: str, big: bool, offset: int) -> tuple[dict[int, Any], int]:
    if big:
        count = struct.unpack(order + "Q", h.get(offset, 8))[0]
        entry, head, inline, nxt_fmt = 20, 8, 8, "Q"
    else:
        count = struct.unpack(order + "H", h.get(offset, 2))[0]
        entry, head, inline, nxt_fmt = 12, 2, 4, "I"
    raw = h.get(offset + head, count * entry + inline)
    tags: dict[int, Any] = {}
    for i in range(count):
        e = raw[i * entry : (i + 1) * entry]
        tag, typ = struct.unpack(order + "HH", e[:4])
        n = struct.unpack(order + ("Q" if big else "I"), e[4 : 4 + (8 if big else 4)])[0]
        if typ not in _TYPES:
            continue
        fmt, size = _TYPES[typ]
        total = n * size
        value_field = e[(12 if big else 8) :]
        if total <= inline:
            data = value_field[:total]
        else:
            ptr = struct.unpack(order + ("Q" if big else "I"), value_field)[0]
            data = h.get(ptr, total)
        if typ == 2:
            tags[tag] = data
        elif fmt in ("II", "ii"):
            vals = struct.unpack(order + fmt[0] * (2 * n), data)
            tags[tag] = tuple(vals[j] / vals[j + 1] if vals[j + 1] else math.nan for j in range(0, 2 * n, 2))
        else:
            dt = np.dtype(order + {"c": "S1"}.get(fmt, fmt))
            tags[tag] = np.frombuffer(data, dtype=dt, count=n)
    nxt = struct.unpack(order + nxt_fmt, raw[count * entry : count * entry + inline])[0]
    return tags, nxt


def _level(tags: dict[int, Any], order: str) -> Level | None:
    width = int(tags[256][0])
    height = int(tags[257][0])
    bands = int(tags.get(277, (1,))[0])
    bits = {int(b) for b in tags.get(258, (1,))}
    formats = {int(f) for f in tags.get(339, (1,))}
    compression = int(tags.get(259, (1,))[0])
    predictor = int(tags.get(317, (1,))[0])
    planar = int(tags.get(284, (1,))[0])
    if len(bits) != 1 or len(formats) != 1 or compression not in SUPPORTED_COMPRESSION or predictor != 1:
        return None
    kind = {1: "u", 2: "i", 3: "f"}.get(formats.pop())
    nbits = bits.pop()
    if kind is None or nbits not in (8, 16, 32, 64) or (kind == "f" and nbits < 32):
        return None
    dtype = np.dtype(f"{order}{kind}{nbits // 8}")
    if 322 in tags:
        bw, bh = int(tags[322][0]), int(tags[323][0])
        offsets, counts, tiled = tags[324], tags[325], True
    elif 273 in tags:
        bw, bh = width, min(height, int(tags.get(278, (height,))[0]))
        offsets, counts, tiled = tags[273], tags[279], False
    else:
        return None
    level = Level(
        width,
        height,
        bw,
        bh,
        bands,
        dtype,
        compression,
        planar if bands > 1 else 1,
        np.asarray(offsets, dtype=np.uint64),
        np.asarray(counts, dtype=np.uint64),
        tiled,
    )
    per_band = level.blocks_across * level.blocks_down
    if len(level.offsets) != per_band * (bands if level.planar == 2 else 1) or len(level.byte_counts) != len(
        level.offsets
    ):
        return None
    return level


def _text(value: Any) -> str:
    raw = value if isinstance(value, bytes) else bytes(value)
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def _georef(tags: dict[int, Any]) -> tuple[Affine | None, int | None, bool]:
    transform = None
    if 34264 in tags:
        m = [float(v) for v in tags[34264]]
        transform = Affine(m[0], m[1], m[3], m[4], m[5], m[7])
    elif 33550 in tags and 33922 in tags:
        sx, sy = float(tags[33550][0]), float(tags[33550][1])
        tp = [float(v) for v in tags[33922]]
        i, j, x, y = tp[0], tp[1], tp[3], tp[4]
        transform = Affine(sx, 0.0, x - i * sx, 0.0, -sy, y + j * sy)
    epsg = None
    point = False
    if 34735 in tags:
        keys = [int(k) for k in tags[34735]]
        for k in range(4, len(keys) - 3, 4):
            key, loc, _count, value = keys[k : k + 4]
            if loc != 0:
                continue
            if key == 1025:
                point = value == 2
            elif key in (3072, 2048) and 1024 <= value < 32767 and (epsg is None or key == 3072):
                epsg = value
    return transform, epsg, point


def _gdal_metadata(text: str, bands: int) -> tuple[list[str], dict[str, str]]:
    descriptions = [""] * bands
    tags: dict[str, str] = {}
    if not text:
        return descriptions, tags
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return descriptions, tags
    for item in root.iter("Item"):
        name = item.get("name", "")
        sample = item.get("sample")
        value = item.text or ""
        if sample is None:
            if item.get("domain") in (None, ""):
                tags[name] = value
        elif item.get("role") == "description" and 0 <= int(sample) < bands:
            descriptions[int(sample)] = value
    return descriptions, tags


# ----------------------------------------------------------------------------- decoding

_zstd_lock = threading.Lock()
_zstd: Any = None


def _libzstd() -> Any:
    """libzstd through ctypes (GDAL links it, so it is there wherever GDAL reads ZSTD TIFFs);
    None when it cannot be found."""
    global _zstd
    with _zstd_lock:
        if _zstd is None:
            lib: Any = False
            for name in (ctypes.util.find_library("zstd"), "libzstd.so.1", "libzstd.dylib", "libzstd.dll", "zstd.dll"):
                if not name:
                    continue
                try:
                    cand = ctypes.CDLL(name)
                    cand.ZSTD_decompress.restype = ctypes.c_size_t
                    cand.ZSTD_decompress.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
                    cand.ZSTD_isError.restype = ctypes.c_uint
                    cand.ZSTD_isError.argtypes = [ctypes.c_size_t]
                    lib = cand
                    break
                except (OSError, AttributeError):
                    continue
            _zstd = lib
        return _zstd or None


def can_decode(level: Level) -> bool:
    return level.compression != ZSTD or _libzstd() is not None


def decode_into(level: Level, raw: bytes | memoryview, out: Array) -> None:
    """Decompress one block's bytes into ``out`` (a C-contiguous array of exactly the block's
    decoded size: (rows, width) for one band, (rows, width, bands) for a chunky block)."""
    nbytes = out.nbytes
    if level.compression == NONE:
        if len(raw) < nbytes:
            raise ValueError(f"a block holds {len(raw)} bytes where {nbytes} were expected")
        flat = np.frombuffer(raw, dtype=np.uint8, count=nbytes)
    elif level.compression == ZSTD:
        lib = _libzstd()
        if lib is None:
            raise ValueError("libzstd is not available")
        src = np.frombuffer(raw, dtype=np.uint8)  # no copy, also of a memoryview
        done = lib.ZSTD_decompress(out.ctypes.data, nbytes, src.ctypes.data, src.size)
        if lib.ZSTD_isError(done) or done != nbytes:
            raise ValueError("a ZSTD block did not decompress to its size (truncated or damaged)")
        _to_native(out, level)
        return
    else:
        flat = np.frombuffer(zlib.decompress(raw), dtype=np.uint8)
        if flat.size < nbytes:
            raise ValueError("a Deflate block did not decompress to its size (truncated or damaged)")
        flat = flat[:nbytes]
    out.view(np.uint8).reshape(-1)[:] = flat
    _to_native(out, level)


def _to_native(out: Array, level: Level) -> None:
    if level.dtype.byteorder == ">" and level.dtype.itemsize > 1:
        out.byteswap(inplace=True)
