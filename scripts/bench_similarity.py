"""Benchmark: similarity heatmap and top-k on a canvas-sized embedding raster.

Writes a synthetic 64-band int8 raster (2048 x 1536 px, ZSTD, pixel-interleaved, like
'Load embeddings for extent' writes), then times ``similarity_map`` without top-k, with
top-k through faiss and through NumPy. Results: bench-results/similarity.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_raster(path: Path, width: int = 2048, height: int = 1536) -> None:
    import rasterio
    from affine import Affine

    from earth_embeddings.core.quant import quantize

    rng = np.random.default_rng(0)
    protos = rng.normal(size=(6, 64))
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    profile = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=64,
        dtype="int8",
        nodata=-128,
        crs="EPSG:32616",
        transform=Affine(10, 0, 500000, 0, -10, 4930000),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="zstd",
        interleave="pixel",
    )
    with rasterio.open(path, "w", **profile) as ds:
        for r in range(0, height, 256):
            rows = np.arange(r, min(r + 256, height))
            cls = (rows[:, None] // 60 + np.arange(width)[None, :] // 75) % len(protos)
            v = protos[cls] + rng.normal(0, 0.025, size=(len(rows), width, 64))
            v /= np.linalg.norm(v, axis=-1, keepdims=True)
            ds.write(quantize(np.moveaxis(v, -1, 0)), window=((r, r + len(rows)), (0, width)))


def main() -> int:
    from earth_embeddings.core.similarity import Exemplar, similarity_map

    out_dir = Path("bench-results")
    out_dir.mkdir(exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="ee-bench-sim-") as tmp:
        raster = Path(tmp) / "embeddings.tif"
        write_raster(raster)
        ex = [Exemplar({"type": "Point", "coordinates": [501005.0, 4929495.0]}, "EPSG:32616", "bench")]
        for label, top_k, use_faiss in (("heatmap", 0, None), ("top10_faiss", 10, True), ("top10_numpy", 10, False)):
            best = float("inf")
            for _ in range(2):
                t = time.perf_counter()
                res = similarity_map(
                    ex, str(Path(tmp) / "sim.tif"), input_path=str(raster), top_k=top_k, use_faiss=use_faiss
                )
                best = min(best, time.perf_counter() - t)
            results[label] = {
                "seconds": round(best, 3),
                "pixels": res.grid.pixels,
                "megapixels_per_second": round(res.grid.pixels / best / 1e6, 2),
                "method": res.search_method or None,
            }
            print(f"{label}: {best:.2f} s for {res.grid.pixels:,} px ({res.grid.pixels / best / 1e6:.2f} Mpx/s)")
    (out_dir / "similarity.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
