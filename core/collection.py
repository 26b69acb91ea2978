"""AEF-style collections: an index of tiles (CSV, GPKG or Parquet) plus COG tiles.

``open_collection(source)`` accepts a local index file (or the folder holding one), a
folder of embedding GeoTIFFs without an index (see core/folder.py), an http(s) URL of an
index on a mirror, or an empty string for the public product on Source Cooperative. The
index (or the folder's scan) is loaded once into a small SQLite database with an R*Tree,
kept in the user cache, so that a bbox + year query on a 300,000-row index takes
milliseconds.

Resolving ``path`` (a contract other tools rely on):

- official index: ``s3://us-west-2.opendata.source.coop/X`` -> ``https://data.source.coop/X``;
- any other index: the part of ``path`` after ``/v1/annual/`` joins the folder that holds
  the index (the same for ``gs://alphaearth_foundations/satellite_embedding/v1/annual/...``);
- a relative ``path`` joins the index folder;
- http(s) URLs are used as they are; a path escaping the index folder, a ``/vsi...``
  string or a ``file://`` URL is refused.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urljoin

from .errors import EmbeddingsError
from .folder import ANY_YEAR, FolderScan, list_geotiffs, scan_folder
from .progress import Progress
from .remote import cache_dir, fetch_cached, head_ok

OFFICIAL_BASE = "https://data.source.coop/tge-labs/aef/v1/annual/"
# Where the public product is read from: OFFICIAL_BASE unless this names another address
# (a mirror, or in tests a local port).
PUBLIC_URL_ENV = "EARTH_EMBEDDINGS_PUBLIC_URL"
# Seconds to wait for the first connection to the public store before saying it is unreachable.
FIRST_CONTACT_TIMEOUT_S = 5.0
NO_CONNECTION = (
    "No connection to the public AEF product ({host}); choose a local collection or index URL in "
    "Collection, or check the internet connection."
)
OFFICIAL_S3_PREFIX = "s3://us-west-2.opendata.source.coop/"
OFFICIAL_HTTPS_PREFIX = "https://data.source.coop/"
MARKER = "/v1/annual/"
INDEX_NAMES = ("aef_index.parquet", "aef_index.gpkg", "aef_index.csv")

REQUIRED_COLUMNS = ("path", "year", "crs")
BOUNDS_COLUMNS = ("wgs84_west", "wgs84_south", "wgs84_east", "wgs84_north")
UTM_COLUMNS = ("utm_west", "utm_south", "utm_east", "utm_north")
DB_VERSION = "3"

Row = dict[str, Any]  # one tile of an index: fid, year, crs, path, bounds, utm
Getter = Callable[[str], Any]  # a column of one index record by name (or "__bounds__", "__utm__")


@dataclass(frozen=True)
class TileRef:
    """One tile of the index, with its path resolved to something GDAL opens."""

    fid: int
    year: int
    crs: str
    path: str  # as in the index
    location: str  # local file path or http(s) URL
    wgs84_bounds: tuple[float, float, float, float]
    utm_bounds: tuple[float, float, float, float] | None

    @property
    def gdal_path(self) -> str:
        if self.location.startswith(("http://", "https://")):
            return "/vsicurl/" + self.location
        return self.location


class Collection:
    """A tile index with a spatial lookup, and the rule that resolves tile paths."""

    def __init__(self, db_path: Path, base: str, official: bool, label: str):
        self.db_path = Path(db_path)
        self.base = base  # folder (local path) or URL (ending in /) that holds the index
        self.official = official
        self.label = label
        self._conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, check_same_thread=False)
        self._years: list[int] | None = None
        notes = self._notes()
        # A folder whose files carry no year: one collection for any year.
        self.any_year = notes.get("any_year") == "1"
        self.summary = notes.get("summary", "")

    def _notes(self) -> dict[str, str]:
        try:
            return dict(self._conn.execute("SELECT key, value FROM notes").fetchall())
        except sqlite3.OperationalError:  # an index's database has no notes
            return {}

    def close(self) -> None:
        self._conn.close()

    def years(self) -> list[int]:
        if self._years is None:
            rows = self._conn.execute("SELECT DISTINCT year FROM tiles ORDER BY year").fetchall()
            self._years = [int(r[0]) for r in rows if int(r[0]) != ANY_YEAR]
        return self._years

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM tiles").fetchone()[0])

    def check_year(self, year: int) -> None:
        if self.any_year:
            return
        years = self.years()
        if int(year) not in years:
            listed = ", ".join(str(y) for y in years) or "none"
            raise EmbeddingsError(f"The collection has no embeddings for {year}; it has these years: {listed}.")

    def query(self, year: int, west: float, south: float, east: float, north: float) -> list[TileRef]:
        """Tiles of ``year`` whose WGS84 footprint intersects the box, in a stable order."""
        rows = self._conn.execute(
            "SELECT t.fid, t.year, t.crs, t.path, t.w, t.s, t.e, t.n, t.uw, t.us, t.ue, t.un "
            "FROM tiles t JOIN tiles_rt r ON t.rid = r.id "
            "WHERE r.maxx >= ? AND r.minx <= ? AND r.maxy >= ? AND r.miny <= ? AND t.year = ? "
            "ORDER BY t.path",
            (west, east, south, north, ANY_YEAR if self.any_year else int(year)),
        ).fetchall()
        tiles = []
        for fid, yr, crs, path, w, s, e, n, uw, us, ue, un in rows:
            utm = None if uw is None else (uw, us, ue, un)
            tiles.append(TileRef(fid, yr, crs, path, self.resolve(path), (w, s, e, n), utm))
        return tiles

    def resolve(self, path: str) -> str:
        """A local file path or an http(s) URL for an index ``path`` (see module docstring)."""
        return resolve_tile_path(path, self.base, self.official)


def resolve_tile_path(path: str, base: str, official: bool) -> str:
    """Resolve an index ``path`` against the folder or URL ``base`` that holds the index."""
    raw = (path or "").strip()
    if not raw:
        raise EmbeddingsError("The collection index has a row with an empty 'path'; the index is damaged.")
    low = raw.lower()
    if low.startswith("/vsi") or low.startswith("file:") or "\x00" in raw:
        raise EmbeddingsError(
            f"The collection index points at '{raw}', which is not allowed: tile paths must be "
            "http(s) or s3/gs URLs, or files inside the collection's folder."
        )
    if official and raw.startswith(OFFICIAL_S3_PREFIX):
        return OFFICIAL_HTTPS_PREFIX + raw[len(OFFICIAL_S3_PREFIX) :]
    if low.startswith(("http://", "https://")):
        return raw
    if low.startswith(("s3://", "gs://")):
        if MARKER not in raw:
            raise EmbeddingsError(
                f"Cannot map the tile path '{raw}' to this collection: it has no '{MARKER}' part "
                "to join to the folder that holds the index."
            )
        relative = raw.split(MARKER, 1)[1]
    else:
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", raw):
            raise EmbeddingsError(f"The collection index points at '{raw}', a kind of address the plugin cannot read.")
        relative = raw
    return _join_inside(base, relative, raw)


def _join_inside(base: str, relative: str, raw: str) -> str:
    refused = EmbeddingsError(
        f"The collection index points at '{raw}', outside the collection's folder; "
        "tile paths must stay inside the folder that holds the index."
    )
    if base.startswith(("http://", "https://")):
        rel = relative.replace("\\", "/")
        if rel.startswith("/"):
            raise refused
        parts = PurePosixPath(rel).parts
        if any(p == ".." for p in parts):
            raise refused
        return urljoin(base if base.endswith("/") else base + "/", rel)
    base_path = Path(base).resolve()
    candidate = Path(relative)
    if not candidate.is_absolute():
        candidate = base_path / relative
    candidate = Path(os.path.normpath(candidate))
    try:
        candidate.resolve().relative_to(base_path)
    except ValueError:
        raise refused from None
    return str(candidate)


# ----------------------------------------------------------------------------- opening


def open_collection(source: str | None, progress: Progress | None = None) -> Collection:
    """Open a collection from a local index, an index URL, or '' for the public product."""
    progress = progress or Progress()
    source = (source or "").strip()
    if not source:
        base = public_base()
        _check_reachable(base)
        url = _official_index_url(base, progress)
        return _open_remote(url, official=True, progress=progress)
    if source.startswith(("http://", "https://")):
        official = source.startswith((OFFICIAL_BASE, public_base()))
        return _open_remote(source, official=official, progress=progress)
    if source.lower().startswith(("s3://", "gs://", "/vsi", "file:")):
        raise EmbeddingsError(
            f"'{source}' is not a supported collection address: give a local index file, an "
            "http(s) URL of an index, or leave it empty for the public AEF product."
        )
    path = Path(source).expanduser()
    if path.is_dir():
        for name in INDEX_NAMES:
            if (path / name).exists() and (name != "aef_index.parquet" or _has_pyarrow()):
                path = path / name
                break
        else:
            return _open_folder(path, progress)
    if not path.exists():
        raise EmbeddingsError(f"The collection index {path} does not exist; check the path.")
    st = path.stat()
    identity = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    db = _index_db(path, identity, progress)
    return Collection(db, str(path.resolve().parent), official=False, label=str(path))


def public_base() -> str:
    """The address of the public product's annual folder (ends in /)."""
    base = os.environ.get(PUBLIC_URL_ENV, "").strip() or OFFICIAL_BASE
    return base if base.endswith("/") else base + "/"


