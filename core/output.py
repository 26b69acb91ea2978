"""GeoTIFF outputs that only ever appear complete.

Everything is written under a temporary name in the destination folder and renamed into
place on success; on any error or cancellation the temporary file is removed and an
older file at the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .arrays import Array
from .errors import EmbeddingsError
from .grid import Grid, Window, crs_from
from .quant import FORMULA, NODATA

_ZSTD: bool | None = None


def _zstd_or_deflate() -> str:
    """ZSTD when this GDAL build writes it, else DEFLATE."""
    global _ZSTD
    if _ZSTD is None:
        from rasterio.io import MemoryFile

        try:
            with MemoryFile() as mem:
                with mem.open(driver="GTiff", width=16, height=16, count=1, dtype="uint8", compress="zstd") as ds:
                    ds.write(np.zeros((1, 16, 16), "uint8"))
                with mem.open() as ds:
                    _ZSTD = (ds.profile.get("compress") or "").lower() == "zstd"
        except Exception:
            _ZSTD = False
    return "ZSTD" if _ZSTD else "DEFLATE"


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_name(f".{path.stem}.partial-{uuid.uuid4().hex[:8]}{path.suffix or '.tif'}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success."""
    path = Path(path)
    if not path.parent.exists():
        raise EmbeddingsError(f"The output folder {path.parent} does not exist; choose another output file.")
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        _remove_with_sidecars(tmp)
        raise
    finally:
        _remove_with_sidecars(tmp, only_sidecars=True)


def _remove_with_sidecars(path: Path, only_sidecars: bool = False) -> None:
    targets = [Path(str(path) + ".aux.xml"), Path(str(path) + ".ovr"), Path(str(path) + ".msk")]
    if not only_sidecars:
        targets.insert(0, path)
    for p in targets:
        with contextlib.suppress(OSError):
            p.unlink()


