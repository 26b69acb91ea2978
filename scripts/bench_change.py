"""Benchmark embeddings:change's core: speed, and peak memory against the extent's size.

Generates a sample collection (tiles of TILE_PX pixels), then maps the change 2017 -> 2024
over a quarter and over the whole of its 16N half, each in a fresh process, and records
seconds, pixels per second and peak RSS. The blocks stream, so the peak levels off after the
first rows of blocks (the allocator keeps freed block buffers; mapping the same extent
four times in one process peaks within 3 % of once) instead of growing with the extent.
Writes bench-results/change.json.

    .venv/bin/python scripts/bench_change.py [TILE_PX]   (default 512; make bench runs it)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
from earth_embeddings.core.change import change_map
def peak_rss_mb():
    # VmHWM belongs to this process image (ru_maxrss would inherit the parent's peak at fork).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
index, out, w, s, e, n = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:7])
t0 = time.perf_counter()
summary = change_map(out, source=index, year_a=2017, year_b=2024, extent=(w, s, e, n),
                     extent_crs="EPSG:4326", target_crs="EPSG:32616")
seconds = time.perf_counter() - t0
print(json.dumps({"pixels": summary.grid.pixels, "grid": f"{summary.grid.width} x {summary.grid.height}",
                  "valid_pixels": summary.valid_pixels, "seconds": round(seconds, 3),
                  "megapixels_per_second": round(summary.grid.pixels / seconds / 1e6, 3),
                  "peak_rss_mb": peak_rss_mb(),
                  "p50_p90_p99": [round(summary.p50, 4), round(summary.p90, 4), round(summary.p99, 4)],
                  "areas": len(summary.areas)}))
"""


def main(tile_px: int = 512) -> dict:
    from earth_embeddings.core.sample import make_sample_collection

    with tempfile.TemporaryDirectory(prefix="ee-bench-change-") as tmp:
        folder = Path(tmp) / "annual"
        t0 = time.perf_counter()
        truth = make_sample_collection(folder, tile_px=tile_px)
        gen_s = time.perf_counter() - t0
        _, s, e, n = truth.notes["bbox_wgs84"]
        # The 16N half: every pixel from tiles in the target CRS (the common case).
        full = (-90.0, s, e, n)
        quarter = (-90.0, s, -90.0 + (e + 90.0) / 2, (s + n) / 2)
        runs = {}
        for name, ext in (("quarter", quarter), ("full", full)):
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(folder / "aef_index.csv"), str(Path(tmp) / f"{name}.tif")]
                + [repr(v) for v in ext],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {"tile_px": tile_px, "sample_generation_seconds": round(gen_s, 1), **runs}
    result["peak_rss_growth_mb_full_vs_quarter"] = round(
        runs["full"]["peak_rss_mb"] - runs["quarter"]["peak_rss_mb"], 1
    )
    result["output_growth_mb_full_vs_quarter"] = round(
        (runs["full"]["pixels"] - runs["quarter"]["pixels"]) * 4 / 1e6, 1
    )
    out = REPO / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "change.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 512)