def _check_reachable(url: str, timeout_s: float = FIRST_CONTACT_TIMEOUT_S) -> None:
    """One sentence at once when the store's host cannot be connected to, instead of the HTTP
    client's retries and their text. Behind a proxy the direct connection says nothing: skipped."""
    import socket
    from urllib.parse import urlsplit
    from urllib.request import getproxies

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.scheme in getproxies():
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except OSError:
        raise EmbeddingsError(NO_CONNECTION.format(host=parts.hostname)) from None


def _official_index_url(base: str, progress: Progress) -> str:
    # The Parquet index is the smallest (~70 MB) but needs pyarrow; without it, prefer the
    # CSV if the store has one, and fall back to the GeoPackage (~500 MB).
    if _has_pyarrow():
        return base + "aef_index.parquet"
    csv_url = base + "aef_index.csv"
    if head_ok(csv_url):
        return csv_url
    progress.info("No CSV index on the public store and no Parquet reader: using the GeoPackage index.")
    return base + "aef_index.gpkg"


def _open_remote(url: str, official: bool, progress: Progress) -> Collection:
    cached = fetch_cached(url, progress=progress)
    db = _index_db(cached.path, f"{url}|{cached.identity}", progress, name_hint=url)
    base = url.rsplit("/", 1)[0] + "/"
    return Collection(db, base, official=official, label=url)


