"""A folder of embedding GeoTIFFs (TESSERA, Earth Engine exports, ...) read as a collection.

``list_geotiffs`` walks the folder (names, sizes and times only: the key of the cached
index); ``scan_folder`` reads each GeoTIFF's header once (CRS, bounds, bands, data type) and
returns the rows of the same SQLite index the plugin builds for AEF indexes.

Years (``year_of``): a folder named after a year 2000-2099 (``2024/``, the chosen folder's
own name included) wins; else a part of the file name delimited by ``_``, ``-`` or ``.``
(``tile_2024_x.tif``; never digits inside longer numbers such as EPSG codes or pixel
offsets). Two different year folders, or two different years in a file name, make the
file ambiguous: it is left out and named in the log. When no file carries a year, the
folder is one collection for any year (``ANY_YEAR`` in the index).

Embedding rasters have two or more bands, the same number across the folder, and one kind
(AEF int8 codes, or values: floats and other integers). Images (1-4 band 8-bit or 16-bit
colour rasters, such as RGB quicklooks) and one-band rasters are skipped and counted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import EmbeddingsError
from .grid import transform_bounds
from .progress import Progress
from .tile import Tile

ANY_YEAR = 0  # the year stored for the files of a folder that carries no year
GEOTIFF_SUFFIXES = (".tif", ".tiff")
_YEAR = re.compile(r"^20\d\d$")
_DELIMITERS = re.compile(r"[_.\-]")
_NAMED = 3  # files named in one log line before "and N more"

FileState = tuple[str, int, int]  # (path relative to the folder, size in bytes, mtime in ns)


@dataclass
class FolderScan:
    """The index rows of a folder's embedding rasters, and what the log should say."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    any_year: bool = False
    bands: int = 0
    kind: str = ""  # "AEF int8 codes" or "float32 values" (the first raster's data type)
    notes: list[str] = field(default_factory=list)  # lines for the log, built once with the index

    @property
    def summary(self) -> str:
        return " ".join(self.notes)


def list_geotiffs(folder: Path) -> tuple[list[FileState], int]:
    """(the GeoTIFFs under ``folder`` in path order, the number of other files).

    Hidden files and folders (``.name``) are left out; links to folders are not followed."""
    tiffs: list[FileState] = []
    others = 0
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = Path(dirpath) / name
            if not name.lower().endswith(GEOTIFF_SUFFIXES):
                others += 1
                continue
            try:
                st = full.stat()
            except OSError:
                others += 1
                continue
            tiffs.append((full.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return tiffs, others


def year_of(relative: str, folder_name: str = "") -> tuple[int | None, str]:
    """(year or None, why none) of a file at ``relative`` (posix) inside a folder called
    ``folder_name``; the reason is empty when the file simply carries no year."""
    parts = PurePosixPath(relative).parts
    folders = {int(p) for p in (folder_name, *parts[:-1]) if _YEAR.match(p)}
    if len(folders) > 1:
        return None, "it lies in folders of two different years (" + ", ".join(str(y) for y in sorted(folders)) + ")"
    if folders:
        return folders.pop(), ""
    stem = parts[-1]
    for suffix in GEOTIFF_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    named = {int(p) for p in _DELIMITERS.split(stem) if _YEAR.match(p)}
    if len(named) > 1:
        return None, "its name holds two different years (" + ", ".join(str(y) for y in sorted(named)) + ")"
    if named:
        return named.pop(), ""
    return None, ""


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMED])
    return shown + (f" and {len(names) - _NAMED} more" if len(names) > _NAMED else "")


