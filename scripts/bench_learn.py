"""Benchmark: classifiers and k-means, applying (pixels per second per core) and fitting.

Planted embeddings (9 classes, 64 bands, unit vectors with noise) in memory, one thread
(BLAS/OpenMP pinned to 1), CPU seconds of the process:
- apply: ``predict_block`` of each method on (64, 262,144) float32 blocks (one 512 x 512
  block; NaN no-data as the reader gives), repeated for at least MIN_CPU_S; the same from
  int8 codes, the LUT de-quantization included (what a pipeline over AEF tiles pays);
  kNN with 180 training vectors (20 labels a class) and 1,800 (polygons capped at 200),
  faiss and NumPy; k-means ``assign_block`` with 8 and 20 clusters;
- fit: logistic regression (180 x 64, 9 classes; 1,800 x 64; 2,000 x 128 with 20 classes),
  random forest (180 x 64), spherical k-means on a 200,000 x 64 sample (8 and 20 clusters,
  4 restarts, NumPy and faiss), choose_k on the same sample, and the reservoir sampler over
  a stream of 512 x 512 int8 blocks;
- map: ``classify_map`` (logistic, centroid, kNN) and ``cluster_map`` end to end on a
  1536 x 1024 int8 embedding raster written beforehand (reading, labels, fit, cross-validation,
  writing; CPU seconds over the map's pixels).
Writes bench-results/learn.json and .md. Needs no collection (it builds its own data).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

MIN_CPU_S = 2.0
BLOCK_PX = 512 * 512

APPLY = {
    "logistic": "apply: logistic regression",
    "centroid": "apply: nearest centroid",
    "logistic_int8": "apply: logistic, from int8 codes (LUT included)",
    "centroid_int8": "apply: centroid, from int8 codes (LUT included)",
    "knn180_faiss": "apply: kNN K=5, 180 training vectors, faiss",
    "knn180_numpy": "apply: kNN K=5, 180 training vectors, NumPy",
    "knn1800_faiss": "apply: kNN K=5, 1,800 training vectors, faiss",
    "knn1800_numpy": "apply: kNN K=5, 1,800 training vectors, NumPy",
    "forest": "apply: random forest (100 trees)",
    "assign8": "apply: k-means assign, 8 clusters",
    "assign20": "apply: k-means assign, 20 clusters",
}
MAP = {
    "map_logistic": "map: embeddings:classify's core, logistic (reading int8, CV, writing uint8)",
    "map_centroid": "map: classify, nearest centroid",
    "map_knn": "map: classify, kNN K=5 (faiss)",
    "map_cluster": "map: cluster, k=8 (sample pass + assign pass)",
}
MAP_SHAPE = (1024, 1536)  # rows, cols of the int8 embedding raster the map variants classify
FIT = {
    "fit_logistic_180": "fit: logistic, 180 x 64, 9 classes",
    "fit_logistic_1800": "fit: logistic, 1,800 x 64, 9 classes",
    "fit_logistic_2000x128": "fit: logistic, 2,000 x 128, 20 classes",
    "fit_forest_180": "fit: random forest, 180 x 64",
    "kmeans8_numpy": "fit: k-means 200,000 x 64, k=8, 4 restarts, NumPy",
    "kmeans8_faiss": "fit: k-means 200,000 x 64, k=8, 4 restarts, faiss",
    "kmeans20_numpy": "fit: k-means 200,000 x 64, k=20, 4 restarts, NumPy",
    "kmeans20_faiss": "fit: k-means 200,000 x 64, k=20, 4 restarts, faiss",
    "choose_k": "fit: choose_k 2..20 on the 200,000 sample",
    "reservoir": "sample: reservoir of 200,000 over 40 blocks of 512 x 512 int8",
}


def planted(n_per_class: int, classes: int = 9, bands: int = 64, noise: float = 0.6, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(classes, bands))
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    y = np.repeat(np.arange(1, classes + 1), n_per_class)
    X = protos[y - 1] + rng.normal(0, noise / np.sqrt(bands), size=(y.size, bands))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y


def block(seed: int = 1):
    """One 512 x 512 block as (64, pixels) float32 with 3 % no-data, and as int8 codes."""
    import numpy as np

    from earth_embeddings.core.quant import NODATA, quantize

    X, _ = planted(BLOCK_PX // 9 + 1, seed=seed)
    values = np.ascontiguousarray(X[:BLOCK_PX].T)
    rng = np.random.default_rng(seed)
    values[:, rng.random(BLOCK_PX) < 0.03] = np.nan
    codes = quantize(values)
    codes[:, np.isnan(values).any(axis=0)] = NODATA
    return values, codes


def map_raster(folder: Path):
    """An int8 AEF-style raster of MAP_SHAPE: 9 planted classes in vertical stripes, 3 %
    no-data; and 20 labelled points per class (LabelledPlace) at pixel centres of its stripe."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    from earth_embeddings.core.labels import LabelledPlace
    from earth_embeddings.core.quant import NODATA, quantize

    h, w = MAP_SHAPE
    transform = from_origin(500000.0, 5000000.0, 10.0, 10.0)
    path = folder / "embeddings.tif"
    profile = dict(
        driver="GTiff",
        width=w,
        height=h,
        count=64,
        dtype="int8",
        nodata=NODATA,
        crs="EPSG:32616",
        transform=transform,
        tiled=True,
        blockxsize=512,
        blockysize=512,
    )
    stripe = w // 9
    rng = np.random.default_rng(5)
    protos = rng.normal(size=(9, 64))
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    cls = np.minimum(np.arange(w) // stripe, 8)
    with rasterio.open(path, "w", **profile) as ds:
        for r in range(0, h, 256):
            v = protos[cls][None, :, :] + rng.normal(0, 0.6 / 8, size=(256, w, 64))
            v /= np.linalg.norm(v, axis=2, keepdims=True)
            codes = quantize(np.moveaxis(v, 2, 0))
            codes[:, rng.random((256, w)) < 0.03] = NODATA
            ds.write(codes, window=((r, r + 256), (0, w)))
    places = []
    for c in range(9):
        for _ in range(20):
            row, col = rng.integers(0, h), rng.integers(c * stripe, (c + 1) * stripe)
            x, yy = transform * (col + 0.5, row + 0.5)
            geom = {"type": "Point", "coordinates": [x, yy]}
            places.append(LabelledPlace(geom, "EPSG:32616", c + 1, f"point {len(places)}"))
    return str(path), places


def child(what: str):
    import numpy as np

    from earth_embeddings.core import kmeans, learn
    from earth_embeddings.core.quant import LUT
    from earth_embeddings.core.sampling import ReservoirSampler

    if what in APPLY:
        values, codes = block()
        if what.startswith(("assign",)):
            sample, _ = planted(2000)
            model = kmeans.spherical_kmeans(sample, int(what[6:]), seed=0)

            def once():
                model.assign_block(values)

        else:
            if what.startswith("knn"):
                n = 20 if what.startswith("knn180") else 200
                X, y = planted(n, seed=2)
                model = learn.fit_knn(X, y, k=5, use_faiss=what.endswith("faiss"))
            else:
                X, y = planted(20, seed=2)
                model = learn.fit_classifier(what.replace("_int8", ""), X, y, seed=0)
            if what.endswith("_int8"):

                def once():
                    model.predict_block(np.take(LUT, codes.view(np.uint8)))

            else:

                def once():
                    model.predict_block(values)

        once()  # warm
        reps, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
        while time.process_time() - cpu0 < MIN_CPU_S:
            once()
            reps += 1
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        px = reps * BLOCK_PX
        bl.child_result({"pixels": px, "cpu_s": cpu, "wall_s": wall, "px_per_cpu_s": px / cpu})
        return

    if what in MAP:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="ee-bench-map-"))
        raster, places = map_raster(folder)
        from earth_embeddings.core.classify import ClassifyRequest, classify_map
        from earth_embeddings.core.cluster import ClusterRequest, cluster_map
        from earth_embeddings.core.source import SourceSpec

        src = SourceSpec(raster=raster)
        out = str(folder / "out.tif")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if what == "map_cluster":
            cluster_map(ClusterRequest(out, src, clusters=8))
        else:
            classify_map(ClassifyRequest(out, src, training=places, method=what[4:]))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        px = MAP_SHAPE[0] * MAP_SHAPE[1]
        bl.child_result({"pixels": px, "cpu_s": cpu, "wall_s": wall, "px_per_cpu_s": px / cpu})
        return

    if what.startswith("fit_"):
        if what == "fit_logistic_2000x128":
            X, y = planted(100, classes=20, bands=128, seed=3)
        else:
            X, y = planted(int(what.rsplit("_", 1)[1]) // 9, seed=3)
        method = what.split("_")[1]

        def once():
            learn.fit_classifier(method, X, y, seed=0)

    elif what.startswith("kmeans") or what == "choose_k":
        sample, _ = planted(200_000 // 9 + 1, seed=4, noise=0.9)
        sample = sample[:200_000]
        if what == "choose_k":

            def once():
                kmeans.choose_k(sample, seed=0)

        else:
            k = int(what[6:].split("_")[0])

            def once():
                kmeans.spherical_kmeans(sample, k, seed=0, restarts=4, use_faiss=what.endswith("faiss"))

    elif what == "reservoir":
        _, codes = block()

        def once():
            s = ReservoirSampler(200_000, seed=0)
            valid = codes[0] != -128
            for b in range(40):
                s.add(codes, valid, ids=np.arange(b * BLOCK_PX, (b + 1) * BLOCK_PX))
            s.sample()

    else:
        raise SystemExit(f"unknown variant {what}")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    once()
    bl.child_result({"cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0})


def main():
    me = str(Path(__file__).resolve())
    variants = {k: [bl.PY, me, "child", k] for k in list(APPLY) + list(MAP) + list(FIT)}
    m = bl.measure(variants, env=bl.child_env(threads=1))
    rows_apply, rows_fit, result = [], [], {}
    for k, label in APPLY.items():
        rates = [p["px_per_cpu_s"] for p in m[k]["payloads"]]
        result[k] = {"px_per_cpu_s": rates}
        rows_apply.append([label, f"{statistics.median(rates) / 1e6:.2f}"])
    rows_map = []
    for k, label in MAP.items():
        rates = [p["px_per_cpu_s"] for p in m[k]["payloads"]]
        result[k] = {"px_per_cpu_s": rates}
        rows_map.append([label, f"{statistics.median(rates) / 1e6:.2f}"])
    for k, label in FIT.items():
        cpu = [p["cpu_s"] for p in m[k]["payloads"]]
        result[k] = {"cpu_s": cpu}
        med = statistics.median(cpu)
        rows_fit.append([label, f"{med * 1000:.0f} ms" if med < 1 else f"{med:.2f} s"])
    bl.write(
        "learn",
        {"learn": result, "runs": m},
        "\n".join(
            [
                "# Classifiers and k-means (one thread)",
                "",
                "Planted 64-band embeddings in memory; apply = predict_block / assign_block on 512 x 512 blocks "
                f"(3 % no-data) for at least {MIN_CPU_S:g} CPU s; fit = one call; median of {bl.RUNS} processes, "
                "BLAS and OpenMP pinned to one thread.",
                "",
                bl.table(["apply", "M pixels / CPU s (per core)"], rows_apply),
                "",
                bl.table(["fit", "CPU time"], rows_fit),
                "",
                f"Whole maps on a {MAP_SHAPE[1]} x {MAP_SHAPE[0]} int8 embedding raster (9 planted classes, 20 "
                "points each): classify_map / cluster_map end to end, labels, fit and accuracy included.",
                "",
                bl.table(["map", "M pixels / CPU s (per core)"], rows_map),
            ]
        ),
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()
