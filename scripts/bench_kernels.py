"""Benchmark: kernel throughput, pixels per second per core, from int8 blocks in memory.

Reads a few blocks of both years once (not timed; the windows the pipeline visits: the tiles'
1024 x 1024 internal blocks), then runs each kernel over them
repeatedly on one thread (BLAS/OpenMP pinned to 1), timing CPU seconds of this process:
- change: ``change_of_blocks`` (1 - cosine of two years' int8 blocks);
- similarity: ``Scorer.block_scores`` (what similarity_map does per block);
- similarity_gather: ``Block.unit_vectors`` + ``Scorer.scores``, the gather of valid pixels
  into rows that similarity_map did before (faiss's top-k bound still needs the rows);
- dequantize only: the LUT gather from int8 to float32 (a lower bound for any kernel).
Writes bench-results/kernels.json and .md.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

BLOCKS = 3
TARGETS = {"change": 6, "similarity": 10}  # M pixels per CPU second, one thread
MIN_CPU_S = 2.0


def child(kernel: str):
    import numpy as np

    from earth_embeddings.core.change import change_of_blocks
    from earth_embeddings.core.grid import grid_for_extent
    from earth_embeddings.core.pipeline import windows_for
    from earth_embeddings.core.quant import LUT
    from earth_embeddings.core.similarity import Scorer
    from earth_embeddings.core.source import open_years

    facts = bl.collection_facts()
    extent = bl.extent_16n(facts, 0.5, 0.5)
    grid = grid_for_extent(extent, "EPSG:32616", "EPSG:32616", 10.0)
    blocks = {}
    for src in open_years(facts["index"], (2017, 2024)):
        with src, src.reader(grid) as reader:
            windows = sorted(windows_for(grid, [reader]), key=lambda w: -w.width * w.height)[:BLOCKS]
            blocks[src.year] = [reader.read(w) for w in windows]
    a, b = blocks[2017], blocks[2024]
    q = a[0].unit_vectors()[1000]
    scorer = Scorer(q[None, :])

    def once():
        for i in range(len(a)):
            if kernel == "change":
                change_of_blocks(a[i], b[i])
            elif kernel == "similarity":
                scorer.block_scores(b[i])
            elif kernel == "similarity_gather":
                scorer.scores(b[i].unit_vectors())
            elif kernel == "dequantize":
                np.take(LUT, b[i].data.view(np.uint8))

    once()  # warm
    reps, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while time.process_time() - cpu0 < MIN_CPU_S:
        once()
        reps += 1
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    px = reps * sum(blk.valid.size for blk in a)
    bl.child_result({"pixels": px, "cpu_s": cpu, "wall_s": wall, "px_per_cpu_s": px / cpu, "px_per_s": px / wall})


def main():
    bl.collection()
    me = str(Path(__file__).resolve())
    kernels = ("change", "similarity", "similarity_gather", "dequantize")
    m = bl.measure({k: [bl.PY, me, "child", k] for k in kernels}, env=bl.child_env(threads=1))
    rows = []
    result = {}
    for k in kernels:
        rates = [p["px_per_cpu_s"] for p in m[k]["payloads"]]
        wall_rates = [p["px_per_s"] for p in m[k]["payloads"]]
        result[k] = {"px_per_cpu_s": rates, "px_per_wall_s": wall_rates}
        target = TARGETS.get(k)
        verdict = "" if target is None else ("met" if statistics.median(rates) >= target * 1e6 else "MISSED")
        rows.append(
            [
                k,
                f"{statistics.median(rates) / 1e6:.1f}",
                f"{statistics.median(wall_rates) / 1e6:.1f}",
                f">= {target}: {verdict}" if target else "",
            ]
        )
    bl.write(
        "kernels",
        {"kernels": result, "runs": m},
        "\n".join(
            [
                "# Kernel throughput from int8 blocks in memory (one thread)",
                "",
                f"The {BLOCKS} largest windows the pipeline visits (the tiles' 1024 x 1024 blocks) x 64 bands per year, in memory; each kernel repeated "
                f"for at least {MIN_CPU_S:g} CPU seconds; median of {bl.RUNS} processes. similarity = "
                "Scorer.block_scores (what similarity_map runs per block); similarity_gather = "
                "Block.unit_vectors + Scorer.scores (the previous path); dequantize = the LUT alone.",
                "",
                bl.table(["kernel", "M pixels / CPU s (per core)", "M pixels / wall s", "target (issue 15)"], rows),
            ]
        ),
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()
