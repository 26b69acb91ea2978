"""Benchmark: the plugin's peak memory as the extent grows (E, 2E, 4E), the output aside.

The plugin core (bench_workloads.py's plugin variant) for change, similarity and zonal
statistics at E (a quarter of the 16N mosaic), 2E and 4E (all of it), and the I/O floor of
change at the same sizes: what the reader itself holds (the window being computed, the one
read ahead, the cache of partly used blocks, core/blocks.py), and a baseline process with the
same imports. The outputs are written block by block
to disk, so they are not in memory. Interleaved, RUNS times, each a fresh process.
Writes bench-results/memory.json and .md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_workloads as bw  # noqa: E402
import benchlib as bl  # noqa: E402

SIZES = ("E", "2E", "4E")
ABOVE_TARGET_MB = 350
FLAT_TARGET = 1.15


def main():
    facts = bl.collection()
    bw.ensure_zones(facts, SIZES)
    me = str(Path(bw.__file__).resolve())
    tmp = Path(facts["folder"]).parent / "out"
    tmp.mkdir(exist_ok=True)
    variants = {}
    for workload in ("change", "similarity", "zonal"):
        for size in SIZES:
            variants[f"{workload}@{size}"] = [
                bl.PY,
                me,
                "child",
                "plugin",
                workload,
                size,
                str(tmp / f"mem_{workload}_{size}"),
            ]
    variants["baseline"] = [bl.PY, me, "child", "baseline", "change", "E", str(tmp / "mem_baseline")]
    for size in SIZES:
        variants[f"floor@{size}"] = [bl.PY, me, "child", "floor", "change", size, str(tmp / f"mem_floor_{size}")]
    m = bl.measure(variants, env=bl.child_env())
    base = m["baseline"]["median_peak_rss_mb"]
    rows = []
    verdicts = {}
    for workload in ("change", "similarity", "zonal", "floor"):
        peaks = [m[f"{workload}@{s}"]["median_peak_rss_mb"] for s in SIZES]
        above = [p - base for p in peaks]
        flat = peaks[2] / peaks[0]
        ok = max(above) <= ABOVE_TARGET_MB and flat <= FLAT_TARGET
        verdicts[workload] = {"above_mb": above, "e_to_4e": round(flat, 3), "met": ok}
        rows.append(
            [
                "change, I/O floor (reader only)" if workload == "floor" else workload,
                *(f"{p:.0f} (+{a:.0f})" for p, a in zip(peaks, above)),
                f"**{flat:.2f}x**",
                "met" if ok else "MISSED",
            ]
        )
    m["verdicts"] = verdicts
    pixels = [int(bl.extent_px(facts, bw.SIZES[s])) for s in SIZES]
    md = [
        "# Peak memory as the extent grows (plugin core)",
        "",
        f"E, 2E, 4E = {', '.join(f'{p / 1e6:.2f}' for p in pixels)} M pixels (a quarter, half, all of the 16N mosaic); "
        f"median peak RSS of {bl.RUNS} fresh processes. The outputs go to disk block by block. In brackets: above "
        f"the baseline, a process with the same imports and the index opened ({base:.0f} MB), which stands for "
        f"QGIS with the plugin. Targets (issue 15): at most {ABOVE_TARGET_MB} MB above it at any extent, and "
        f"E -> 4E at most {FLAT_TARGET}x.",
        "",
        bl.table(["program", "peak RSS at E (MB)", "at 2E (MB)", "at 4E (MB)", "4E / E", "verdict"], rows),
    ]
    bl.write("memory", m, "\n".join(md))


if __name__ == "__main__":
    main()
