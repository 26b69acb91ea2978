"""Small AEF-style collections with planted ground truth, for tests, the demo and benchmarks.

``make_sample_collection(folder)`` writes, in the real product's layout:

- ``aef_index.csv`` and ``aef_index.gpkg`` with the real columns (``WKT``/geometry, ``crs``,
  ``year``, ``utm_zone``, ``utm_*`` and ``wgs84_*`` bounds, ``path`` as ``s3://`` URIs, ``fid``);
- ``{year}/{zone}/{hash}-{row}-{col}.tiff``: 64-band int8 tiles, stored bottom-up, ZSTD,
  internally tiled with the bands stored separately (band interleave, as the product), no-data -128, band names A00..A63, with overviews that hold the
  renormalised mean of the pixels below (as the product's do);
- two UTM zones (15N and 16N, seam at 90 W) whose tiles run past the seam, footprints in
  the index clipped to the zone, and tiles of one zone overlapping slightly;
- planted land cover (Voronoi cells of six classes, two of them confusable), planted
  changes between the years (discs), a no-data hole in the last year;
- ``series=True`` (``make_series_collection``): at least five years, the persistent changes
  planted in different years, a disturbance in one year only (temporary), a larger one-year
  disturbance inside an older persistent change, and the no-data hole in one middle year only;
- any seam: ``lon_seam`` and ``lat0`` place the zone pair (``lat0 < 0``: EPSG:327xx and ``..S``
  zone folders, ``make_sample_collection(folder, lon_seam=18.0, lat0=-33.9)``);
- ``truth.json``: everything needed to recompute the truth at any point (``SampleTruth``),
  plus ``exemplars.geojson`` and ``zones.geojson`` for the demo.

Every pixel's vector is a pure function of (zone, global pixel index, year), so
overlapping tiles agree and tests can compute the expected codes independently.
Needs GDAL's Python bindings (osgeo) to write the overviews; the plugin itself does not.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from earth_embeddings.core.grid import transformer
from earth_embeddings.core.quant import NODATA, quantize

CLASSES = ("water", "forest", "cropland", "cropland_b", "urban", "grassland")
BANDS = 64
PERIOD = (97, 89)  # noise table period in x and y pixels (coprime, not block-aligned)
STRIP_ROWS = 128  # rows of a tile generated at once (bounded memory for big tiles)


@dataclass
class SampleTruth:
    """The planted truth of a sample collection (JSON-serialisable)."""

    seed: int
    years: list
    lon0: float
    lat0: float
    zones: dict  # zone name -> {"crs": ..., "tiles": [[west, south, east, north], ...]}
    seeds_xy: list  # Voronoi seeds in local metres
    seed_class: list
    prototypes: list  # (classes, 64)
    changes: list  # [{"x": m, "y": m, "r": m, "to": class}]
    holes: list  # [{"x": m, "y": m, "r": m, "year": y}]
    noise: float
    resolution: float = 10.0
    notes: dict = field(default_factory=dict)
    # One-year disturbances: [{"x": m, "y": m, "r": m, "year": y}]: in that year only, the
    # pixel's vector is turned around (the opposite of its first-year class: 1 - cos near 2).
    disturbances: list = field(default_factory=list)

    # Geometry helpers ----------------------------------------------------------
    def local_xy(self, lon, lat):
        """Local metres around (lon0, lat0): an equirectangular frame for planting."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        x = (lon - self.lon0) * 111320.0 * math.cos(math.radians(self.lat0))
        y = (lat - self.lat0) * 110540.0
        return x, y

    def lonlat_of_local(self, x, y):
        lon = self.lon0 + np.asarray(x) / (111320.0 * math.cos(math.radians(self.lat0)))
        lat = self.lat0 + np.asarray(y) / 110540.0
        return lon, lat

    def base_class_at(self, lon, lat) -> np.ndarray:
        x, y = self.local_xy(lon, lat)
        seeds = np.asarray(self.seeds_xy)
        shape = np.shape(x)
        px = np.reshape(x, -1)
        py = np.reshape(y, -1)
        nearest = np.empty(px.shape, dtype=np.int64)
        step = 65536
        for i in range(0, px.size, step):
            cx, cy = px[i : i + step], py[i : i + step]
            # Only seeds that can be the nearest for some point of this chunk's box: those no
            # farther from the box than the smallest farthest-distance of any seed to the box.
            # Exact (the same argmin as over all seeds), and far fewer distances for big collections.
            x0, x1, y0, y1 = cx.min(), cx.max(), cy.min(), cy.max()
            far = (
                np.maximum(np.abs(seeds[:, 0] - x0), np.abs(seeds[:, 0] - x1)) ** 2
                + np.maximum(np.abs(seeds[:, 1] - y0), np.abs(seeds[:, 1] - y1)) ** 2
            )
            near = (
                np.maximum(np.maximum(x0 - seeds[:, 0], seeds[:, 0] - x1), 0.0) ** 2
                + np.maximum(np.maximum(y0 - seeds[:, 1], seeds[:, 1] - y1), 0.0) ** 2
            )
            cand = np.flatnonzero(near <= far.min())
            sx, sy = seeds[cand, 0], seeds[cand, 1]
            sub = max(1, 4_000_000 // cand.size)  # bounded memory for scattered points
            for j in range(0, cx.size, sub):
                k = min(cx.size, j + sub)
                d = (cx[j:k, None] - sx[None, :]) ** 2 + (cy[j:k, None] - sy[None, :]) ** 2
                nearest[i + j : i + k] = cand[np.argmin(d, axis=1)]
        return np.asarray(self.seed_class)[nearest].reshape(shape)

    def change_at(self, lon, lat) -> np.ndarray:
        """True where the class in the last year differs from the first (planted change)."""
        first, last = min(self.years), max(self.years)
        return self.class_at(lon, lat, first) != self.class_at(lon, lat, last)

    def class_at(self, lon, lat, year) -> np.ndarray:
        """The planted class in ``year``: a change applies from its "year" on (without one,
        from the second year on)."""
        return self._planted(lon, lat, self.base_class_at(lon, lat), year)

    def _planted(self, lon, lat, cls, year) -> np.ndarray:
        first = min(self.years)
        x, y = self.local_xy(lon, lat)
        for c in self.changes:
            if int(year) >= int(c.get("year", first + 1)):
                inside = (x - c["x"]) ** 2 + (y - c["y"]) ** 2 <= c["r"] ** 2
                cls = np.where(inside, c["to"], cls)
        return cls

    def disturbed_at(self, lon, lat, year) -> np.ndarray:
        """True where a one-year disturbance turns the pixel's vector around in ``year``."""
        return self.in_discs(lon, lat, [d for d in self.disturbances if int(d["year"]) == int(year)])

    def in_discs(self, lon, lat, discs) -> np.ndarray:
        """True inside any of the discs ({"x", "y", "r"} in local metres)."""
        x, y = self.local_xy(lon, lat)
        out = np.zeros(np.shape(x), dtype=bool)
        for d in discs:
            out |= (x - d["x"]) ** 2 + (y - d["y"]) ** 2 <= d["r"] ** 2
        return out

    def year_of_change_at(self, lon, lat) -> np.ndarray:
        """The planted "since when it stayed changed" (int): the first year Y after the baseline
        such that Y and every later year with data differ from the baseline (another class, or
        disturbed); 0 where the last year with data does not differ; -1 where fewer than two
        years have data. The baseline is the first year, or the first year with data where
        the first has none (as embeddings:trajectory does)."""
        years = sorted(int(y) for y in self.years)
        base = self.base_class_at(lon, lat)
        cls = np.stack([self._planted(lon, lat, base, y) for y in years])
        dist = np.stack([self.disturbed_at(lon, lat, y) for y in years])
        data = ~np.stack([self.hole_at(lon, lat, y) for y in years])
        base = np.argmax(data, axis=0)
        base_cls = np.take_along_axis(cls, base[None], axis=0)[0]
        base_dist = np.take_along_axis(dist, base[None], axis=0)[0]
        differs = (cls != base_cls[None]) | (dist != base_dist[None])
        out = np.zeros(np.shape(cls[0]), dtype=np.int64)
        still = np.ones(out.shape, dtype=bool)
        for i in reversed(range(len(years))):
            compared = data[i] & (i > base)
            still &= differs[i] | ~compared
            out = np.where(still & compared & differs[i], years[i], out)
        out[data.sum(axis=0) < 2] = -1
        return out

    def hole_at(self, lon, lat, year) -> np.ndarray:
        return self.in_discs(lon, lat, [h for h in self.holes if int(h["year"]) == int(year)])

    # Codes -------------------------------------------------------------------------
    def _noise_table(self, year: int, zone: str) -> np.ndarray:
        key = int(hashlib.sha1(f"{self.seed}|{year}|{zone}".encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(key)
        return rng.normal(0.0, self.noise / math.sqrt(BANDS), size=(PERIOD[1], PERIOD[0], BANDS)).astype(np.float64)

    def codes_for_pixels(self, zone: str, ix: np.ndarray, iy: np.ndarray, year: int) -> np.ndarray:
        """int8 codes (64, n) of a zone's global pixels (ix east, iy north, 10 m)."""
        crs = self.zones[zone]["crs"]
        ix = np.asarray(ix).ravel()
        iy = np.asarray(iy).ravel()
        xc = (ix + 0.5) * self.resolution
        yc = (iy + 0.5) * self.resolution
        lon, lat = transformer(crs, "EPSG:4326").transform(xc, yc)
        cls = self.class_at(lon, lat, year)
        protos = np.asarray(self.prototypes)
        table = self._noise_table(year, zone)
        signal = protos[cls]
        if self.disturbances:
            turned = self.disturbed_at(lon, lat, year)
            signal[turned] = -protos[self.class_at(lon[turned], lat[turned], min(self.years))]
        v = signal + table[np.mod(iy, PERIOD[1]), np.mod(ix, PERIOD[0])]
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        codes = quantize(v.T)
        codes[:, self.hole_at(lon, lat, year)] = NODATA
        return codes

    def expected_codes(self, zone: str, x, y, year: int) -> np.ndarray:
        """Codes (64, n) of the zone's pixels containing points (x, y) in the zone's CRS."""
        ix = np.floor(np.asarray(x, dtype=np.float64) / self.resolution).astype(np.int64)
        iy = np.floor(np.asarray(y, dtype=np.float64) / self.resolution).astype(np.int64)
        return self.codes_for_pixels(zone, ix, iy, year)

    def covered(self, zone: str, x, y) -> np.ndarray:
        """True where a tile of ``zone`` has pixels at (x, y) in the zone's CRS."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        out = np.zeros(np.shape(x), dtype=bool)
        for w, s, e, n in self.zones[zone]["tiles"]:
            out |= (x >= w) & (x < e) & (y >= s) & (y < n)
        return out

    def zone_of_crs(self, crs: str) -> str | None:
        for name, z in self.zones.items():
            if z["crs"] == crs:
                return name
        return None

    @classmethod
    def load(cls, folder) -> SampleTruth:
        data = json.loads((Path(folder) / "truth.json").read_text())
        return cls(**data)

    def save(self, folder) -> None:
        (Path(folder) / "truth.json").write_text(json.dumps(asdict(self), indent=1))


# ----------------------------------------------------------------------------- writing


def _prototypes(rng: np.random.Generator) -> np.ndarray:
    # Random directions in 64-d are nearly orthogonal; cropland_b is made confusable with
    # cropland (cosine 0.8) so that negatives have something to separate.
    protos = rng.normal(size=(len(CLASSES), BANDS))
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    a = protos[CLASSES.index("cropland")]
    r = protos[CLASSES.index("cropland_b")]
    r = r - (r @ a) * a
    r /= np.linalg.norm(r)
    protos[CLASSES.index("cropland_b")] = 0.8 * a + 0.6 * r
    return protos


def _tile_name(rng_key: str, row_off: int, col_off: int) -> str:
    h = hashlib.sha1(rng_key.encode()).hexdigest()
    letters = "".join("abcdefghijklmnopqrstuvwxyz0123456789"[int(h[i : i + 2], 16) % 36] for i in range(0, 34, 2))
    return f"x{letters}-{row_off:010d}-{col_off:010d}"


def _write_tile(
    path: Path, codes: np.ndarray, crs: str, west: float, south: float, res: float, block: int, interleave: str = "band"
) -> None:
    """Write a bottom-up int8 tile with renormalised-mean overviews, ZSTD, tiled.

    ``interleave="band"`` is the real product's layout (planar configuration 2: one
    compressed block holds one band); ``"pixel"`` stores the 64 codes of a pixel together
    (as many other GeoTIFFs do)."""
    if interleave not in ("band", "pixel"):
        raise ValueError(f"interleave must be 'band' or 'pixel', not {interleave!r}")
    import rasterio
    from affine import Affine
    from osgeo import gdal

    gdal.UseExceptions()
    bands, h, w = codes.shape
    # Stored bottom-up: row 0 of the file is the southernmost row, y resolution positive.
    transform = Affine(res, 0.0, west, 0.0, res, south)
    stored = codes[:, ::-1, :]
    tmp = path.with_suffix(".tmp.tif")
    profile = dict(
        driver="GTiff",
        width=w,
        height=h,
        count=bands,
        dtype="int8",
        nodata=NODATA,
        crs=crs,
        transform=transform,
        tiled=True,
        blockxsize=block,
        blockysize=block,
        interleave=interleave,
        photometric="MINISBLACK",
    )
    with rasterio.open(tmp, "w", **profile) as ds:
        ds.write(stored)
        for i in range(bands):
            ds.set_band_description(i + 1, f"A{i:02d}")
    factors = [f for f in (2, 4, 8) if h % f == 0 and w % f == 0 and min(h, w) // f >= 16]
    ds = gdal.Open(str(tmp), gdal.GA_Update)
    if factors:
        ds.BuildOverviews("NEAREST", factors)
        from earth_embeddings.core.quant import LUT

        values = LUT[stored.view(np.uint8)].astype(np.float64)
        valid = ~(stored == NODATA).any(axis=0)
        for k, f in enumerate(factors):
            vv = np.where(valid[None], values, 0.0).reshape(bands, h // f, f, w // f, f).sum(axis=(2, 4))
            cnt = valid.reshape(h // f, f, w // f, f).sum(axis=(1, 3))
            norm = np.linalg.norm(vv, axis=0)
            ok = (cnt > 0) & (norm > 0)
            mean = np.where(ok[None], vv / np.where(norm > 0, norm, 1.0)[None], np.nan)
            q = quantize(mean)
            # GDAL < 3.7 stores int8 as Byte (give it the bytes); from 3.7 on the band is Int8,
            # and bytes above 127 would be clipped to 127.
            signed = getattr(gdal, "GDT_Int8", None) == ds.GetRasterBand(1).DataType
            for b in range(bands):
                ds.GetRasterBand(b + 1).GetOverview(k).WriteArray(q[b] if signed else q[b].view(np.uint8))
    ds = None
    gdal.Translate(
        str(path),
        str(tmp),
        creationOptions=[
            "TILED=YES",
            f"BLOCKXSIZE={block}",
            f"BLOCKYSIZE={block}",
            "COMPRESS=ZSTD",
            "COPY_SRC_OVERVIEWS=YES",
            f"INTERLEAVE={interleave.upper()}",
            "PHOTOMETRIC=MINISBLACK",
        ],
    )
    tmp.unlink()


def _footprint(crs: str, bounds, zone_lon: tuple[float, float]):
    w, s, e, n = bounds
    t = np.linspace(0, 1, 21)
    xs = np.concatenate([w + (e - w) * t, np.full(21, e), e - (e - w) * t, np.full(21, w)])
    ys = np.concatenate([np.full(21, s), s + (n - s) * t, np.full(21, n), n - (n - s) * t])
    lon, lat = transformer(crs, "EPSG:4326").transform(xs, ys)
    lon = np.clip(lon, zone_lon[0], zone_lon[1])
    return float(lon.min()), float(np.min(lat)), float(lon.max()), float(np.max(lat))


# The columns of the product's CSV index, in its order.
INDEX_COLUMNS = [
    "WKT",
    "crs",
    "year",
    "utm_zone",
    "utm_west",
    "utm_south",
    "utm_east",
    "utm_north",
    "wgs84_west",
    "wgs84_south",
    "wgs84_east",
    "wgs84_north",
    "path",
    "fid",
]


def _write_index(folder: Path, rows: list) -> None:
    import csv

    cols = INDEX_COLUMNS
    with open(folder / "aef_index.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=cols)
        wr.writeheader()
        for r in rows:
            w, s, e, n = r["wgs84"]
            wkt = f"POLYGON (({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))"
            wr.writerow(
                {
                    "WKT": wkt,
                    "crs": r["crs"],
                    "year": r["year"],
                    "utm_zone": r["utm_zone"],
                    "utm_west": r["utm"][0],
                    "utm_south": r["utm"][1],
                    "utm_east": r["utm"][2],
                    "utm_north": r["utm"][3],
                    "wgs84_west": w,
                    "wgs84_south": s,
                    "wgs84_east": e,
                    "wgs84_north": n,
                    "path": r["path"],
                    "fid": r["fid"],
                }
            )
    _write_gpkg(folder / "aef_index.gpkg", rows)


def _write_gpkg(path: Path, rows: list) -> None:
    from osgeo import ogr, osr

    ogr.UseExceptions()
    if path.exists():
        path.unlink()
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    layer = ds.CreateLayer("aef_index", srs, ogr.wkbPolygon, options=["FID=fid"])
    for name, kind in [
        ("crs", ogr.OFTString),
        ("year", ogr.OFTInteger),
        ("utm_zone", ogr.OFTString),
        ("utm_west", ogr.OFTReal),
        ("utm_south", ogr.OFTReal),
        ("utm_east", ogr.OFTReal),
        ("utm_north", ogr.OFTReal),
        ("wgs84_west", ogr.OFTReal),
        ("wgs84_south", ogr.OFTReal),
        ("wgs84_east", ogr.OFTReal),
        ("wgs84_north", ogr.OFTReal),
        ("path", ogr.OFTString),
    ]:
        layer.CreateField(ogr.FieldDefn(name, kind))
    for r in rows:
        feat = ogr.Feature(layer.GetLayerDefn())
        feat.SetFID(r["fid"])
        w, s, e, n = r["wgs84"]
        feat.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON (({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))"))
        for key, val in [("crs", r["crs"]), ("year", r["year"]), ("utm_zone", r["utm_zone"]), ("path", r["path"])]:
            feat.SetField(key, val)
        for i, key in enumerate(("utm_west", "utm_south", "utm_east", "utm_north")):
            feat.SetField(key, float(r["utm"][i]))
        for i, key in enumerate(("wgs84_west", "wgs84_south", "wgs84_east", "wgs84_north")):
            feat.SetField(key, float(r["wgs84"][i]))
        layer.CreateFeature(feat)
    ds = None


S3_BASE = "s3://us-west-2.opendata.source.coop/tge-labs/aef/v1/annual"


def make_sample_collection(
    folder,
    years=(2017, 2024),
    tile_px: int = 192,
    tiles_per_zone: tuple[int, int] = (2, 2),
    past_seam_px: int = 40,
    overlap_px: int = 6,
    block: int = 64,
    seed: int = 42,
    noise: float = 0.2,
    lat0: float = 44.45,
    interleave: str = "band",
    lon_seam: float = -90.0,
    series: bool = False,
) -> SampleTruth:
    """Write a sample collection into ``folder`` (created) and return its truth.

    The defaults make a small collection for tests (192 px tiles, 64 px internal blocks);
    ``tile_px=2048, block=1024`` is the real product's internal layout at a quarter of its
    tile size (band interleave either way unless ``interleave="pixel"``). ``lon_seam`` (a
    UTM zone boundary, a multiple of 6) and ``lat0`` place the pair of zones; ``series`` plants
    a time series (see ``plant_series``) in five or more years."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    years = sorted(int(y) for y in years)
    if series and len(years) < 5:
        raise ValueError(f"a time series needs at least five years, not {years}")
    rng = np.random.default_rng(seed)
    zones = _zone_pair(lon_seam, lat0)
    res = 10.0
    cols, nrows = tiles_per_zone
    step = tile_px - overlap_px

    # Tile layouts: 15N tiles end past_seam_px east of the seam, 16N tiles start that far west.
    layouts = {}
    for name, z in zones.items():
        sx, sy = transformer("EPSG:4326", z["crs"]).transform(lon_seam, lat0)
        # Origins on multiples of 80 m, so that the first tile's overviews line up with
        # grids at 20, 40 and 80 m (the others, shifted by the overlap, do not).
        y_south = math.floor((sy - nrows * step * res / 2) / 80.0) * 80.0
        if name == "15N":
            x_east = sx + past_seam_px * res
            x_west = math.floor((x_east - (step * (cols - 1) + tile_px) * res) / 80.0) * 80.0
        else:
            x_west = math.floor(sx / 80.0) * 80.0 - past_seam_px * res
        tiles = []
        for r in range(nrows):
            for c in range(cols):
                w = x_west + c * step * res
                s = y_south + r * step * res
                tiles.append([w, s, w + tile_px * res, s + tile_px * res])
        layouts[name] = tiles

    # Planting frame: centred on the seam; seeds cover both zones' tiles.
    all_ll = []
    for name, tiles in layouts.items():
        for w, s, e, n in tiles:
            lon, lat = transformer(zones[name]["crs"], "EPSG:4326").transform([w, e, w, e], [s, s, n, n])
            all_ll.append((min(lon), min(lat), max(lon), max(lat)))
    lon_min = min(b[0] for b in all_ll)
    lon_max = max(b[2] for b in all_ll)
    lat_min = min(b[1] for b in all_ll)
    lat_max = max(b[3] for b in all_ll)
    truth = SampleTruth(
        seed=seed,
        years=list(years),
        lon0=lon_seam,
        lat0=lat0,
        zones={n: {"crs": zones[n]["crs"], "tiles": layouts[n]} for n in zones},
        seeds_xy=[],
        seed_class=[],
        prototypes=_prototypes(rng).tolist(),
        changes=[],
        holes=[],
        noise=noise,
    )
    x0, y0 = truth.local_xy(lon_min, lat_min)
    x1, y1 = truth.local_xy(lon_max, lat_max)
    area = (x1 - x0) * (y1 - y0)
    n_seeds = max(len(CLASSES) * 2, int(area / 1.0e6))
    seeds = np.column_stack([rng.uniform(x0, x1, n_seeds), rng.uniform(y0, y1, n_seeds)])
    classes = np.concatenate([np.arange(len(CLASSES)), rng.integers(0, len(CLASSES), n_seeds - len(CLASSES))])
    rng.shuffle(classes)
    truth.seeds_xy = seeds.tolist()
    truth.seed_class = classes.tolist()
    # Planted changes: one disc across the seam (construction: to urban), others inside each zone.
    span_x = x1 - x0
    span_y = y1 - y0
    truth.changes = [
        {"x": 0.0, "y": 0.15 * span_y, "r": 0.06 * span_y, "to": CLASSES.index("urban")},
        {"x": x0 + 0.22 * span_x, "y": y0 + 0.3 * span_y, "r": 0.07 * span_y, "to": CLASSES.index("water")},
        {"x": x0 + 0.8 * span_x, "y": y0 + 0.7 * span_y, "r": 0.08 * span_y, "to": CLASSES.index("urban")},
        {"x": x0 + 0.7 * span_x, "y": y0 + 0.25 * span_y, "r": 0.05 * span_y, "to": CLASSES.index("forest")},
    ]
    truth.holes = [{"x": x0 + 0.3 * span_x, "y": y0 + 0.75 * span_y, "r": 0.05 * span_y, "year": max(years)}]
    if series:
        plant_series(truth, (x0, y0, x1, y1))
    truth.notes = {
        "classes": list(CLASSES),
        "frame": "local metres: x = (lon - lon0) * 111320 * cos(lat0), y = (lat - lat0) * 110540",
        "bbox_wgs84": [lon_min, lat_min, lon_max, lat_max],
    }

    rows = []
    fid = 1
    for year in years:
        for name, tiles in layouts.items():
            crs = zones[name]["crs"]
            (folder / str(year) / name).mkdir(parents=True, exist_ok=True)
            for k, (w, s, e, n) in enumerate(tiles):
                ix = np.arange(int(round(w / res)), int(round(e / res)))
                iy = np.arange(int(round(s / res)), int(round(n / res)))[::-1]  # north first
                # Strips of rows: the float64 vectors of a whole large tile would need GBs.
                codes = np.empty((BANDS, len(iy), len(ix)), dtype=np.int8)
                for r in range(0, len(iy), STRIP_ROWS):
                    gx, gy = np.meshgrid(ix, iy[r : r + STRIP_ROWS])
                    codes[:, r : r + STRIP_ROWS] = truth.codes_for_pixels(name, gx, gy, year).reshape(
                        BANDS, gy.shape[0], len(ix)
                    )
                fname = _tile_name(f"{seed}|{year}|{name}|{k}", k // cols * step, k % cols * step) + ".tiff"
                _write_tile(folder / str(year) / name / fname, codes, crs, w, s, res, block, interleave)
                rows.append(
                    {
                        "fid": fid,
                        "year": year,
                        "crs": crs,
                        "utm_zone": name,
                        "utm": (w, s, e, n),
                        "wgs84": _footprint(crs, (w, s, e, n), zones[name]["lon"]),
                        "path": f"{S3_BASE}/{year}/{name}/{fname}",
                    }
                )
                fid += 1
    _write_index(folder, rows)
    truth.save(folder)
    _write_demo_vectors(folder, truth)
    return truth


def _zone_pair(lon_seam: float, lat0: float) -> dict:
    """The two UTM zones meeting at ``lon_seam``: {name: {"crs", "lon": (west, east)}}."""
    if abs(lon_seam / 6.0 - round(lon_seam / 6.0)) > 1e-9:
        raise ValueError(f"lon_seam {lon_seam} is not a UTM zone boundary (a multiple of 6 degrees)")
    east = int(math.floor((lon_seam + 180.0) / 6.0)) % 60 + 1
    west = (east - 2) % 60 + 1
    hemi, base = ("N", 32600) if lat0 >= 0 else ("S", 32700)
    return {
        f"{west}{hemi}": {"crs": f"EPSG:{base + west}", "lon": (lon_seam - 6.0, lon_seam)},
        f"{east}{hemi}": {"crs": f"EPSG:{base + east}", "lon": (lon_seam, lon_seam + 6.0)},
    }


def plant_series(truth: SampleTruth, frame: tuple) -> None:
    """Plant a time series over the planted land cover (years y0 < y1 < ... , five or more).

    The four changes become persistent from different years (y2, y3, y4 and y1); a disc is
    disturbed in y2 only (it comes back: temporary); a smaller disc inside the y1 change is
    disturbed in y4, more strongly than the change itself (it keeps its y1 year of change);
    the no-data hole is in y3 only, over the edge of the y4 change and stable land."""
    x0, y0, x1, y1 = frame
    span_x, span_y = x1 - x0, y1 - y0
    ys = sorted(int(y) for y in truth.years)
    for change, year in zip(truth.changes, (ys[2], ys[3], ys[4], ys[1])):
        change["year"] = year
    older = truth.changes[3]
    truth.disturbances = [
        {"x": x0 + 0.4 * span_x, "y": y0 + 0.4 * span_y, "r": 0.06 * span_y, "year": ys[2]},
        {"x": older["x"], "y": older["y"], "r": 0.5 * older["r"], "year": ys[4]},
    ]
    late = truth.changes[2]
    truth.holes = [{"x": late["x"] + late["r"], "y": late["y"], "r": 0.05 * span_y, "year": ys[3]}]
    truth.notes["series"] = {
        "changes": "persistent from their 'year' on",
        "disturbances": "one year only: the vector turned around (opposite of the first-year class)",
        "hole": f"no data in {ys[3]} only",
    }


def make_series_collection(folder, years=tuple(range(2017, 2023)), **kwargs) -> SampleTruth:
    """A sample collection with a planted time series (six years by default; see ``plant_series``)."""
    return make_sample_collection(folder, years=years, series=True, **kwargs)


def class_interior_points(
    truth: SampleTruth, cls: int, year: int, n: int, margin_m: float = 80.0, seed: int = 0, rng_bounds=None
):
    """``n`` lon/lat points well inside cells of class ``cls`` (for exemplars)."""
    rng = np.random.default_rng(seed)
    lon_min, lat_min, lon_max, lat_max = rng_bounds or truth.notes["bbox_wgs84"]
    pad_lon = (lon_max - lon_min) * 0.08
    pad_lat = (lat_max - lat_min) * 0.08
    pts = []
    for _ in range(20000):
        lon = rng.uniform(lon_min + pad_lon, lon_max - pad_lon)
        lat = rng.uniform(lat_min + pad_lat, lat_max - pad_lat)
        x, y = truth.local_xy(lon, lat)
        ring = [(x + margin_m * math.cos(a), y + margin_m * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 9)]
        lons, lats = truth.lonlat_of_local([p[0] for p in ring] + [x], [p[1] for p in ring] + [y])
        if (truth.class_at(lons, lats, year) == cls).all() and not truth.hole_at(lons, lats, year).any():
            pts.append((float(lon), float(lat)))
            if len(pts) == n:
                return pts
    raise RuntimeError(f"could not place {n} points inside class {cls}")


def _write_demo_vectors(folder: Path, truth: SampleTruth) -> None:
    year = min(truth.years)
    pts = class_interior_points(truth, CLASSES.index("forest"), year, 3, seed=1)
    features = [
        {
            "type": "Feature",
            "properties": {"name": f"forest {i + 1}", "class": "forest"},
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
        }
        for i, (lon, lat) in enumerate(pts)
    ]
    (folder / "exemplars.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    # Zones: a 4 x 3 grid of blocks over the middle, one across the seam, one smaller than a pixel.
    lon_min, lat_min, lon_max, lat_max = truth.notes["bbox_wgs84"]
    zones = []
    nx, ny = 4, 3
    cx0 = lon_min + 0.1 * (lon_max - lon_min)
    cy0 = lat_min + 0.1 * (lat_max - lat_min)
    dx = 0.8 * (lon_max - lon_min) / nx
    dy = 0.8 * (lat_max - lat_min) / ny
    zid = 1
    for j in range(ny):
        for i in range(nx):
            w, s = cx0 + i * dx, cy0 + j * dy
            ring = [[w, s], [w + dx * 0.9, s], [w + dx * 0.9, s + dy * 0.9], [w, s + dy * 0.9], [w, s]]
            zones.append(
                {
                    "type": "Feature",
                    "properties": {"zone_id": zid, "name": f"block {zid}"},
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            )
            zid += 1
    lat_mid = (lat_min + lat_max) / 2
    west, east = round(truth.lon0 - 0.01, 6), round(truth.lon0 + 0.01, 6)
    ring = [
        [west, lat_mid - 0.005],
        [east, lat_mid - 0.005],
        [east, lat_mid + 0.005],
        [west, lat_mid + 0.005],
        [west, lat_mid - 0.005],
    ]
    zones.append(
        {
            "type": "Feature",
            "properties": {"zone_id": zid, "name": "across the seam"},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }
    )
    zid += 1
    lon_t, lat_t = round(truth.lon0 + 0.03, 6), lat_mid + 0.003
    d = 0.00002  # about 2 m: smaller than a pixel
    ring = [[lon_t, lat_t], [lon_t + d, lat_t], [lon_t + d, lat_t + d], [lon_t, lat_t + d], [lon_t, lat_t]]
    zones.append(
        {
            "type": "Feature",
            "properties": {"zone_id": zid, "name": "smaller than a pixel"},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }
    )
    (folder / "zones.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": zones}))


def make_collection_from_raster(
    raster, folder, year: int, zone: str | None = None, block: int = 64, interleave: str = "band"
) -> Path:
    """Wrap a north-up 64-band int8 raster (e.g. the real Wisconsin sample) as a one-tile
    collection in the product's layout (bottom-up tile, overviews, CSV + GPKG index)."""
    import rasterio

    folder = Path(folder)
    with rasterio.open(raster) as ds:
        codes = ds.read()
        t = ds.transform
        crs = ds.crs.to_string()
        if t.e >= 0 or t.b or t.d:
            raise ValueError("expected a north-up raster")
        w, n = t.c, t.f
        e, s = w + t.a * ds.width, n + t.e * ds.height
    epsg = int(crs.split(":")[1])
    zone = zone or f"{epsg % 100}{'N' if epsg < 32700 else 'S'}"
    h, wd = codes.shape[1:]
    # Overviews need sizes divisible by the factors: crop to a multiple of 4 from the north-west.
    h4, w4 = h - h % 4, wd - wd % 4
    codes = codes[:, :h4, :w4]
    s = n - h4 * abs(t.e)
    e = w + w4 * t.a
    (folder / str(year) / zone).mkdir(parents=True, exist_ok=True)
    fname = _tile_name(f"raster|{year}|{raster}", 0, 0) + ".tiff"
    _write_tile(folder / str(year) / zone / fname, codes, crs, w, s, abs(t.a), block, interleave)
    lon_half = (epsg % 100 - 1) * 6 - 180
    rows = [
        {
            "fid": 1,
            "year": year,
            "crs": crs,
            "utm_zone": zone,
            "utm": (w, s, e, n),
            "wgs84": _footprint(crs, (w, s, e, n), (lon_half, lon_half + 6)),
            "path": f"{S3_BASE}/{year}/{zone}/{fname}",
        }
    ]
    _write_index(folder, rows)
    return folder / "aef_index.csv"


if __name__ == "__main__":  # pragma: no cover - convenience for the command line
    import sys

    out = sys.argv[1] if len(sys.argv) > 1 else "sample-collection"
    make_sample_collection(out)
    print(f"Wrote a sample collection to {out}")
