"""Benchmark: the algorithms through qgis_process, against their core functions, at extent E.

The plugin is installed (make install) into a throwaway QGIS profile; each run is a fresh
``qgis_process.bin run`` (QGIS start-up included), interleaved with the core function in a
fresh Python process (bench_workloads.py's plugin variant) and with a bare start-up
(``qgis_process.bin help`` of the algorithm), RUNS times.
Writes bench-results/qgis_process.json and .md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_workloads as bw  # noqa: E402
import benchlib as bl  # noqa: E402

QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process")


def main():
    facts = bl.collection()
    extent = bl.extent_16n(facts, *bw.E)
    root = Path(tempfile.mkdtemp(prefix="ee-bench-qgis-"))
    try:
        profile = root / "profile"
        subprocess.run(
            ["make", "-s", "-C", str(bl.REPO), "install", f"PROFILE_DIR={profile / 'profiles' / 'default'}"],
            check=True,
            capture_output=True,
        )
        env = bl.child_env()
        env.update({"QGIS_CUSTOM_CONFIG_PATH": str(profile)})
        env.pop("PYTHONPATH", None)
        x, y = bw._exemplar_xy(extent)
        exemplar = root / "exemplar.geojson"
        exemplar.write_text(
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32616"}},
                    "features": [
                        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [x, y]}}
                    ],
                }
            )
        )
        ext = f"{extent[0]},{extent[2]},{extent[1]},{extent[3]} [EPSG:32616]"
        common = [f"SOURCE={facts['index']}", f"EXTENT={ext}", "TARGET_CRS=EPSG:32616", "RESOLUTION=10"]
        zones = str(Path(facts["folder"]).parent / "zones_E.gpkg")
        algs = {
            "change": ["embeddings:change", *common, "YEAR_A=2017", "YEAR_B=2024", f"OUTPUT={root / 'change.tif'}"],
            "similarity": [
                "embeddings:similarity",
                *common,
                "YEAR=2024",
                f"EXEMPLARS={exemplar}",
                "TOP_K=0",
                f"OUTPUT={root / 'similarity.tif'}",
            ],  # fmt: skip
            "zonal": [
                "embeddings:zonalstats",
                f"SOURCE={facts['index']}",
                "YEAR=2024",
                f"ZONES={zones}",
                f"OUTPUT={root / 'zonal.gpkg'}",
            ],  # fmt: skip
        }
        me = str(Path(bw.__file__).resolve())
        rows = []
        result = {}
        for name, (alg, *params) in algs.items():
            print(f"== {name}", flush=True)
            variants = {
                "qgis_process": [QGIS_PROCESS, "run", alg, "--", *params],
                "core": [bl.PY, me, "child", "plugin", name, "E", str(root / f"{name}_core")],
                "startup": [QGIS_PROCESS, "help", alg],
            }
            m = bl.measure(variants, env=env)
            result[name] = m
            q, c, s = m["qgis_process"], m["core"], m["startup"]
            rows.append(
                [
                    alg,
                    f"{q['median_wall_s']:.2f}",
                    f"{c['median_wall_s']:.2f}",
                    f"{s['median_wall_s']:.2f}",
                    f"{bl.paired_ratio(m, 'qgis_process', 'core'):.2f}",
                    f"{q['median_peak_rss_mb']:.0f} / {c['median_peak_rss_mb']:.0f}",
                ]
            )
        md = [
            "# The algorithms through qgis_process (extent E)",
            "",
            f"QGIS {subprocess.run([QGIS_PROCESS, '--version'], capture_output=True, text=True, env=env).stdout.split()[1:2]}; "
            "qgis_process runs each algorithm with its defaults (change: also its areas layer), the core run writes "
            "the raster only (zonal: a CSV); "
            f"median of {bl.RUNS} interleaved runs.",
            "",
            bl.table(
                [
                    "algorithm",
                    "qgis_process (s)",
                    "core function (s)",
                    "QGIS start-up alone (s)",
                    "qgis_process / core (paired)",
                    "peak RSS qgis_process / core (MB)",
                ],  # fmt: skip
                rows,
            ),
        ]
        bl.write("qgis_process", result, "\n".join(md))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    main()
