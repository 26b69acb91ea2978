"""Benchmark: the change-over-years kernel, pixels per second per core, from int8 blocks in memory.

One 512 x 512 block of Y years x 64 bands (AEF int8 codes, 1 % of the pixels without data in
each year) is made once (not timed); ``trajectory_of_block`` then runs over it repeatedly on one
thread (BLAS/OpenMP pinned to 1), timing CPU seconds of this process, for 5 and 9 years. For
scale, ``change_of_blocks`` (the two-year change map's kernel) runs on two years of the same
block. Writes bench-results/trajectory.json and .md.
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

SIDE_PX = 512
MIN_CPU_S = 3.0
HOLE_FRACTION = 0.01


def make_block(n_years: int, seed: int = 7):
    """int8 codes (Y, 64, SIDE, SIDE): a base vector per pixel, drifting a little every year."""
    import numpy as np

    from earth_embeddings.core.quant import NODATA, quantize

    rng = np.random.default_rng(seed)
    shape = (64, SIDE_PX, SIDE_PX)
    base = rng.standard_normal(shape, dtype=np.float32)
    codes = np.empty((n_years,) + shape, dtype=np.int8)
    for y in range(n_years):
        v = base + 0.3 * rng.standard_normal(shape, dtype=np.float32)
        v /= np.sqrt(np.einsum("bhw,bhw->hw", v, v))
        codes[y] = quantize(v)
        codes[y][:, rng.random((SIDE_PX, SIDE_PX)) < HOLE_FRACTION] = NODATA
    return codes


def child(kernel: str, n_years: int):
    from earth_embeddings.core.change import change_of_blocks
    from earth_embeddings.core.grid import Window
    from earth_embeddings.core.quant import NODATA
    from earth_embeddings.core.reader import Block
    from earth_embeddings.core.trajectory import trajectory_of_block

    codes = make_block(n_years)
    years = list(range(2017, 2017 + n_years))
    if kernel == "trajectory":

        def once():
            trajectory_of_block(codes, years, years[:1])

    else:
        window = Window(0, 0, SIDE_PX, SIDE_PX)
        a, b = (Block(window, codes[i], ~(codes[i] == NODATA).any(axis=0), True) for i in (0, -1))

        def once():
            change_of_blocks(a, b)

    once()  # warm
    # NumPy reports its allocations to tracemalloc: the kernel's own peak, outputs included.
    tracemalloc.start()
    once()
    kernel_peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    reps, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while time.process_time() - cpu0 < MIN_CPU_S:
        once()
        reps += 1
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    px = reps * SIDE_PX * SIDE_PX
    bl.child_result(
        {
            "pixels": px,
            "cpu_s": cpu,
            "wall_s": wall,
            "px_per_cpu_s": px / cpu,
            "px_per_s": px / wall,
            "kernel_peak_mb": kernel_peak_mb,
            "input_mb": codes.nbytes / 1e6,
        }
    )


VARIANTS = {
    "trajectory, 5 years": ("trajectory", 5),
    "trajectory, 9 years": ("trajectory", 9),
    "change (2 years)": ("change", 2),
}


def main():
    me = str(Path(__file__).resolve())
    cmds = {name: [bl.PY, me, "child", k, str(y)] for name, (k, y) in VARIANTS.items()}
    m = bl.measure(cmds, env=bl.child_env(threads=1))
    rows, result = [], {}
    for name, (_, n_years) in VARIANTS.items():
        rates = [p["px_per_cpu_s"] for p in m[name]["payloads"]]
        wall_rates = [p["px_per_s"] for p in m[name]["payloads"]]
        result[name] = {"years": n_years, "px_per_cpu_s": rates, "px_per_wall_s": wall_rates}
        rows.append(
            [
                name,
                f"{statistics.median(rates) / 1e6:.2f}",
                f"{statistics.median(wall_rates) / 1e6:.2f}",
                f"{m[name]['payload']['input_mb']:.0f}",
                f"{statistics.median(p['kernel_peak_mb'] for p in m[name]['payloads']):.0f}",
            ]
        )
    bl.write(
        "trajectory",
        {"kernels": result, "runs": m},
        "\n".join(
            [
                "# Change over years: kernel throughput from int8 blocks in memory (one thread)",
                "",
                f"One {SIDE_PX} x {SIDE_PX} block of Y years x 64 bands already in memory ({HOLE_FRACTION:.0%} of "
                f"the pixels without data each year); trajectory_of_block (change to the baseline, year of change, "
                f"largest step, anomaly) repeated for at least {MIN_CPU_S:g} CPU seconds; median of {bl.RUNS} "
                "processes. change = change_of_blocks on two years of the same block, for scale. The kernel's own "
                "peak is what one call allocates beyond its input (its outputs included), from tracemalloc.",
                "",
                bl.table(
                    [
                        "kernel",
                        "M pixels / CPU s (per core)",
                        "M pixels / wall s",
                        "input block MB",
                        "kernel's own peak MB (tracemalloc)",
                    ],
                    rows,
                ),
            ]
        ),
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
