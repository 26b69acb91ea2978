"""Shared machinery of the benchmarks (scripts/bench_*.py; ``make bench`` runs them all).

- ``collection()``: the big generated collection (two years, two UTM zones, >= 20 M pixels a
  year) built once into build/bench-data/<key>/, keyed on its parameters and on the generator's
  source, in a child process so that this driver stays small.
- ``measure(variants, runs)``: every variant is a command run in a fresh process; the rounds
  interleave the variants (A B C, A B C, ...) so that ratios can be taken round by round,
  which holds when the shared machine's speed drifts. Wall time from the driver's clock,
  CPU time and peak RSS from the kernel's accounting of the finished child (``os.wait4``).
  The driver imports no NumPy: a child's ru_maxrss starts from its parent's size at fork.
- ``write(name, result, markdown)``: bench-results/<name>.json and .md; ``summary()`` gathers
  every .md into bench-results/summary.md with the machine.

Run as ``python scripts/benchlib.py collection`` to build (or find) the collection,
``python scripts/benchlib.py summary`` to write the summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench-results"
DATA = REPO / "build" / "bench-data"
PY = sys.executable
SCRIPTS = Path(__file__).resolve().parent

# The real product's internal layout (../shared/AEF_FORMAT.md): 2 zones x 2 x 2 tiles of
# 2048 x 2048 px (less a 6 px overlap), 1024 px internal tiles, the 64 bands stored separately
# (one compressed block = one band), ZSTD, bottom-up, overviews at 2, 4 and 8: 33.5 M pixels a year.
COLLECTION = {
    "years": [2017, 2024],
    "tile_px": 2048,
    "tiles_per_zone": [2, 2],
    "block": 1024,
    "interleave": "band",
    "seed": 42,
}
RUNS = int(os.environ.get("BENCH_RUNS", "3"))

# ----------------------------------------------------------------------------- data


def _key() -> str:
    gen = (REPO / "scripts" / "sample.py").read_bytes()
    text = json.dumps(COLLECTION, sort_keys=True).encode() + hashlib.sha1(gen).hexdigest().encode()
    return hashlib.sha1(text).hexdigest()[:12]


def collection() -> dict:
    """The generated collection's folder and facts (built on first use, then cached)."""
    folder = DATA / _key()
    facts_path = folder / "facts.json"
    if not facts_path.exists():
        print(f"building the benchmark collection in {folder} (once; several minutes)", flush=True)
        t0 = time.perf_counter()
        res = run_measured([PY, str(SCRIPTS / "benchlib.py"), "build-collection", str(folder)], child_env())
        if res["returncode"] != 0:
            raise SystemExit(f"collection build failed:\n{res['stderr'][-3000:]}")
        facts = json.loads(facts_path.read_text())
        facts["build_seconds"] = round(time.perf_counter() - t0, 1)
        facts["build_peak_rss_mb"] = res["peak_rss_mb"]
        facts_path.write_text(json.dumps(facts, indent=1))
    return json.loads(facts_path.read_text())


def collection_facts() -> dict:
    """The collection's facts in a child process (the driver built it already)."""
    return json.loads((DATA / _key() / "facts.json").read_text())


def _build_collection(folder: Path) -> None:
    import shutil

    from earth_embeddings.scripts.sample import make_sample_collection

    if folder.exists():
        shutil.rmtree(folder)
    annual = folder / "annual"
    truth = make_sample_collection(
        annual,
        years=tuple(COLLECTION["years"]),
        tile_px=COLLECTION["tile_px"],
        tiles_per_zone=tuple(COLLECTION["tiles_per_zone"]),
        block=COLLECTION["block"],
        seed=COLLECTION["seed"],
        interleave=COLLECTION["interleave"],
    )
    tiles = {name: z["tiles"] for name, z in truth.zones.items()}
    per_year = sum(int(round((e - w) / 10)) * int(round((n - s) / 10)) for t in tiles.values() for w, s, e, n in t)
    facts = {
        "params": COLLECTION,
        "folder": str(annual),
        "index": str(annual / "aef_index.csv"),
        "pixels_per_year": per_year,
        "tiles": tiles,
        "crs": {name: z["crs"] for name, z in truth.zones.items()},
        "bbox_wgs84": truth.notes["bbox_wgs84"],
    }
    (folder / "facts.json").write_text(json.dumps(facts, indent=1))


def extent_16n(facts: dict, fraction_w: float, fraction_h: float) -> tuple[float, float, float, float]:
    """A box in EPSG:32616 from the 16N tiles' south-west corner, a fraction of their span wide/high.

    Starts 1 km inside the mosaic, so every pixel has data from tiles already in the target CRS
    (the common case: the extent in the zone of its tiles).
    """
    tiles = facts["tiles"]["16N"]
    w = min(t[0] for t in tiles) + 1000
    s = min(t[1] for t in tiles) + 1000
    e = max(t[2] for t in tiles) - 1000
    n = max(t[3] for t in tiles) - 1000
    return (w, s, w + (e - w) * fraction_w, s + (n - s) * fraction_h)