def _has_pyarrow() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _open_folder(folder: Path, progress: Progress) -> Collection:
    """A folder of embedding GeoTIFFs as a collection, its scan cached per state of its files
    (paths, sizes and modification times): a changed, added or removed file rescans it."""
    tiffs, others = list_geotiffs(folder)
    root = str(folder.resolve())
    state = "\n".join(f"{p}|{size}|{mtime}" for p, size, mtime in tiffs)
    prefix = "folder-" + hashlib.sha1(root.encode()).hexdigest()[:16]
    db = _cached_db(
        f"{prefix}-{hashlib.sha1(f'{DB_VERSION}|{others}|{state}'.encode()).hexdigest()[:16]}",
        lambda path: _write_folder_db(path, scan_folder(folder, tiffs, others, progress), progress),
    )
    for stale in db.parent.glob(f"{prefix}-*.sqlite"):
        if stale != db:  # the scans of earlier states of the folder
            stale.unlink(missing_ok=True)
    collection = Collection(db, root, official=False, label=str(folder))
    progress.info(f"The folder {folder} as a collection: {collection.summary}")
    if collection.any_year:
        progress.info(
            f"The files under {folder} carry no year (no folder such as 2024/, no name such as "
            "tile_2024.tif): they are one collection, read for any YEAR."
        )
    return collection


def _write_folder_db(db_path: Path, scan: FolderScan, progress: Progress) -> None:
    _write_db(db_path, scan.rows, progress, {"any_year": "1" if scan.any_year else "0", "summary": scan.summary})


def _index_db(index_path: Path, identity: str, progress: Progress, name_hint: str | None = None) -> Path:
    """The SQLite copy of an index, built once per version of the index file."""
    name = (name_hint or str(index_path)).lower().split("?")[0]
    if not name.endswith((".csv", ".gpkg", ".parquet")):
        raise EmbeddingsError(f"The collection index {name_hint or index_path} is not a .csv, .gpkg or .parquet file.")

    def build(db_path: Path) -> None:
        progress.info(f"Indexing the collection index {name_hint or index_path} (once per version)...")
        if name.endswith(".csv"):
            rows = _rows_csv(index_path)
        elif name.endswith(".gpkg"):
            rows = _rows_gpkg(index_path)
        else:
            rows = _rows_parquet(index_path)
        _write_db(db_path, rows, progress)

    return _cached_db(hashlib.sha1(f"{DB_VERSION}|{identity}".encode()).hexdigest()[:24], build)