def scan_folder(folder: Path, tiffs: list[FileState], others: int, progress: Progress) -> FolderScan:
    """Read the header of every GeoTIFF of ``tiffs`` (from ``list_geotiffs``) into index rows.

    Raises one sentence when the folder holds no embedding raster, or rasters of different
    band counts or kinds (naming two files that differ)."""
    root = folder.resolve()
    progress.info(f"Scanning the {len(tiffs):,} GeoTIFF(s) under {folder} (once; the result is kept in the cache)...")
    scan = FolderScan()
    first = ""
    first_quantised = False
    images = one_band = 0
    broken: list[str] = []
    ambiguous: list[str] = []
    yearless: list[dict[str, Any]] = []
    dated: list[dict[str, Any]] = []
    for i, (relative, _size, _mtime) in enumerate(tiffs):
        progress.check_cancelled()
        tile = Tile(str(root / relative), relative)
        try:
            meta = tile.meta
            image = tile.looks_like_image()
        except EmbeddingsError as exc:
            broken.append(f"{relative} ({exc})")
            continue
        finally:
            tile.close()
        progress.set_progress(100.0 * (i + 1) / len(tiffs))
        if image:
            images += 1
            continue
        if meta.count < 2:
            one_band += 1
            continue
        if not first:
            first, scan.bands, first_quantised = relative, meta.count, meta.quantised
            scan.kind = "AEF int8 codes" if meta.quantised else f"{meta.dtype} values"
        elif meta.count != scan.bands:
            raise EmbeddingsError(
                f"The folder {folder} mixes embedding rasters of different band counts: {first} has "
                f"{scan.bands} bands and {relative} has {meta.count}; keep one product per folder."
            )
        elif meta.quantised != first_quantised:
            kinds = {True: "AEF int8 codes", False: "values (not int8 codes)"}
            raise EmbeddingsError(
                f"The folder {folder} mixes kinds of embedding rasters: {first} holds {kinds[first_quantised]} "
                f"and {relative} holds {kinds[meta.quantised]}; keep one product per folder."
            )
        year, why = year_of(relative, root.name)
        if why:
            ambiguous.append(f"{relative} ({why})")
            continue
        try:
            wgs84 = transform_bounds(tile.bounds, meta.crs, "EPSG:4326")
        except EmbeddingsError:
            broken.append(f"{relative} (its bounds cannot be placed on Earth)")
            continue
        row: dict[str, Any] = {
            "fid": None,
            "year": ANY_YEAR if year is None else year,
            "crs": meta.crs,
            "path": relative,
            "bounds": wgs84,
            "utm": tile.bounds,  # the pixel-array bounds in the raster's own CRS
        }
        (yearless if year is None else dated).append(row)
    # Files without a year beside files with one cannot be placed in any year: leave them out.
    if dated and yearless:
        names = [str(r["path"]) for r in yearless]
        scan.notes.append(
            f"Left out {len(names)} raster(s) whose path carries no year, beside others that do: {_listed(names)}."
        )
    scan.rows = dated or yearless
    scan.any_year = not dated and bool(yearless)
    if ambiguous:
        scan.notes.append(
            f"Left out {len(ambiguous)} raster(s) with two different years in their path: {_listed(ambiguous)}."
        )
    skipped = []
    if images:
        skipped.append(f"{images} image(s) (1-4 bands of 8 or 16 bits, such as RGB quicklooks)")
    if one_band:
        skipped.append(f"{one_band} one-band raster(s)")
    if others:
        skipped.append(f"{others} file(s) that are not GeoTIFFs")
    if skipped:
        scan.notes.append("Skipped " + ", ".join(skipped) + ".")
    if broken:
        scan.notes.append(f"Could not read {len(broken)} GeoTIFF(s): {_listed(broken)}.")
    if not scan.rows:
        found = f"{len(tiffs)} GeoTIFF(s)" if tiffs else "no GeoTIFF (.tif)"
        raise EmbeddingsError(
            f"The folder {folder} holds no collection index (aef_index.csv, .gpkg or .parquet) and no embedding "
            f"rasters (GeoTIFFs with two or more bands): it has {found} and {others} other file(s). "
            + " ".join(scan.notes)
        )
    years = sorted({int(r["year"]) for r in scan.rows})
    listed = "any year (no file carries one)" if scan.any_year else "years " + ", ".join(str(y) for y in years)
    scan.notes.insert(0, f"{len(scan.rows):,} embedding raster(s) of {scan.bands} bands ({scan.kind}), {listed}.")
    return scan
