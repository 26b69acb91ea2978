"""Benchmark: change, similarity heatmap, top-k and zonal statistics on the big collection.

For each workload three programs, each run in a fresh process, interleaved, RUNS times:
- plugin: the core function the algorithm calls (change_map, similarity_map, zonal_statistics);
- script: what a user writes by hand: every tile of the year read whole into float64,
  de-quantized, rasterio.warp.reproject-ed onto the target grid, NumPy on the mosaic;
- floor: the plugin's reader reading the same blocks and computing nothing (the I/O floor),
  and floor_raw: rasterio reading only the tiles' windows under the extent on one thread,
  1024 rows at a time (the decode floor of issue 15: plain reads of all 64 bands, nothing else).

Extent E: a quarter of the 16N mosaic (EPSG:32616, every tile in the target CRS), 10 m.
Writes bench-results/workloads.json and .md. (Memory as the extent grows: bench_memory.py.)

    .venv/bin/python scripts/bench_workloads.py        (make bench runs it)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

CRS = "EPSG:32616"
E = (0.5, 0.5)  # fraction of the 16N mosaic's width and height
SIZES = {"E": E, "2E": (1.0, 0.5), "4E": (1.0, 1.0)}
ZONES = 10_000
TOP_K = 10

# ----------------------------------------------------------------------------- children


def _grid(extent):
    from earth_embeddings.core.grid import grid_for_extent

    return grid_for_extent(extent, CRS, CRS, 10.0)


def _exemplar_xy(extent):
    # A pixel centre a third of the way into the extent (on a pixel edge, the plugin and the
    # script could each take a different neighbour).
    x = extent[0] + (extent[2] - extent[0]) / 3
    y = extent[1] + (extent[3] - extent[1]) / 3
    return (x // 10 * 10 + 5, y // 10 * 10 + 5)


def _read_zones(path):
    from osgeo import ogr

    ds = ogr.Open(path)
    layer = ds.GetLayer(0)
    return [json.loads(f.GetGeometryRef().ExportToJson()) for f in layer]


def _write_float(path, arr, grid):
    import rasterio

    with rasterio.open(
        path, "w", driver="GTiff", width=grid.width, height=grid.height, count=1, dtype="float32",
        crs=grid.crs, transform=grid.transform, nodata=-9999.0, tiled=True, compress="deflate",
    ) as ds:  # fmt: skip
        ds.write(arr.astype("float32")[None])


def plugin(workload, facts, extent, out):
    from earth_embeddings.core.change import ChangeRequest, change_map
    from earth_embeddings.core.grid import GridSpec
    from earth_embeddings.core.similarity import Exemplar, SimilarityRequest, similarity_map
    from earth_embeddings.core.source import SourceSpec
    from earth_embeddings.core.zonal import ZonalRequest, zonal_statistics

    index = facts["index"]
    grid = GridSpec(extent, CRS, CRS)
    if workload == "change":
        s = change_map(ChangeRequest(out + ".tif", grid, index, 2017, 2024, min_area_m2=None))
        return {"pixels": s.grid.pixels, "valid": s.valid_pixels, "p50": s.p50, "p99": s.p99}
    if workload in ("similarity", "topk"):
        x, y = _exemplar_xy(extent)
        ex = Exemplar({"type": "Point", "coordinates": [x, y]}, CRS, "bench")
        top_k = TOP_K if workload == "topk" else 0
        r = similarity_map(SimilarityRequest([ex], out + ".tif", SourceSpec(index, 2024), grid, top_k=top_k))
        top = [[p.x, p.y, round(p.score, 5)] for p in (r.top or [])]
        return {"pixels": r.grid.pixels, "valid": r.valid_pixels, "top": top, "method": r.search_method}
    if workload == "zonal":
        zones = _read_zones(facts["zones"])
        z = zonal_statistics(ZonalRequest(SourceSpec(index, 2024), zones, CRS, CRS))
        _write_zonal_csv(out + ".csv", z.pixel_count, z.mean, z.std)
        return {"zones": len(zones), "pixels_read": int(z.pixels_read)}
    raise ValueError(workload)


def _write_zonal_csv(path, count, mean, std):
    import numpy as np

    bands = mean.shape[1]
    header = "zone,pixel_count," + ",".join(f"A{b:02d}_mean,A{b:02d}_std" for b in range(bands))
    both = np.empty((mean.shape[0], 2 * bands), dtype=np.float64)
    both[:, 0::2], both[:, 1::2] = mean, std
    rows = np.column_stack([np.arange(len(count)), count, both])
    np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt="%.6g")


def baseline(workload, facts, extent, out):
    """What every run holds before reading anything, standing for QGIS with the plugin: the
    same imports, GDAL and PROJ loaded, the index opened."""
    import rasterio

    from earth_embeddings.core.change import change_map  # noqa: F401
    from earth_embeddings.core.grid import transformer
    from earth_embeddings.core.similarity import similarity_map  # noqa: F401
    from earth_embeddings.core.source import open_years
    from earth_embeddings.core.zonal import zonal_statistics  # noqa: F401

    # GDAL (its drivers) and PROJ loaded and used once, as they are in QGIS before any run.
    transformer("EPSG:4326", CRS).transform(-89.0, 44.0)
    for src in open_years(facts["index"], (2024,)):
        with src:
            tiles = src.tiles_for(_grid(extent))
            with rasterio.open(tiles[0].gdal_path) as ds:
                ds.read(1, window=((0, 1), (0, 1)))
    return {"tiles": len(tiles)}


def floor(workload, facts, extent, out):
    """The plugin's reader over the same blocks, computing nothing."""
    from earth_embeddings.core.pipeline import stream, windows_for
    from earth_embeddings.core.progress import Progress
    from earth_embeddings.core.source import open_years

    grid = _grid(extent)
    years = (2017, 2024) if workload == "change" else (2024,)
    pixels = 0
    for src in open_years(facts["index"], years):
        with src, src.reader(grid) as reader:
            for _, (block,) in stream([reader], windows_for(grid, [reader]), Progress()):
                pixels += int(block.valid.sum())
    return {"pixels": grid.pixels, "valid_read": pixels}