def geotiff_profile(grid: Grid, count: int, dtype: str, nodata: float) -> dict[str, Any]:
    tiled = grid.width >= 16 and grid.height >= 16
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": count,
        "dtype": dtype,
        "nodata": nodata,
        "crs": crs_from(grid.crs),
        "transform": grid.transform,
        "compress": _zstd_or_deflate(),
        "interleave": "pixel",
        "BIGTIFF": "IF_SAFER",
        "PHOTOMETRIC": "MINISBLACK",
    }
    if tiled:
        size = 512 if min(grid.width, grid.height) >= 512 else 256
        if min(grid.width, grid.height) < 256:
            size = 16 * max(1, min(grid.width, grid.height) // 16)
        profile.update(tiled=True, blockxsize=size, blockysize=size)
    # Fast levels: compression runs on the thread that computes the map, and the results
    # (scores, change, classes) compress nearly as well at these levels as at GDAL's defaults.
    if profile["compress"] == "ZSTD":
        profile["zstd_level"] = 1
    else:
        profile["zlevel"] = 1
    if dtype in ("float32", "float64"):
        profile["predictor"] = 3 if profile["compress"] != "ZSTD" else 1
    return profile


# Written bytes after which the output is closed and reopened: GDAL keeps what is written in
# its process-wide block cache until the file is closed, so without this an output would sit
# in memory whole, growing with the extent.
FLUSH_BYTES = 8 * 1024 * 1024


class RasterWriter:
    """An output GeoTIFF being written: blocks go in by window of the output grid."""

    def __init__(self, ds: Any, path: str | None = None):
        self._ds = ds
        self._path = path
        self._unflushed = 0

    def write(self, data: Array, window: Window) -> None:
        """``data`` (bands, h, w) into ``window``."""
        from rasterio.windows import Window as RioWindow

        self._ds.write(data, window=RioWindow(window.col_off, window.row_off, window.width, window.height))
        self._unflushed += int(data.nbytes)
        if self._path is not None and self._unflushed >= FLUSH_BYTES:
            import rasterio

            self._ds.close()  # GDAL writes out and forgets the blocks it holds
            self._ds = rasterio.open(self._path, "r+")
            self._unflushed = 0

    def rewrite(self, windows: Sequence[Window], fn: Callable[[Array], Array]) -> None:
        """Replace what was written in ``windows`` by ``fn`` of it, window by window (before the
        file is renamed into place, so an interrupted run still leaves no output)."""
        import rasterio
        from rasterio.windows import Window as RioWindow

        if self._path is None:
            raise RuntimeError("rewrite needs the writer's path")
        self._ds.close()
        self._ds = rasterio.open(self._path, "r+")
        for w in windows:
            rw = RioWindow(w.col_off, w.row_off, w.width, w.height)
            self._ds.write(fn(self._ds.read(window=rw)), window=rw)

    def close(self) -> None:
        self._ds.close()

    def update_tags(self, **tags: str) -> None:
        self._ds.update_tags(**tags)


@contextlib.contextmanager
def _open_output(
    path: str, grid: Grid, band_names: Sequence[str], dtype: str, nodata: float, tags: dict[str, str]
) -> Iterator[RasterWriter]:
    """A GeoTIFF with named bands and tags, under a temporary name until the block exits."""
    import rasterio

    with atomic_path(path) as tmp:
        profile = geotiff_profile(grid, len(band_names), dtype, nodata)
        try:
            ds = rasterio.open(tmp, "w", **profile)
        except Exception as exc:
            raise EmbeddingsError(f"The output file {path} cannot be created ({exc}).") from None
        for i, name in enumerate(band_names, start=1):
            ds.set_band_description(i, name)
        if tags:
            ds.update_tags(**tags)
        writer = RasterWriter(ds, str(tmp))
        try:
            yield writer
        finally:
            writer.close()


def open_embedding_output(
    path: str, grid: Grid, band_names: Sequence[str], tags: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[RasterWriter]:
    """A 64-band (or N-band) int8 GeoTIFF with AEF quantisation, written atomically."""
    return _open_output(path, grid, band_names, "int8", NODATA, {"AEF_QUANTIZATION": FORMULA, **(tags or {})})


def open_float_output(
    path: str,
    grid: Grid,
    band_names: Sequence[str] = ("value",),
    nodata: float = -9999.0,
    tags: dict[str, str] | None = None,
) -> contextlib.AbstractContextManager[RasterWriter]:
    """A float32 GeoTIFF written atomically."""
    return _open_output(path, grid, band_names, "float32", nodata, tags or {})


def open_class_output(
    path: str, grid: Grid, dtype: str, nodata: float, tags: dict[str, str] | None = None, band: str = "class"
) -> contextlib.AbstractContextManager[RasterWriter]:
    """A single-band integer GeoTIFF (class or cluster codes) written atomically."""
    return _open_output(path, grid, (band,), dtype, nodata, tags or {})


def open_int16_output(
    path: str,
    grid: Grid,
    band_names: Sequence[str] = ("value",),
    nodata: int = -1,
    tags: dict[str, str] | None = None,
) -> contextlib.AbstractContextManager[RasterWriter]:
    """An int16 GeoTIFF (years, classes) written atomically."""
    return _open_output(path, grid, band_names, "int16", nodata, tags or {})


def open_rgb_output(
    path: str, grid: Grid, band_names: Sequence[str], nodata: int = 0, tags: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[RasterWriter]:
    """A 3-band uint8 GeoTIFF (an RGB view) written atomically."""
    return _open_output(path, grid, band_names, "uint8", nodata, tags or {})


def write_signed_view_vrt(tif_path: str | os.PathLike[str], vrt_path: str | os.PathLike[str] | None = None) -> str:
    """A VRT beside an int8 GeoTIFF that shows its codes as signed Int16.

    GDAL before 3.7 has no Int8 type: it reads int8 files as Byte, and QGIS then shows
    -1 as 255 and no no-data at all. The VRT maps the bytes back to -128..127 with a
    lookup table (exact for every code), keeps no-data -128, the band names and the
    AEF quantisation tag, so that QGIS renders and identifies the real codes.
    """
    from xml.sax.saxutils import escape

    import rasterio

    tif_path = Path(tif_path)
    vrt_path = Path(vrt_path) if vrt_path else tif_path.with_name(tif_path.stem + "_view.vrt")
    with rasterio.open(tif_path) as ds:
        width, height, count = ds.width, ds.height, ds.count
        gt = ds.transform.to_gdal()
        wkt = ds.crs.to_wkt() if ds.crs else ""
        names = ds.descriptions
        tags = ds.tags()
        block = ds.block_shapes[0]
    rel = os.path.relpath(tif_path, vrt_path.parent)
    meta = "".join(f'<MDI key="{escape(k)}">{escape(v)}</MDI>' for k, v in tags.items())
    bands = []
    for i in range(count):
        bands.append(
            f'  <VRTRasterBand dataType="Int16" band="{i + 1}" blockXSize="{block[1]}" blockYSize="{block[0]}">\n'
            f"    <Description>{escape(names[i] or f'b{i + 1:02d}')}</Description>\n"
            "    <NoDataValue>-128</NoDataValue>\n"
            "    <ComplexSource>\n"
            f'      <SourceFilename relativeToVRT="1">{escape(rel)}</SourceFilename>\n'
            f"      <SourceBand>{i + 1}</SourceBand>\n"
            f'      <SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>\n'
            f'      <DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>\n'
            "      <LUT>0:0,127:127,128:-128,255:-1</LUT>\n"
            "    </ComplexSource>\n"
            "  </VRTRasterBand>"
        )
    xml = (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n'
        f"  <SRS>{escape(wkt)}</SRS>\n"
        f"  <GeoTransform>{', '.join(repr(float(v)) for v in gt)}</GeoTransform>\n"
        f"  <Metadata>{meta}</Metadata>\n" + "\n".join(bands) + "\n</VRTDataset>\n"
    )
    with atomic_path(vrt_path) as tmp:
        Path(tmp).write_text(xml)
    return str(vrt_path)
