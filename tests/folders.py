"""Folders of embedding GeoTIFFs without an index, made from the sample collection's truth.

- ``int8_folder``: the sample's own AEF tiles (bottom-up int8) in their year folders, no index;
- ``float_folder``: the same pixels as other products store them: ``bands`` float32 values
  (the 64 de-quantized values turned by a fixed orthonormal map into ``bands`` dimensions,
  which keeps every cosine), times a per-pixel length between 0.3 and 3 (not unit vectors),
  north-up, NaN no-data, one folder per year and zone, one year striped (untiled), plus an
  RGB quicklook and a text file that are not embeddings;
- ``geographic_export``: one year as an Earth Engine export would write it: 64 float32
  de-quantized bands in EPSG:4326, no-data -9999, the year in the file name.

Cosines, hence change and similarity, are the sample's, so its truth applies unchanged.
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from earth_embeddings.core.grid import transformer
from earth_embeddings.core.quant import LUT, NODATA


def int8_folder(sample_dir: Path, out: Path, years=(2017, 2024)) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for year in years:
        shutil.copytree(sample_dir / str(year), out / str(year))
    return out


def lift(bands: int, seed: int = 11) -> np.ndarray:
    """(bands, 64) with orthonormal columns: v -> lift @ v keeps dot products."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(bands, 64)))
    return q.astype(np.float64)


def float_folder(sample_dir: Path, out: Path, bands: int = 128, striped_year: int | None = 2017) -> Path:
    """The sample's tiles as ``bands``-band float32 rasters, north-up (see the module docstring)."""
    q = lift(bands)
    for tif in sorted(sample_dir.glob("20??/*/*.tiff")):
        year = int(tif.parent.parent.name)
        with rasterio.open(tif) as ds:
            codes = ds.read()
            t, crs = ds.transform, ds.crs
        valid = ~(codes == NODATA).any(axis=0)
        values = LUT[codes.view(np.uint8)].astype(np.float64)  # (64, h, w)
        b, h, w = values.shape
        lifted = (q @ values.reshape(b, -1)).reshape(bands, h, w)
        rng = np.random.default_rng(zlib.crc32(tif.name.encode()))
        lifted *= rng.uniform(0.3, 3.0, size=(h, w))[None]
        lifted[:, ~valid] = np.nan
        if t.e > 0:  # the sample is bottom-up: store north-up
            lifted = lifted[:, ::-1, :]
            t = Affine(t.a, 0.0, t.c, 0.0, -t.e, t.f + t.e * h)
        dest = out / str(year) / tif.parent.name / (tif.stem + ".tif")
        dest.parent.mkdir(parents=True, exist_ok=True)
        layout = {} if year == striped_year else {"tiled": True, "blockxsize": 64, "blockysize": 64}
        with rasterio.open(
            dest,
            "w",
            driver="GTiff",
            width=w,
            height=h,
            count=bands,
            dtype="float32",
            crs=crs,
            transform=t,
            nodata=np.nan,
            compress="deflate",
            **layout,
        ) as ds:
            ds.write(lifted.astype(np.float32))
    # Not embeddings: a quicklook beside the tiles, and notes.
    quick = out / "2024" / "quicklook_rgb.tif"
    with rasterio.open(
        quick,
        "w",
        driver="GTiff",
        width=32,
        height=32,
        count=3,
        dtype="uint8",
        crs="EPSG:32616",
        transform=Affine(60.0, 0, 0, 0, -60.0, 0),
        photometric="RGB",
    ) as ds:
        ds.write(np.full((3, 32, 32), 128, dtype=np.uint8))
    (out / "README.txt").write_text("TESSERA-like export for the tests\n")
    return out


def geographic_export(truth, out: Path, year: int, res_deg: float = 1.0 / 11132.0, bottom_up: bool = False) -> Path:
    """One year over the middle of the sample in EPSG:4326, as float32 (see the module docstring)."""
    w, s, e, n = truth.notes["bbox_wgs84"]
    cx, cy, hw, hh = (w + e) / 2, (s + n) / 2, (e - w) * 0.3, (n - s) * 0.3
    west, north = cx - hw, cy + hh
    width, height = int(2 * hw / res_deg), int(2 * hh / res_deg)
    lon = west + (np.arange(width) + 0.5) * res_deg
    lat = north - (np.arange(height) + 0.5) * res_deg
    glon, glat = np.meshgrid(lon, lat)
    values = np.full((64, height, width), -9999.0, dtype=np.float32)
    for zone, z in truth.zones.items():
        side = glon < truth.lon0 if zone == "15N" else glon >= truth.lon0
        x, y = transformer("EPSG:4326", z["crs"]).transform(glon[side], glat[side])
        codes = truth.expected_codes(zone, x, y, year)
        got = LUT[codes.view(np.uint8)]
        got[:, (codes == NODATA).any(axis=0)] = -9999.0
        values[:, side] = got
    t = Affine(res_deg, 0.0, west, 0.0, -res_deg, north)
    if bottom_up:
        values = values[:, ::-1, :]
        t = Affine(res_deg, 0.0, west, 0.0, res_deg, north - res_deg * height)
    path = out / f"aef_{year}_export-0000000000-0000000000.tif"
    out.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=64,
        dtype="float32",
        crs="EPSG:4326",
        transform=t,
        nodata=-9999.0,
        tiled=True,
        blockxsize=128,
        blockysize=128,
        compress="deflate",
    ) as ds:
        ds.write(values)
    return path