def floor_raw(workload, facts, extent, out):
    """rasterio reads of just the tile windows under the extent, on one thread: all 64 bands,
    1024 rows at a time (the product's block height; GDAL's own block cache, 5 % of memory by
    default, keeps a block a window takes in part for the next)."""
    import rasterio
    from rasterio.windows import Window

    years = (2017, 2024) if workload == "change" else (2024,)
    read = 0
    for year in years:
        for path in sorted(Path(facts["folder"], str(year), "16N").glob("*.tiff")):
            with rasterio.open(path) as ds:
                t = ds.transform
                c0 = max(0, int((extent[0] - t.c) // t.a))
                c1 = min(ds.width, int(-(-(extent[2] - t.c) // t.a)))
                # Bottom-up tiles: row 0 is the south edge (t.e > 0).
                r0 = max(0, int((extent[1] - t.f) // t.e))
                r1 = min(ds.height, int(-(-(extent[3] - t.f) // t.e)))
                if c1 <= c0 or r1 <= r0:
                    continue
                for r in range(r0, r1, 1024):
                    data = ds.read(window=Window(c0, r, c1 - c0, min(1024, r1 - r)))
                    read += data.shape[1] * data.shape[2]
    return {"pixels_read": read}


def _load_year(folder, year, grid):
    """The hand-written mosaic: every overlapping tile read whole as float64, warped, merged."""
    import numpy as np
    import rasterio
    from rasterio.warp import Resampling, reproject, transform_bounds

    mosaic = np.full((64, grid.height, grid.width), np.nan)
    gw, gs, ge, gn = grid.bounds
    for path in sorted(Path(folder, str(year)).glob("*/*.tiff")):
        with rasterio.open(path) as src:
            # AEF tiles are bottom-up: rasterio's bounds then have bottom > top (a first version
            # of this script skipped nearly every tile for that).
            left, bottom, right, top = src.bounds
            w, s, e, n = transform_bounds(src.crs, grid.crs, left, min(bottom, top), right, max(bottom, top))
            if w >= ge or e <= gw or s >= gn or n <= gs:
                continue
            q = src.read().astype("float64")
            data = np.sign(q) * (q / 127.5) ** 2
            data[q == -128] = np.nan
            dest = np.full_like(mosaic, np.nan)
            reproject(data, dest, src_transform=src.transform, src_crs=src.crs, src_nodata=np.nan,
                      dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=np.nan,
                      resampling=Resampling.nearest)  # fmt: skip
            mosaic = np.where(np.isnan(mosaic), dest, mosaic)
    return mosaic


def script(workload, facts, extent, out):
    import numpy as np
    import rasterio

    grid = _grid(extent)
    folder = facts["folder"]
    if workload == "change":
        a = _load_year(folder, 2017, grid)
        b = _load_year(folder, 2024, grid)
        a /= np.linalg.norm(a, axis=0)
        b /= np.linalg.norm(b, axis=0)
        change = 1 - (a * b).sum(axis=0)
        _write_float(out + ".tif", np.where(np.isnan(change), -9999.0, change), grid)
        return {"pixels": grid.pixels, "valid": int(np.isfinite(change).sum())}
    if workload in ("similarity", "topk"):
        x, y = _exemplar_xy(extent)
        q = None
        for path in sorted(Path(folder, "2024", "16N").glob("*.tiff")):
            with rasterio.open(path) as src:
                left, bottom, right, top = src.bounds
                if not (left <= x < right and min(bottom, top) <= y < max(bottom, top)):
                    continue
                v = next(src.sample([(x, y)])).astype("float64")
                if (v != -128).all():
                    q = np.sign(v) * (v / 127.5) ** 2
                    break
        q /= np.linalg.norm(q)
        m = _load_year(folder, 2024, grid)
        m /= np.linalg.norm(m, axis=0)
        heat = np.tensordot(q, m, axes=1)
        _write_float(out + ".tif", np.where(np.isnan(heat), -9999.0, heat), grid)
        result = {"pixels": grid.pixels, "valid": int(np.isfinite(heat).sum())}
        if workload == "topk":
            # The user's top 10: the 10 best pixels (no minimum separation between them).
            flat = np.where(np.isnan(heat), -np.inf, heat).ravel()
            best = np.argpartition(-flat, TOP_K)[:TOP_K]
            best = best[np.argsort(-flat[best])]
            result["top"] = [[int(i // grid.width), int(i % grid.width), round(float(flat[i]), 5)] for i in best]
        return result
    if workload == "zonal":
        from rasterio.features import rasterize

        zones = _read_zones(facts["zones"])
        ids = rasterize(((g, i + 1) for i, g in enumerate(zones)), out_shape=(grid.height, grid.width),
                        transform=grid.transform, fill=0, dtype="int32")  # fmt: skip
        m = _load_year(folder, 2024, grid)
        ok = np.isfinite(m).all(axis=0) & (ids > 0)
        zid = ids[ok] - 1
        count = np.bincount(zid, minlength=len(zones))
        mean = np.empty((len(zones), 64))
        std = np.empty((len(zones), 64))
        for b in range(64):
            v = m[b][ok]
            s1 = np.bincount(zid, v, minlength=len(zones))
            s2 = np.bincount(zid, v * v, minlength=len(zones))
            with np.errstate(invalid="ignore", divide="ignore"):
                mean[:, b] = s1 / count
                std[:, b] = np.sqrt(np.maximum(s2 / count - mean[:, b] ** 2, 0))
        _write_zonal_csv(out + ".csv", count, mean, std)
        return {"zones": len(zones)}
    raise ValueError(workload)


def prepare_zones(facts, extent, path):
    """About ZONES jittered quadrilaterals tiling the extent (like census blocks), GeoPackage."""
    import numpy as np
    from osgeo import ogr, osr

    rng = np.random.default_rng(11)
    k = int(round(ZONES**0.5))
    w, s, e, n = extent
    xs, ys = np.meshgrid(np.linspace(w, e, k + 1), np.linspace(n, s, k + 1))
    jx, jy = 0.3 * (e - w) / k, 0.3 * (n - s) / k
    xs[1:-1, 1:-1] += rng.uniform(-jx, jx, (k - 1, k - 1))
    ys[1:-1, 1:-1] += rng.uniform(-jy, jy, (k - 1, k - 1))
    tmp = path + ".tmp.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(tmp)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32616)
    layer = ds.CreateLayer("zones", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("block_id", ogr.OFTInteger))
    layer.StartTransaction()
    for j in range(k):
        for i in range(k):
            ring = [(xs[j, i], ys[j, i]), (xs[j, i + 1], ys[j, i + 1]), (xs[j + 1, i + 1], ys[j + 1, i + 1])]
            ring += [(xs[j + 1, i], ys[j + 1, i]), ring[0]]
            f = ogr.Feature(layer.GetLayerDefn())
            f.SetField("block_id", j * k + i + 1)
            f.SetGeometry(
                ogr.CreateGeometryFromWkt("POLYGON((" + ", ".join(f"{x:.2f} {y:.2f}" for x, y in ring) + "))")
            )
            layer.CreateFeature(f)
    layer.CommitTransaction()
    ds = None
    Path(tmp).rename(path)


def compare(workload, facts, extent, out):
    """How far the script's output is from the plugin's (both written in the last round)."""
    import numpy as np
    import rasterio

    if workload == "zonal":
        a = np.loadtxt(out + "_plugin.csv", delimiter=",", skiprows=1)
        b = np.loadtxt(out + "_script.csv", delimiter=",", skiprows=1)
        both = np.isfinite(a[:, 2:]) & np.isfinite(b[:, 2:])
        return {"max_abs_diff": float(np.abs(a[:, 2:] - b[:, 2:])[both].max()),
                "pixel_count_equal": float(np.mean(a[:, 1] == b[:, 1]))}  # fmt: skip
    with rasterio.open(out + "_plugin.tif") as pa, rasterio.open(out + "_script.tif") as pb:
        a, b = pa.read(1), pb.read(1)
    va, vb = a != -9999, b != -9999
    both = va & vb
    diff = np.abs(a - b)[both]
    return {
        "plugin_valid": int(va.sum()),
        "script_valid": int(vb.sum()),
        "share_within_1e-3": round(float((diff <= 1e-3).mean()), 6),
        "max_abs_diff": float(diff.max()),
    }


def child(argv):
    what, workload, size, out = argv
    facts = bl.collection_facts()
    extent = bl.extent_16n(facts, *SIZES[size])
    facts["zones"] = str(Path(facts["folder"]).parent / f"zones_{size}.gpkg")
    t0 = time.perf_counter()
    fn = {
        "plugin": plugin,
        "script": script,
        "floor": floor,
        "floor_raw": floor_raw,
        "compare": compare,
        "baseline": baseline,
    }[what]
    payload = fn(workload, facts, extent, out)
    payload["inner_s"] = round(time.perf_counter() - t0, 3)
    bl.child_result(payload)


# ----------------------------------------------------------------------------- driver


def ensure_zones(facts, sizes):
    me = str(Path(__file__).resolve())
    for size in sizes:
        if not (Path(facts["folder"]).parent / f"zones_{size}.gpkg").exists():
            bl.run_measured([bl.PY, me, "prepare-zones", size], bl.child_env())


def main():
    facts = bl.collection()
    tmp = Path(facts["folder"]).parent / "out"
    tmp.mkdir(exist_ok=True)
    me = str(Path(__file__).resolve())
    env = bl.child_env()
    ensure_zones(facts, ("E",))
    results = {"collection": facts, "extent_E": bl.extent_16n(facts, *E)}
    md = [
        "# Workloads: plugin core vs hand-written script vs I/O floor",
        "",
        f"Collection: 2 years x {facts['pixels_per_year'] / 1e6:.1f} M pixels a year, "
        f"{len(facts['tiles']['15N']) + len(facts['tiles']['16N'])} tiles of {facts['params']['tile_px']} px a year "
        f"(int8, ZSTD, {facts['params'].get('block', 256)} px blocks, {facts['params'].get('interleave', 'pixel')} "
        "interleave, bottom-up, overviews: the real product's layout). "
        f"Extent E: a quarter of the 16N mosaic in EPSG:32616 at 10 m ({bl.extent_px(facts, E) / 1e6:.2f} M pixels). "
        f"Medians of {bl.RUNS} interleaved runs, each a fresh process; ratios taken run by run.",
        "",
    ]
    rows = []
    for workload in ("change", "similarity", "topk", "zonal"):
        print(f"== {workload}", flush=True)
        variants = {
            name: [
                bl.PY,
                me,
                "child",
                name.split("@")[0],
                workload,
                size,
                str(tmp / f"{workload}_{name.split('@')[0]}"),
            ]
            for name, size in (("plugin", "E"), ("script", "E"), ("floor", "E"), ("floor_raw", "E"))
            if name in VARIANTS
        }
        m = bl.measure(variants, env=env)
        with_script = "script" in VARIANTS
        if with_script:
            cmp_ = bl.run_measured([bl.PY, me, "child", "compare", workload, "E", str(tmp / workload)], env)
            m["script_vs_plugin"] = cmp_["payload"]
            m["speedup_vs_script"] = round(1 / bl.paired_ratio(m, "plugin", "script"), 2)
            m["rss_vs_script"] = round(m["plugin"]["median_peak_rss_mb"] / m["script"]["median_peak_rss_mb"], 3)
        m["vs_floor"] = bl.paired_ratio(m, "plugin", "floor")
        m["vs_floor_raw"] = bl.paired_ratio(m, "plugin", "floor_raw")
        m["vs_floor_cpu"] = bl.paired_ratio(m, "plugin", "floor", "cpu_s")
        results[workload] = m
        p, f, fr = (m[k] for k in ("plugin", "floor", "floor_raw"))
        s = m.get("script")
        mp = p["payload"].get("pixels") or 0
        rows.append(
            [
                workload,
                f"{p['median_wall_s']:.2f}",
                f"{s['median_wall_s']:.2f}" if s else "not run",
                f"{f['median_wall_s']:.2f}",
                f"{fr['median_wall_s']:.2f}",
                f"**{m['speedup_vs_script']:.1f}x** {'met' if m['speedup_vs_script'] >= 3 else 'MISSED'}" if s else "",
                f"**{m['vs_floor_raw']:.2f}x** {'met' if m['vs_floor_raw'] <= FLOOR_TARGET[workload] else 'MISSED'} "
                f"(target <= {FLOOR_TARGET[workload]:g}x; CPU {m['vs_floor_cpu']:.2f}x of the reader alone; "
                f"reader alone {m['vs_floor']:.2f}x)",
                f"{p['median_peak_rss_mb']:.0f} / {s['median_peak_rss_mb']:.0f}"
                f" ({m['rss_vs_script']:.2f}) {'met' if m['rss_vs_script'] <= 0.25 else 'MISSED'}"
                if s
                else f"{p['median_peak_rss_mb']:.0f}",
                f"{mp / p['median_wall_s'] / 1e6:.1f}" if mp else "",
            ]
        )
        bl.write("workloads", results, "\n".join(md + [bl.table(HEADER, rows)] + notes(results)))


# BENCH_WORKLOAD_VARIANTS=plugin,floor,floor_raw leaves out the hand-written script (minutes a run).
VARIANTS = os.environ.get("BENCH_WORKLOAD_VARIANTS", "plugin,script,floor,floor_raw").split(",")

# Issue 15's targets against the one-thread rasterio decode floor of the same windows.
FLOOR_TARGET = {"change": 1.0, "similarity": 1.0, "topk": 1.5, "zonal": 1.5}

HEADER = [
    "workload",
    "plugin (s)",
    "script (s)",
    "I/O floor (s)",
    "raw read (s)",
    "speed-up vs script (target 3x)",
    "plugin / one-thread decode floor (raw read)",
    "peak RSS plugin / script MB (target <= 0.25)",
    "plugin Mpx/s",
]


def notes(results):
    out = [""]
    for w in ("change", "similarity", "topk", "zonal"):
        if w in results and "script_vs_plugin" in results[w]:
            out.append(f"- {w}: script vs plugin outputs: {json.dumps(results[w]['script_vs_plugin'])}")
    out += [
        "",
        "plugin = the core function the algorithm calls, output written to GeoTIFF (change: without the "
        "areas polygons; top-k: 10 places at least 100 m apart). script = whole tiles read as float64, "
        "de-quantized, rasterio.warp.reproject (nearest) onto the grid, merged, NumPy (top-k: argpartition "
        "of the heatmap, no minimum separation). I/O floor = the plugin's reader over the same blocks, "
        "computing nothing; raw read = rasterio reading only the tiles' windows under the extent.",
    ]
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "prepare-zones":
        facts = bl.collection_facts()
        size = sys.argv[2]
        prepare_zones(
            facts,
            bl.extent_16n(facts, *SIZES[size]),
            str(Path(facts["folder"]).parent / f"zones_{size}.gpkg"),
        )
    else:
        main()
