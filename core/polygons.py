"""Connected areas above a threshold in a single-band raster, as polygons with statistics.

Used for change polygons and similarity areas. The threshold mask is written block by
block to a temporary uint8 GeoTIFF and polygonised by GDAL straight from that file
(8-connected), so memory holds the polygons, not the raster.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from .geometry import Geometry, all_xy, geojson_to_wkt, polygon_area
from .progress import Progress


@dataclass
class Area:
    geometry: Geometry  # GeoJSON geometry in the raster's CRS
    area_m2: float
    pixel_count: int
    mean: float
    max: float

    @property
    def wkt(self) -> str:
        return geojson_to_wkt(self.geometry)


def areas_above(
    raster_path: str,
    threshold: float,
    min_area_m2: float = 0.0,
    progress: Progress | None = None,
    band: int = 1,
    block: int = 1024,
) -> list[Area]:
    """Connected areas where ``band`` > ``threshold``, largest first.

    ``area_m2`` is the pixel count times the pixel area (exact for raster polygons in a
    projected CRS in metres); ``mean``/``max`` are over the area's pixels.
    """
    import rasterio
    from rasterio import features
    from rasterio.windows import Window, from_bounds

    progress = progress or Progress()
    with rasterio.open(raster_path) as src:
        transform, crs = src.transform, src.crs
        pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
        nodata = src.nodata
        fd, mask_path = tempfile.mkstemp(suffix=".tif", prefix="ee-mask-")
        os.close(fd)
        try:
            profile = dict(
                driver="GTiff",
                width=src.width,
                height=src.height,
                count=1,
                dtype="uint8",
                crs=crs,
                transform=transform,
                tiled=True,
                blockxsize=256,
                blockysize=256,
                compress="deflate",
                nodata=0,
            )
            with rasterio.open(mask_path, "w", **profile) as dst:
                rows = range(0, src.height, block)
                for i, r in enumerate(rows):
                    progress.check_cancelled()
                    h = min(block, src.height - r)
                    win = Window(0, r, src.width, h)
                    v = src.read(band, window=win)
                    ok = np.isfinite(v) & (v > threshold)
                    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
                        ok &= v != nodata
                    dst.write(ok.astype(np.uint8)[None], window=win)
                    progress.set_progress(40.0 * (i + 1) / len(rows))
            shapes = []
            with rasterio.open(mask_path) as m:
                for geom, value in features.shapes(rasterio.band(m, 1), mask=rasterio.band(m, 1), connectivity=8):
                    if value != 1:
                        continue
                    area = polygon_area(geom)
                    if area + 1e-9 >= min_area_m2:
                        shapes.append((area, geom))
                    if len(shapes) % 1000 == 0:
                        progress.check_cancelled()
        finally:
            os.unlink(mask_path)
        shapes.sort(key=lambda ag: -ag[0])
        areas = []
        for i, (area, geom) in enumerate(shapes):
            if i % 50 == 0:
                progress.check_cancelled()
                progress.set_progress(40.0 + 60.0 * i / max(len(shapes), 1))
            xs, ys = zip(*all_xy(geom["coordinates"]))
            win = from_bounds(min(xs), min(ys), max(xs), max(ys), transform).round_offsets().round_lengths()
            win = win.intersection(Window(0, 0, src.width, src.height))
            values = src.read(band, window=win)
            inside = features.geometry_mask(
                [geom], out_shape=values.shape, transform=src.window_transform(win), invert=True
            )
            vals = values[inside & np.isfinite(values)]
            areas.append(
                Area(
                    geom,
                    float(round(area / pixel_area) * pixel_area),
                    int(round(area / pixel_area)),
                    float(vals.mean()) if vals.size else float("nan"),
                    float(vals.max()) if vals.size else float("nan"),
                )
            )
        progress.set_progress(100.0)
        return areas
