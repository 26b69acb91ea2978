"""Benchmark: embeddings:zonalstats against what a user does today in QGIS.

Today: QGIS's ``native:zonalstatisticsfb`` (mean and standard deviation) run once per band,
64 runs chained so that the fields accumulate on one layer. The plugin: one run of
``embeddings:zonalstats`` for all 64 bands.

Data (generated, deterministic): a 64-band AEF-like raster (int8 codes with the AEF
quantisation, and the same values de-quantized as float32, which is what the native
algorithm needs to give embedding units), 10 m in EPSG:32616, and a tessellation of
jittered quadrilaterals (like census blocks) over it. Outputs go to memory layers for both,
so neither pays for a file format.

The plugin's own comparison with a hand-written script and the I/O floor, on the big
collection, is in bench_workloads.py; this one is the comparison with QGIS itself, in one
QGIS process (timed per run, inside it).

Usage: .venv/bin/python scripts/bench_zonal.py [--zones 10000] [--size-px 1000]
       [--native-bands 64] [--repeats 3]
Writes bench-results/zonal.json and bench-results/zonal.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

REPO = bl.REPO
RESULTS = bl.RESULTS
CRS = "EPSG:32616"
X0, Y1, RES = 500000.0, 4900000.0, 10.0


# ----------------------------------------------------------------------------- data


def make_rasters(folder: Path, size: int, seed: int = 7) -> tuple[str, str]:
    """A 64-band int8 raster with AEF codes and its de-quantized float32 twin."""
    import rasterio
    from rasterio.transform import from_origin

    from earth_embeddings.core.quant import LUT, quantize

    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(6, 64))
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    seeds = rng.uniform(0, size, size=(60, 2))
    seed_class = rng.integers(0, 6, 60)
    common = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=64,
        crs=CRS,
        transform=from_origin(X0, Y1, RES, RES),
        tiled=True,
        blockxsize=256,
        blockysize=256,
    )
    int8_path = str(folder / "emb_int8.tif")
    float_path = str(folder / "emb_float32.tif")
    with (
        rasterio.open(int8_path, "w", dtype="int8", nodata=-128, **common) as q_ds,
        rasterio.open(float_path, "w", dtype="float32", nodata=float("nan"), **common) as f_ds,
    ):
        for b in range(64):
            q_ds.set_band_description(b + 1, f"A{b:02d}")
            f_ds.set_band_description(b + 1, f"A{b:02d}")
        for r in range(0, size, 256):
            h = min(256, size - r)
            rows, cols = np.mgrid[r : r + h, 0:size]
            d = (rows[..., None] - seeds[:, 1]) ** 2 + (cols[..., None] - seeds[:, 0]) ** 2
            cls = seed_class[np.argmin(d, axis=2)]
            v = protos[cls] + rng.normal(0, 0.2 / 8, size=(h, size, 64))
            v /= np.linalg.norm(v, axis=2, keepdims=True)
            codes = quantize(np.moveaxis(v, 2, 0))
            window = rasterio.windows.Window(0, r, size, h)
            q_ds.write(codes, window=window)
            f_ds.write(LUT[codes.view(np.uint8)], window=window)
    return int8_path, float_path


def make_zones(folder: Path, size: int, n_zones: int, seed: int = 11) -> str:
    """A GeoPackage of about ``n_zones`` jittered quadrilaterals tiling the raster."""
    from osgeo import ogr, osr

    rng = np.random.default_rng(seed)
    k = int(round(n_zones**0.5))
    step = size * RES / k
    gx = X0 + np.arange(k + 1) * step
    gy = Y1 - np.arange(k + 1) * step
    xs, ys = np.meshgrid(gx, gy)
    jitter = 0.3 * step
    xs[1:-1, 1:-1] += rng.uniform(-jitter, jitter, (k - 1, k - 1))
    ys[1:-1, 1:-1] += rng.uniform(-jitter, jitter, (k - 1, k - 1))
    path = str(folder / "zones.gpkg")
    drv = ogr.GetDriverByName("GPKG")
    ds = drv.CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(int(CRS.split(":")[1]))
    layer = ds.CreateLayer("zones", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("block_id", ogr.OFTInteger))
    layer.StartTransaction()
    zid = 0
    for j in range(k):
        for i in range(k):
            ring = [(xs[j, i], ys[j, i]), (xs[j, i + 1], ys[j, i + 1]), (xs[j + 1, i + 1], ys[j + 1, i + 1])]
            ring += [(xs[j + 1, i], ys[j + 1, i]), (xs[j, i], ys[j, i])]
            wkt = "POLYGON((" + ", ".join(f"{x:.3f} {y:.3f}" for x, y in ring) + "))"
            f = ogr.Feature(layer.GetLayerDefn())
            zid += 1
            f.SetField("block_id", zid)
            f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
            layer.CreateFeature(f)
    layer.CommitTransaction()
    ds = None
    return path


# ----------------------------------------------------------------------------- QGIS


def start_qgis():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    plugins = os.path.join(QgsApplication.pkgDataPath(), "python", "plugins")
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != str(REPO)]
    sys.path.append(plugins)
    from processing.core.Processing import Processing

    Processing.initialize()
    import earth_embeddings

    plugin = earth_embeddings.classFactory(None)
    plugin.initProcessing()
    return app, plugin


_CONTEXTS = []  # processing.run returns layers the context owns: keep the contexts alive


def run(alg, params):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    import processing

    context = QgsProcessingContext()
    _CONTEXTS.append(context)
    return processing.run(alg, params, context=context, feedback=QgsProcessingFeedback()), context


def time_plugin(raster: str, zones: str, repeats: int):
    times, layer = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result, _ = run(
            "embeddings:zonalstats",
            {"INPUT": raster, "ZONES": zones, "PCA_COMPONENTS": 0, "OUTPUT": "memory:"},
        )
        times.append(time.perf_counter() - t0)
        layer = result["OUTPUT"]
    return times, layer


def time_native(raster: str, zones: str, bands: int):
    """Chained runs, band 1..bands; returns per-band seconds and the final layer."""
    times = []
    current = zones
    for b in range(1, bands + 1):
        t0 = time.perf_counter()
        result, _ = run(
            "native:zonalstatisticsfb",
            {
                "INPUT": current,
                "INPUT_RASTER": raster,
                "RASTER_BAND": b,
                "COLUMN_PREFIX": f"A{b - 1:02d}_",
                "STATISTICS": [2, 4],  # mean, st dev
                "OUTPUT": "memory:",
            },
        )
        times.append(time.perf_counter() - t0)
        current = result["OUTPUT"]
    return times, current


def machine() -> dict:
    """benchlib's record of the machine, plus the QGIS this run measured."""
    from qgis.core import Qgis

    return {**bl.machine(), "qgis": Qgis.QGIS_VERSION}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zones", type=int, default=10_000)
    ap.add_argument("--size-px", type=int, default=1000)
    ap.add_argument("--native-bands", type=int, default=64, help="bands to time natively (scaled to 64)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    app, plugin = start_qgis()
    mach = machine()
    with tempfile.TemporaryDirectory(prefix="ee-bench-zonal-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        int8_path, float_path = make_rasters(folder, args.size_px)
        zones = make_zones(folder, args.size_px, args.zones)
        print(f"data: {args.size_px} x {args.size_px} px x 64 bands, zones in {time.perf_counter() - t0:.1f} s")

        plugin_int8, layer = time_plugin(int8_path, zones, args.repeats)
        print(f"plugin (int8 raster): {[round(t, 2) for t in plugin_int8]} s")
        plugin_float, layer_f = time_plugin(float_path, zones, args.repeats)
        print(f"plugin (float32 raster): {[round(t, 2) for t in plugin_float]} s")
        native, native_layer = time_native(float_path, zones, args.native_bands)
        print(f"native, {args.native_bands} band(s): {sum(native):.1f} s")

        # Agreement on the bands timed natively (same pixel-centre rule, population std).
        ours = {f["block_id"]: f for f in layer_f.getFeatures()}
        theirs = {f["block_id"]: f for f in native_layer.getFeatures()}
        diffs = []
        for bid, f in theirs.items():
            g = ours[bid]
            for b in range(args.native_bands):
                for stat, ours_name in (("mean", f"A{b:02d}_mean"), ("stdev", f"A{b:02d}_std")):
                    diffs.append(abs(float(f[f"A{b:02d}_{stat}"]) - float(g[ours_name])))
        n_zones = layer.featureCount()
        pixel_counts = [f["pixel_count"] for f in layer.getFeatures()]
        # Release the layers (and their open rasters) before the folder goes.
        del layer, layer_f, native_layer, ours, theirs
        _CONTEXTS.clear()

    native_total = sum(native) * 64 / args.native_bands
    plugin_median = statistics.median(plugin_int8)
    plugin_float_median = statistics.median(plugin_float)
    result = {
        "benchmark": "zonal statistics, 64 bands, mean + std per polygon",
        "zones": n_zones,
        "raster_px": [args.size_px, args.size_px],
        "pixels_per_zone_median": statistics.median(pixel_counts),
        "plugin_int8_s": plugin_int8,
        "plugin_int8_median_s": plugin_median,
        "plugin_float32_s": plugin_float,
        "plugin_float32_median_s": plugin_float_median,
        "native_bands_timed": args.native_bands,
        "native_per_band_s": native,
        "native_per_band_median_s": statistics.median(native),
        "native_64_bands_s": native_total,
        "native_scaled": args.native_bands != 64,
        "speedup_int8": native_total / plugin_median,
        "speedup_float32": native_total / plugin_float_median,
        "max_abs_difference_vs_native": max(diffs),
        "machine": mach,
    }
    scaled = (
        f" (timed on {args.native_bands} band(s), scaled to 64: the later chained runs carry more fields, "
        "so this underestimates the native total)"
        if result["native_scaled"]
        else ""
    )
    md = f"""# Zonal statistics: embeddings:zonalstats vs QGIS's native:zonalstatisticsfb

{n_zones:,} jittered quadrilaterals (median {result["pixels_per_zone_median"]:.0f} pixels each) over a
{args.size_px} x {args.size_px} px, 64-band, 10 m raster; mean and standard deviation of every band per polygon.

| run | seconds |
|---|---|
| embeddings:zonalstats, int8 AEF raster (median of {args.repeats}) | {plugin_median:.2f} |
| embeddings:zonalstats, float32 raster (median of {args.repeats}) | {plugin_float_median:.2f} |
| native:zonalstatisticsfb x 64 bands, float32 raster{scaled} | {native_total:.1f} |
| native, median per band | {result["native_per_band_median_s"]:.2f} |

The native runs read the float32 twin: QGIS on GDAL < 3.7 reads int8 as unsigned bytes, so native
statistics of the int8 file would be of codes, not embedding values. Native: one timed run per band
(64 runs, chained); the plugin: median of {args.repeats} runs.

Speed-up: **{result["speedup_int8"]:.0f}x** (int8 input), {result["speedup_float32"]:.0f}x (same float32 input);
target 10x: {"met" if result["speedup_float32"] >= 10 else "MISSED"}.
Largest difference from the native results over {args.native_bands} band(s): {result["max_abs_difference_vs_native"]:.2e}.

Machine: {mach["cpu"]}, {mach["cores"]} cores (shared; load average at start {mach["load_average_at_start"][0]:.2f}),
QGIS {mach["qgis"]}, GDAL {mach["gdal"]}, NumPy {mach["numpy"]}.
"""
    bl.write("zonal", result, md)
    plugin.unload()
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