def extent_px(facts: dict, fractions) -> float:
    """Approximate pixels (10 m) of ``extent_16n(facts, *fractions)``."""
    w, s, e, n = extent_16n(facts, *fractions)
    return (e - w) * (n - s) / 100.0


# ----------------------------------------------------------------------------- running


def run_measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` once: wall time, and the kernel's CPU time and peak RSS of this one child (os.wait4).

    The payload is the child's last stdout line when it is JSON (see ``child_result``).
    """
    t0 = time.perf_counter()
    out_path = DATA / f".child-{os.getpid()}.out"
    err_path = DATA / f".child-{os.getpid()}.err"
    DATA.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w") as fo, open(err_path, "w") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env)
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = out_path.read_text(), err_path.read_text()
    out_path.unlink()
    err_path.unlink()
    payload = None
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            try:
                payload = json.loads(line)
            except ValueError:
                pass
            break
    return {
        "wall_s": wall,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "peak_rss_mb": ru.ru_maxrss / 1024.0,
        "returncode": proc.returncode,
        "payload": payload,
        "stdout": out,
        "stderr": err,
    }


def measure(variants: dict[str, list[str]], runs: int = RUNS, env: dict | None = None, log=print) -> dict:
    """Run each variant ``runs`` times, interleaved; per variant the runs and their medians."""
    out = {name: [] for name in variants}
    for r in range(runs):
        for name, cmd in variants.items():
            res = run_measured(cmd, env)
            if res["returncode"] != 0:
                raise SystemExit(f"{name} failed (exit {res['returncode']}):\n{res['stderr'][-4000:]}")
            out[name].append(res)
            log(f"  round {r + 1}/{runs} {name}: {res['wall_s']:.2f} s, peak {res['peak_rss_mb']:.0f} MB", flush=True)
    summary = {}
    for name, rs in out.items():
        summary[name] = {
            "wall_s": [round(x["wall_s"], 3) for x in rs],
            "cpu_s": [round(x["cpu_s"], 3) for x in rs],
            "peak_rss_mb": [round(x["peak_rss_mb"], 1) for x in rs],
            "median_wall_s": round(statistics.median(x["wall_s"] for x in rs), 3),
            "median_cpu_s": round(statistics.median(x["cpu_s"] for x in rs), 3),
            "median_peak_rss_mb": round(statistics.median(x["peak_rss_mb"] for x in rs), 1),
            "payload": rs[-1]["payload"],
            "payloads": [x["payload"] for x in rs],
        }
    summary["_rounds"] = runs
    summary["_raw"] = {name: [x["wall_s"] for x in rs] for name, rs in out.items()}
    return summary


def paired_ratio(m: dict, a: str, b: str, key: str = "wall_s") -> float:
    """Median over rounds of a's figure / b's figure in the same round."""
    return round(statistics.median(x / y for x, y in zip(m[a][key], m[b][key])), 3)


def child_env(threads: int | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("PROJ_DATA", "/usr/share/proj")
    if threads:
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = str(threads)
    return env


def child_result(payload: dict) -> None:
    """Print a child's result as its last stdout line (the driver parses it)."""
    print(json.dumps(payload), flush=True)


# ----------------------------------------------------------------------------- reports


def machine() -> dict:
    cpu = platform.processor()
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Model name")), cpu)
    except OSError:
        pass
    mem_gb = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    versions = subprocess.run(
        [
            PY,
            "-c",
            "import numpy, rasterio, osgeo.gdal as g; import faiss;"
            "print(numpy.__version__, rasterio.__version__, g.__version__, faiss.__version__)",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy_rasterio_gdal_faiss": versions,
        "platform": platform.platform(),
        "note": "cores shared with other people's jobs: medians of interleaved runs, ratios taken round by round",
    }


def write(name: str, result: dict, markdown: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    result = dict(result)
    result.setdefault("machine", machine())
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + "\n")
    print(markdown, flush=True)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def summary() -> None:
    m = machine()
    parts = [
        "# Benchmarks (make bench)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}; "
        f"NumPy/rasterio/GDAL/faiss {' / '.join(m['numpy_rasterio_gdal_faiss'])}; {m['platform']}. "
        f"Load average at the end {m['load_average']}. {m['note']}.",
        "",
    ]
    order = ["workloads", "kernels", "memory", "topk", "qgis_process", "zonal"]
    names = sorted(
        (p.stem for p in RESULTS.glob("*.md") if p.stem != "summary"),
        key=lambda s: (s not in order, order.index(s) if s in order else 0, s),
    )
    for name in names:
        text = (RESULTS / f"{name}.md").read_text().strip().splitlines()
        # Demote each part's headings one level under the summary's.
        parts += [("#" + ln) if ln.startswith("#") else ln for ln in text] + [""]
    (RESULTS / "summary.md").write_text("\n".join(parts))
    print(f"wrote {RESULTS / 'summary.md'}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "build-collection":
        _build_collection(Path(sys.argv[2]))
    elif what == "collection":
        f = collection()
        print(f"benchmark collection: {f['folder']} ({f['pixels_per_year'] / 1e6:.1f} M pixels a year)")
    elif what == "summary":
        summary()
    else:
        raise SystemExit(__doc__)