def _cached_db(key: str, build: Callable[[Path], None]) -> Path:
    """The database ``key`` in the user cache, written by ``build`` (atomically) when missing."""
    folder = cache_dir() / "indexes"
    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / f"{key}.sqlite"
    if db_path.exists():
        return db_path
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".part")
    os.close(fd)
    try:
        build(Path(tmp))
        os.replace(tmp, db_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return db_path


def _write_db(db_path: Path, rows: Iterable[Row], progress: Progress, notes: dict[str, str] | None = None) -> None:
    conn = sqlite3.connect(db_path)
    try:
        conn.execute(
            "CREATE TABLE tiles (rid INTEGER PRIMARY KEY, fid INTEGER, year INTEGER, crs TEXT, "
            "path TEXT, w REAL, s REAL, e REAL, n REAL, uw REAL, us REAL, ue REAL, un REAL)"
        )
        conn.execute("CREATE VIRTUAL TABLE tiles_rt USING rtree(id, minx, maxx, miny, maxy)")
        count = 0
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) >= 10000:
                count += _insert(conn, batch, count)
                batch = []
                progress.check_cancelled()
        if batch:
            count += _insert(conn, batch, count)
        if count == 0:
            raise EmbeddingsError("The collection index has no rows.")
        conn.execute("CREATE INDEX tiles_year ON tiles(year)")
        if notes is not None:
            conn.execute("CREATE TABLE notes (key TEXT PRIMARY KEY, value TEXT)")
            conn.executemany("INSERT INTO notes VALUES (?, ?)", sorted(notes.items()))
        conn.commit()
    finally:
        conn.close()


def _insert(conn: sqlite3.Connection, batch: list[Row], start: int) -> int:
    tiles = []
    rt = []
    for i, r in enumerate(batch):
        rid = start + i + 1
        fid = r["fid"] if r.get("fid") is not None else rid
        w, s, e, n = r["bounds"]
        utm = r.get("utm") or (None, None, None, None)
        tiles.append((rid, fid, r["year"], r["crs"], r["path"], w, s, e, n, *utm))
        if w > e:  # crosses the antimeridian: index both sides
            rt.append((rid, -180.0, 180.0, s, n))
        else:
            rt.append((rid, w, e, s, n))
    conn.executemany("INSERT INTO tiles VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", tiles)
    conn.executemany("INSERT INTO tiles_rt VALUES (?,?,?,?,?)", rt)
    return len(batch)


def _wanted_columns(columns: Sequence[str]) -> tuple[dict[str, str], list[str], bool]:
    """({lower-case name: real name}, the columns to read, whether the UTM bounds are there)."""
    lower = {c.lower(): c for c in columns}
    want = ["path", "year", "crs", *BOUNDS_COLUMNS]
    have_utm = all(c in lower for c in UTM_COLUMNS)
    if have_utm:
        want += list(UTM_COLUMNS)
    if "fid" in lower:
        want.append("fid")
    return lower, want, have_utm


def _record_getter(rec: dict[str, Any], have_utm: bool) -> Getter:
    """``_row``'s accessor for one record read from a GeoPackage or Parquet index."""

    def get(name: str) -> Any:
        if name == "__bounds__":
            return _floats([rec[c] for c in BOUNDS_COLUMNS])
        if name == "__utm__":
            return _floats([rec[c] for c in UTM_COLUMNS]) if have_utm else None
        return rec.get(name)

    return get


def _missing_columns(columns: Sequence[str], where: str, geometry_columns: Sequence[str] = ()) -> None:
    cols = {c.lower() for c in columns}
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    has_bounds = all(c in cols for c in BOUNDS_COLUMNS) or any(g.lower() in cols for g in geometry_columns)
    if not has_bounds:
        missing.extend(BOUNDS_COLUMNS)
    if missing:
        raise EmbeddingsError(
            f"The collection index {where} lacks the column(s) {', '.join(missing)}; "
            "an AEF index needs path, year, crs and the wgs84_west/south/east/north bounds."
        )


