"""Benchmark: the change map read over HTTP, with and without 30 ms added to every request.

The big collection is served by the tests' loopback server (tests/httpserver.py, real HTTP
range requests on 127.0.0.1) twice: as it is, and answering each request after LATENCY_S (an
object store across the internet). The plugin core's change map for extent E runs against
each, interleaved, RUNS times, each run a fresh process with an empty cache; beside them the
same run from local files. Per run the servers count bytes per file and every (file, range)
asked for, so the report says how many bytes travelled against the compressed size of the
blocks the extent needs (from the TIFFs' own block-size tags) and whether any range was
fetched twice.
Writes bench-results/network.json and .md.

    .venv/bin/python scripts/bench_network.py        (make bench runs it)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import bench_workloads as bw  # noqa: E402
import benchlib as bl  # noqa: E402

LATENCY_S = 0.03
YEARS = (2017, 2024)


def child(argv):
    """Change map of extent E from ``index`` (a URL or a local path)."""
    import time

    from earth_embeddings.core.blocks import COUNTERS
    from earth_embeddings.core.change import ChangeRequest, change_map
    from earth_embeddings.core.grid import GridSpec

    index, out = argv
    facts = bl.collection_facts()
    extent = bl.extent_16n(facts, *bw.E)
    t0 = time.perf_counter()
    s = change_map(ChangeRequest(out, GridSpec(extent, bw.CRS, bw.CRS), index, *YEARS, min_area_m2=None))
    bl.child_result(
        {
            "inner_s": round(time.perf_counter() - t0, 3),
            "valid": s.valid_pixels,
            "decoded_blocks": len(COUNTERS.decoded),
            "decodes": sum(COUNTERS.decoded.values()),
            "decoded_compressed_bytes": _compressed_bytes(facts, COUNTERS.decoded),
        }
    )


def _compressed_bytes(facts, decoded) -> int:
    """The compressed size (the TIFFs' byte-count tags) of the blocks the run decoded."""
    from earth_embeddings.core.tiff import parse

    layouts = {}
    total = 0
    for label, level, band, brow, bcol in decoded:
        rel = label.split("/annual/")[-1] if "/annual/" in label else "/".join(label.split("/")[-3:])
        path = Path(facts["folder"]) / rel
        if path not in layouts:
            data = path.read_bytes()
            layouts[path] = parse(lambda off, n, data=data: data[off : off + n], len(data))
        total += layouts[path].levels[level].byte_range(max(band, 0), brow, bcol)[1]
    return total


def needed_bytes(facts) -> tuple[int, int]:
    """(compressed bytes, blocks) of the full-resolution blocks under extent E in both years."""
    import rasterio

    from earth_embeddings.core.tiff import parse

    w, s, e, n = bl.extent_16n(facts, *bw.E)
    total = blocks = 0
    for year in YEARS:
        for path in sorted(Path(facts["folder"], str(year), "16N").glob("*.tiff")):
            with rasterio.open(path) as ds:
                t, width, height = ds.transform, ds.width, ds.height
            c0, c1 = max(0, int((w - t.c) // t.a)), min(width, int(-(-(e - t.c) // t.a)))
            rows = sorted(((s - t.f) / t.e, (n - t.f) / t.e))
            r0, r1 = max(0, int(rows[0] // 1)), min(height, int(-(-rows[1] // 1)))
            if c1 <= c0 or r1 <= r0:
                continue
            with open(path, "rb") as f:
                lv = parse(lambda off, k, f=f: (f.seek(off), f.read(k))[1], path.stat().st_size).levels[0]
            total += lv.bytes_under((r0, r1), (c0, c1))
            per_band = ((r1 - 1) // lv.block_height - r0 // lv.block_height + 1) * (
                (c1 - 1) // lv.block_width - c0 // lv.block_width + 1
            )
            blocks += per_band * lv.bands
    return total, blocks


def main():
    from httpserver import RangeServer

    facts = bl.collection()
    me = str(Path(__file__).resolve())
    root = Path(facts["folder"])
    tmp = root.parent / "out"
    tmp.mkdir(exist_ok=True)
    need, need_blocks = needed_bytes(facts)
    env = bl.child_env()
    with RangeServer(root) as fast, RangeServer(root, stall_s=LATENCY_S) as slow:
        stats = {"no latency": fast.stats, f"{LATENCY_S * 1000:.0f} ms": slow.stats}
        per_run: dict[str, list[dict]] = {k: [] for k in stats}
        variants = {
            "local": [bl.PY, me, "child", facts["index"], str(tmp / "net_local.tif")],
            "no latency": [bl.PY, me, "child", fast.url + "aef_index.csv", str(tmp / "net_fast.tif")],
            f"{LATENCY_S * 1000:.0f} ms": [bl.PY, me, "child", slow.url + "aef_index.csv", str(tmp / "net_slow.tif")],
        }

        def log(message, flush=True):
            # After each remote run: what its server saw, then a clean count for the next run.
            print(message, flush=flush)
            for name, st in stats.items():
                if f" {name}:" in message:
                    with st.lock:
                        tiles = {p: b for p, b in st.bytes_by_path.items() if p.endswith(".tiff")}
                        fetches = [f for f in st.fetches if f[0].endswith(".tiff")]
                        per_run[name].append(
                            {
                                "tile_bytes": sum(tiles.values()),
                                "requests": len(fetches),
                                "repeated_ranges": len(fetches) - len(set(fetches)),
                            }
                        )
                    st.reset()

        with tempfile.TemporaryDirectory() as cache:
            env["EARTH_EMBEDDINGS_CACHE"] = cache
            m = bl.measure(variants, env=env, log=log)
    slow_name = f"{LATENCY_S * 1000:.0f} ms"
    ratio = bl.paired_ratio(m, slow_name, "no latency")
    vs_local = bl.paired_ratio(m, "no latency", "local")
    rows = []
    for name in variants:
        runs = per_run.get(name)
        b = runs[-1] if runs else None
        rows.append(
            [
                name,
                f"{m[name]['median_wall_s']:.2f}",
                f"{m[name]['median_peak_rss_mb']:.0f}",
                f"{b['tile_bytes'] / 1e6:.1f}" if b else "",
                f"{b['tile_bytes'] / m[name]['payload']['decoded_compressed_bytes']:.3f}" if b else "",
                str(b["requests"]) if b else "",
                str(b["repeated_ranges"]) if b else "",
                str(m[name]["payload"]["decodes"]),
            ]
        )
    mosaic_need = m["local"]["payload"]["decoded_compressed_bytes"]  # the blocks the mosaic reads
    worst_bytes = max(r["tile_bytes"] for runs in per_run.values() for r in runs) / mosaic_need
    repeated = sum(r["repeated_ranges"] for runs in per_run.values() for r in runs)
    result = {
        "needed_bytes": mosaic_need,
        "blocks_under_extent_bytes": need,
        "needed_blocks": need_blocks,
        "latency_s": LATENCY_S,
        "latency_ratio": ratio,
        "remote_vs_local": vs_local,
        "bytes_ratio_worst": round(worst_bytes, 4),
        "repeated_ranges": repeated,
        "per_run": per_run,
        "runs": m,
    }
    md = [
        f"# Reading over HTTP: {LATENCY_S * 1000:.0f} ms per request, bytes, requests",
        "",
        f"Change map {YEARS[0]}-{YEARS[1]} of extent E ({bl.extent_px(facts, bw.E) / 1e6:.2f} M pixels, EPSG:32616) "
        "from the loopback server of tests/httpserver.py, with and without a pause before every answer, and from "
        f"local files. The mosaic reads {m['local']['payload']['decoded_blocks']} compressed blocks "
        f"({mosaic_need / 1e6:.1f} MB by the TIFFs' byte-count tags) of the two years; every tile's blocks under "
        f"the extent, overlaps included, are {need_blocks} ({need / 1e6:.1f} MB). "
        f"Medians of {bl.RUNS} interleaved runs, fresh processes, empty caches.",
        "",
        bl.table(
            [
                "read from",
                "wall (s)",
                "peak RSS (MB)",
                "tile MB fetched",
                "fetched / compressed size of the blocks read",
                "range requests",
                "ranges asked twice",
                "blocks decoded",
            ],
            rows,
        ),
        "",
        f"- {LATENCY_S * 1000:.0f} ms per request / no latency: **{ratio:.2f}x** "
        f"({'met' if ratio <= 1.5 else 'MISSED'}: target <= 1.5x). Remote without latency / local: {vs_local:.2f}x.",
        f"- Bytes fetched / compressed bytes needed, worst run: **{worst_bytes:.3f}** "
        f"({'met' if worst_bytes <= 1.1 else 'MISSED'}: target <= 1.1); ranges asked twice: {repeated}.",
    ]
    bl.write("network", result, "\n".join(md))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2:])
    else:
        main()
