"""Cluster an extent's embeddings with spherical (cosine) k-means, in two passes.

Pass 1 streams every block and keeps a uniform random sample of the valid pixels
(``sampling.ReservoirSampler``, keyed by pixel id: the sample does not depend on the block
size); k-means is fitted on the sample (``kmeans.spherical_kmeans``, the best of several
seeded restarts; k chosen by the cosine silhouette when asked, ``kmeans.choose_k``).
Pass 2 streams the blocks again and writes each pixel's cluster id (uint8, 1 = the largest
cluster on the sample, no-data 0), counting the pixels of each cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from .arrays import Array
from .errors import EmbeddingsError
from .grid import DEFAULT_BLOCK, Grid, GridSpec
from .kmeans import DEFAULT_CLUSTERS, DEFAULT_RESTARTS, K_RANGE, Clustering, choose_k, spherical_kmeans
from .learn import CHUNK_PIXELS
from .output import open_class_output
from .pipeline import reading, stream, windows_for
from .progress import Progress
from .quant import LUT
from .sampling import DEFAULT_SAMPLE_SIZE, ReservoirSampler
from .source import EmbeddingSource, SourceSpec, open_on_grid

NODATA_CLUSTER = 0
MAX_CLUSTERS = 254


@dataclass(frozen=True)
class ClusterRequest:
    """``clusters`` 0 = choose k in ``kmeans.K_RANGE`` by the silhouette on the sample."""

    output: str
    source: SourceSpec = SourceSpec()
    grid: GridSpec = GridSpec()
    clusters: int = DEFAULT_CLUSTERS
    sample_size: int = DEFAULT_SAMPLE_SIZE
    seed: int = 0
    restarts: int = DEFAULT_RESTARTS
    use_faiss: bool | None = False
    block_size: int = DEFAULT_BLOCK


@dataclass
class ClusterResult:
    path: str
    grid: Grid
    k: int
    centroids: Array  # (k, bands) unit vectors, row 0 = cluster 1
    pixels: Array  # (k,) pixels of each cluster in the map
    sample_pixels: int
    valid_pixels: int
    engine: str
    band_names: list[str]
    silhouettes: dict[int, float] = field(default_factory=dict)  # when k was chosen


def _check(request: ClusterRequest) -> None:
    k = int(request.clusters)
    if k < 0 or k > MAX_CLUSTERS:
        raise EmbeddingsError(f"The number of clusters must be 0 (choose) or 1..{MAX_CLUSTERS}; {k} was given.")
    if int(request.sample_size) < 100:
        raise EmbeddingsError("The sample size must be at least 100 pixels (200,000 is the default).")


def _sample(src: EmbeddingSource, grid: Grid, request: ClusterRequest, progress: Progress) -> tuple[Array, list[str]]:
    sampler = ReservoirSampler(int(request.sample_size), int(request.seed))
    with reading([src], grid) as readers:
        plan = readers[0].plan
        progress.info(plan.describe())
        for window, (block,) in stream(readers, windows_for(grid, readers, request.block_size), progress):
            rr, cc = np.mgrid[
                window.row_off : window.row_off + window.height, window.col_off : window.col_off + window.width
            ]
            ids = rr.ravel().astype(np.int64) * grid.width + cc.ravel()
            sampler.add(block.data.reshape(block.data.shape[0], -1), block.valid.ravel(), ids)
        names = list(plan.band_names)
        quantised = plan.quantised
    rows, _ = sampler.sample()
    if rows.shape[0] == 0:
        raise EmbeddingsError("The embeddings have no data anywhere in this extent; move the extent onto the coverage.")
    values = LUT[rows.view(np.uint8)] if quantised else rows.astype(np.float32)
    return np.ascontiguousarray(values, dtype=np.float32), names


def _fit(X: Array, request: ClusterRequest, progress: Progress) -> tuple[Clustering, dict[int, float]]:
    scores: dict[int, float] = {}
    k = int(request.clusters)
    if k == 0:
        k, scores = choose_k(X, K_RANGE, int(request.seed), request.use_faiss, progress.sub(0, 70))
        progress.info(
            f"Chose {k} clusters: the highest mean cosine silhouette for k = {K_RANGE[0]}..{K_RANGE[1]} "
            "on a subsample of the sample (" + ", ".join(f"{kk}: {v:.3f}" for kk, v in sorted(scores.items())) + ")."
        )
        progress = progress.sub(70, 100)
    if k > X.shape[0]:
        raise EmbeddingsError(
            f"{k} clusters are more than the {X.shape[0]:,} pixels with data in this extent; ask for fewer clusters."
        )
    model = spherical_kmeans(
        X, k, int(request.seed), int(request.restarts), use_faiss=request.use_faiss, progress=progress
    )
    return model, scores


def cluster_map(request: ClusterRequest, progress: Progress | None = None) -> ClusterResult:
    """Sample the extent, fit spherical k-means, write the cluster ids (two passes over the extent)."""
    progress = progress or Progress()
    _check(request)
    src, grid = open_on_grid(request.source, request.grid, progress.sub(0, 2))
    with src:
        X, names = _sample(src, grid, request, progress.sub(2, 45))
        progress.info(f"Sampled {X.shape[0]:,} pixels with data (seed {request.seed}).")
        model, scores = _fit(X, request, progress.sub(45, 55))
        counts = np.zeros(model.k, dtype=np.int64)
        tags = {"EMBEDDINGS_SOURCE": src.label, "CLUSTERS": str(model.k), "CLUSTER_ORDER": "1 = largest in the map"}
        with reading([src], grid) as readers:
            with open_class_output(request.output, grid, "uint8", NODATA_CLUSTER, tags, band="cluster") as out:
                windows = windows_for(grid, readers, request.block_size)
                for window, (block,) in stream(readers, windows, progress.sub(55, 97)):
                    ids = _assign(model, block.chunk_values, block.valid.ravel())
                    counts += np.bincount(ids, minlength=model.k + 1)[1:]
                    out.write(ids.reshape(window.shape)[None].astype(np.uint8), window)
                progress.check_cancelled()
                # Ids were ordered by size on the sample; renumber by size in the map (1 = largest).
                order = np.argsort(-counts, kind="stable")
                if not np.array_equal(order, np.arange(model.k)):
                    lut = np.full(256, NODATA_CLUSTER, dtype=np.uint8)
                    lut[order + 1] = np.arange(1, model.k + 1, dtype=np.uint8)
                    out.rewrite(windows, lambda ids: lut[ids])
                    model = replace(model, centroids=model.centroids[order], sizes=model.sizes[order])
                    counts = counts[order]
                progress.check_cancelled()
    progress.info(
        f"{model.k} clusters (k-means on {model.engine}, best of {request.restarts} restarts, inertia "
        f"{model.inertia:.1f}); pixels per cluster: " + ", ".join(f"{i + 1}: {int(c):,}" for i, c in enumerate(counts))
    )
    progress.set_progress(100.0)
    return ClusterResult(
        str(request.output),
        grid,
        model.k,
        model.centroids,
        counts,
        int(X.shape[0]),
        int(counts.sum()),
        model.engine,
        names,
        scores,
    )


def _assign(model: Clustering, values: Callable[[slice], Array], valid: Array) -> Array:
    n = valid.size
    out = np.full(n, NODATA_CLUSTER, dtype=np.int64)
    for start in range(0, n, CHUNK_PIXELS):
        sl = slice(start, min(n, start + CHUNK_PIXELS))
        if not valid[sl].any():
            continue
        got = model.assign_block(values(sl), nodata=NODATA_CLUSTER)
        out[sl] = np.where(valid[sl], got, NODATA_CLUSTER)
    return out