def _row(get: Getter, where: str, line: int) -> Row:
    try:
        year = int(float(get("year")))
        crs = str(get("crs")).strip()
        path = str(get("path")).strip()
        bounds = get("__bounds__")
        utm = get("__utm__")
        fid = get("fid")
        fid = int(float(fid)) if fid not in (None, "") else None
    except (TypeError, ValueError) as exc:
        raise EmbeddingsError(f"Row {line} of the collection index {where} cannot be read ({exc}).") from None
    if not crs.upper().startswith("EPSG:") and not crs.isdigit():
        raise EmbeddingsError(f"Row {line} of the collection index {where} has an unknown crs '{crs}'.")
    if crs.isdigit():
        crs = f"EPSG:{crs}"
    return {"fid": fid, "year": year, "crs": crs.upper(), "path": path, "bounds": bounds, "utm": utm}


_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _bounds_from_wkt(wkt: str) -> tuple[float, float, float, float]:
    nums = [float(v) for v in _NUM.findall(wkt or "")]
    if len(nums) < 4:
        raise ValueError("no coordinates in the geometry")
    xs, ys = nums[0::2], nums[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def _floats(values: Sequence[Any]) -> tuple[float, ...] | None:
    if any(v in (None, "") for v in values):
        return None
    return tuple(float(v) for v in values)


def _rows_csv(path: Path) -> Iterator[Row]:
    where = str(path)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise EmbeddingsError(f"The collection index {where} cannot be read: {exc.strerror}.") from None
    with f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        _missing_columns(header, where, geometry_columns=("WKT", "geometry"))
        lower = {h.lower(): h for h in header}
        geom_col = lower.get("wkt") or lower.get("geometry")
        have_bounds = all(c in lower for c in BOUNDS_COLUMNS)
        have_utm = all(c in lower for c in UTM_COLUMNS)
        try:
            for line, rec in enumerate(reader, start=2):

                def get(name: str, rec: dict[str, str] = rec) -> Any:
                    if name == "__bounds__":
                        if have_bounds:
                            return _floats([rec[lower[c]] for c in BOUNDS_COLUMNS])
                        return _bounds_from_wkt(rec[geom_col or ""])
                    if name == "__utm__":
                        return _floats([rec[lower[c]] for c in UTM_COLUMNS]) if have_utm else None
                    col = lower.get(name)
                    return rec[col] if col else None

                yield _row(get, where, line)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise EmbeddingsError(f"The collection index {where} is not a readable CSV file ({exc}).") from None


def _rows_gpkg(path: Path) -> Iterator[Row]:
    where = str(path)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        tables = conn.execute(
            "SELECT table_name FROM gpkg_contents WHERE data_type IN ('features', 'attributes')"
        ).fetchall()
    except sqlite3.DatabaseError:
        raise EmbeddingsError(f"The collection index {where} is not a readable GeoPackage.") from None
    try:
        if not tables:
            raise EmbeddingsError(f"The GeoPackage {where} holds no table of tiles.")
        table = tables[0][0]
        columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        _missing_columns(columns, where)
        lower, want, have_utm = _wanted_columns(columns)
        sql = "SELECT " + ", ".join(f'"{lower[c]}"' for c in want) + f' FROM "{table}"'
        for line, values in enumerate(conn.execute(sql), start=1):
            rec = dict(zip(want, values))

            yield _row(_record_getter(rec, have_utm), where, line)
    finally:
        conn.close()


def _rows_parquet(path: Path) -> Iterator[Row]:
    where = str(path)
    if not _has_pyarrow():
        raise EmbeddingsError(
            f"The collection index {where} is a Parquet file, and this Python has no Parquet "
            "reader (pyarrow); use the collection's aef_index.csv or aef_index.gpkg instead."
        )
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several kinds
        raise EmbeddingsError(f"The collection index {where} is not a readable Parquet file ({exc}).") from None
    columns = pf.schema_arrow.names
    _missing_columns(columns, where)
    lower, want, have_utm = _wanted_columns(columns)
    line = 0
    for batch in pf.iter_batches(columns=[lower[c] for c in want], batch_size=20000):
        data = {c: batch.column(i).to_pylist() for i, c in enumerate(want)}
        for i in range(batch.num_rows):
            line += 1
            rec = {c: data[c][i] for c in want}

            yield _row(_record_getter(rec, have_utm), where, line)
