"""Spherical (cosine) k-means on a sample of embeddings, and its assignment to blocks.

Fitting runs on a sample (``sampling.ReservoirSampler``: up to a few hundred thousand unit
vectors). Each restart starts from a seeded greedy k-means++ draw (probability of a point
proportional to 1 - its best cosine to the centres chosen so far: for unit vectors that is
half the squared distance, so this is k-means++ on the sphere) and runs Lloyd's iterations:
assign every point to the centre of highest cosine, move each centre to the renormalised
mean of its points. The iterations run in NumPy by default, in faiss (``faiss.Kmeans`` with
``spherical=True`` from the same starts) when asked (see ``spherical_kmeans`` for why NumPy is
the default); either way the restart kept is the one of lowest inertia (sum over points of
1 - cosine to their centre), computed by the same NumPy code for both. Cluster ids are
ordered by size on the sample, 1 = largest.

``choose_k`` picks k between 2 and 20 when the user asks for it (CLUSTERS = 0): the k of
highest mean silhouette (cosine distance) on a subsample; see its docstring for why.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from .arrays import Array
from .errors import EmbeddingsError
from .learn import CHUNK_PIXELS, as_chunk, best_two, column_norms, unit_rows
from .progress import Progress
from .search import load_faiss

DEFAULT_CLUSTERS = 8
DEFAULT_RESTARTS = 4
DEFAULT_ITERATIONS = 30
K_RANGE = (2, 20)
# choose_k: k-means for every candidate k on this many sample points, the silhouette on this many.
CHOOSE_FIT_POINTS = 20_000
CHOOSE_SILHOUETTE_POINTS = 3_000


@dataclass
class Clustering:
    """Fitted clusters: unit centroids (k, bands) ordered by size (row 0 is cluster id 1)."""

    centroids: Array
    sizes: Array  # sample points per cluster, descending
    inertia: float  # sum over sample points of 1 - cosine to their centroid
    engine: str  # "faiss" or "numpy": where Lloyd's iterations ran

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def bands(self) -> int:
        return int(self.centroids.shape[1])

    def assign_block(self, values: Array, nodata: int = 0) -> Array:
        """Cluster ids 1..k (int32) of the columns of a (bands, n) float32 chunk; ``nodata``
        where a column has NaN or is all zero. One product and a pass per cluster."""
        values = as_chunk(values, self.bands)
        n = values.shape[1]
        out = np.full(n, nodata, dtype=np.int32)
        for start in range(0, n, CHUNK_PIXELS):
            sl = slice(start, min(n, start + CHUNK_PIXELS))
            _, ok = column_norms(values[:, sl])
            if not ok.any():
                continue
            # The norm does not change which centroid is nearest: no division needed.
            idx, _, _ = best_two(self.centroids @ values[:, sl], need_second=False)
            out[sl] = np.where(ok, idx + 1, nodata)
        return out

    def assign(self, X: Array) -> Array:
        """Cluster ids 1..k of (n, bands) rows."""
        return self.assign_block(np.asarray(X, dtype=np.float32).T)


def _assign(Xt: Array, centroids: Array) -> tuple[Array, Array]:
    """Index of the centroid of highest cosine and that cosine, for unit columns Xt (bands, n)."""
    idx = np.empty(Xt.shape[1], dtype=np.int32)
    best = np.empty(Xt.shape[1], dtype=np.float32)
    for start in range(0, Xt.shape[1], CHUNK_PIXELS):
        sl = slice(start, min(Xt.shape[1], start + CHUNK_PIXELS))
        i, b, _ = best_two(centroids @ Xt[:, sl], need_second=False)
        idx[sl], best[sl] = i, b
    return idx, best


def _renormalised_means(X: Array, idx: Array, k: int) -> tuple[Array, Array]:
    """Sum of each cluster's rows (as a one-hot product: a BLAS call, not a scatter), unit
    length, and the cluster sizes."""
    onehot = np.zeros((k, X.shape[0]), dtype=np.float32)
    onehot[idx, np.arange(X.shape[0])] = 1.0
    sums = onehot @ X
    norm = np.linalg.norm(sums, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return (sums / norm).astype(np.float32), np.bincount(idx, minlength=k)


def kmeans_plus_plus(X: Array, k: int, rng: np.random.Generator) -> Array:
    """k seeded k-means++ centres (rows of X, unit vectors) for spherical k-means.

    Greedy k-means++ (as scikit-learn's): each new centre is the best of 2 + ln(k) points
    drawn with probability proportional to 1 - their best cosine to the centres so far, the
    one that lowers the total of those distances most; one unlucky draw then rarely puts
    two centres in one cluster.
    """
    n = X.shape[0]
    trials = 2 + int(np.log(k))
    centres = np.empty((k, X.shape[1]), dtype=np.float32)
    first = int(rng.integers(n))
    centres[0] = X[first]
    best = X @ X[first]
    for j in range(1, k):
        d = np.clip(1.0 - best.astype(np.float64), 0.0, None)
        total = d.sum()
        if total <= 0:  # fewer distinct points than k: take any points
            picks = rng.integers(n, size=trials)
        else:
            picks = np.searchsorted(np.cumsum(d), rng.random(trials) * total, side="right")
            picks = np.minimum(picks, n - 1)
        cand = np.maximum(best[:, None], X @ X[picks].T)  # (n, trials)
        choice = int(np.argmax(cand.sum(axis=0, dtype=np.float64)))
        centres[j] = X[picks[choice]]
        best = np.ascontiguousarray(cand[:, choice])
    return centres


def _lloyd_numpy(X: Array, Xt: Array, centroids: Array, iterations: int) -> Array:
    k = centroids.shape[0]
    idx: Array | None = None
    for _ in range(iterations):
        new_idx, best = _assign(Xt, centroids)
        if idx is not None and np.array_equal(new_idx, idx):
            break
        idx = new_idx
        centroids, sizes = _renormalised_means(X, idx, k)
        empty = np.flatnonzero(sizes == 0)
        if empty.size:
            # An empty cluster restarts at the points worst served by their centre.
            worst = np.argsort(best, kind="stable")[: empty.size]
            centroids[empty] = X[worst]
            idx = None
    return centroids


def _lloyd_faiss(faiss: ModuleType, X: Array, centroids: Array, iterations: int, seed: int) -> Array:
    k, d = centroids.shape
    km = faiss.Kmeans(
        d,
        k,
        niter=iterations,
        nredo=1,
        spherical=True,
        seed=int(seed),
        verbose=False,
        # All points, not faiss's default subsample of 256 per centroid; no warning for small k.
        max_points_per_centroid=int(np.ceil(X.shape[0] / k)) + 1,
        min_points_per_centroid=1,
    )
    km.train(X, init_centroids=centroids)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def spherical_kmeans(
    X: Array,
    k: int = DEFAULT_CLUSTERS,
    seed: int = 0,
    restarts: int = DEFAULT_RESTARTS,
    iterations: int = DEFAULT_ITERATIONS,
    use_faiss: bool | None = False,
    progress: Progress | None = None,
) -> Clustering:
    """Cosine k-means of (n, bands) vectors: the best of ``restarts`` seeded runs.

    ``use_faiss``: False (the default) = NumPy, True = faiss (refused without it), None =
    faiss when importable. NumPy is the default because it measured faster here
    (scripts/bench_learn.py): its iterations stop as soon as no point changes cluster,
    faiss always runs all of them, and faiss's OpenMP threads contend with BLAS threads on
    a small machine unless OMP_WAIT_POLICY=PASSIVE is set before QGIS starts.
    """
    progress = progress or Progress()
    X = unit_rows(X, "sample vectors")
    n = X.shape[0]
    k = int(k)
    if k < 1:
        raise EmbeddingsError("The number of clusters must be at least 1.")
    if k > n:
        raise EmbeddingsError(f"{k} clusters are more than the {n} sampled pixels; ask for fewer clusters.")
    faiss = load_faiss() if use_faiss in (None, True) else None
    if use_faiss and faiss is None:
        raise EmbeddingsError("faiss is not installed; install faiss-cpu or let k-means use NumPy.")
    Xt = np.ascontiguousarray(X.T)
    rng = np.random.default_rng(seed)
    best: tuple[float, Array, Array] | None = None
    for r in range(max(1, int(restarts))):
        progress.check_cancelled()
        init = kmeans_plus_plus(X, k, rng)
        if faiss is not None:
            c = _lloyd_faiss(faiss, X, init, iterations, seed + r)
        else:
            c = _lloyd_numpy(X, Xt, init, iterations)
        idx, cos = _assign(Xt, c)
        inertia = float(np.sum(1.0 - cos.astype(np.float64)))
        if best is None or inertia < best[0]:
            best = (inertia, c, idx)
        progress.set_progress(100.0 * (r + 1) / max(1, int(restarts)))
    assert best is not None  # max(1, restarts) runs always keep one
    inertia, c, idx = best
    sizes = np.bincount(idx, minlength=k)
    order = np.lexsort((np.arange(k), -sizes))
    return Clustering(
        centroids=np.ascontiguousarray(c[order]),
        sizes=sizes[order],
        inertia=inertia,
        engine="faiss" if faiss is not None else "numpy",
    )


def silhouette(X: Array, labels: Array) -> float:
    """Mean silhouette with cosine distance (1 - cos) of unit rows X under ``labels``.

    Per point: a = mean distance to the other points of its cluster, b = the lowest mean
    distance to another cluster, s = (b - a) / max(a, b); s = 0 for a point alone in its
    cluster (Rousseeuw's convention). O(n^2): give a subsample.
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    _, lab = np.unique(labels, return_inverse=True)
    k = int(lab.max()) + 1
    if k < 2:
        return float("nan")
    n = X.shape[0]
    onehot = np.zeros((n, k))
    onehot[np.arange(n), lab] = 1.0
    # Sum of distances to every cluster: sum(1 - x.y) = size - x . (sum of the cluster's rows)
    sums = onehot.T @ X
    sizes = onehot.sum(axis=0)
    dist = sizes[None, :] - X @ sums.T  # (n, k), includes the point itself at distance ~0
    own = dist[np.arange(n), lab]
    own_size = sizes[lab]
    a = np.where(own_size > 1, own / np.maximum(own_size - 1, 1), 0.0)
    other = dist / sizes[None, :]
    other[np.arange(n), lab] = np.inf
    b = other.min(axis=1)
    s = np.where(own_size > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def choose_k(
    X: Array,
    k_range: tuple[int, int] = K_RANGE,
    seed: int = 0,
    use_faiss: bool | None = False,
    progress: Progress | None = None,
) -> tuple[int, dict[int, float]]:
    """The number of clusters in ``k_range`` with the highest mean silhouette, and the scores.

    Criterion: for every k, spherical k-means (2 restarts) on a seeded subsample of
    ``CHOOSE_FIT_POINTS`` sample points, then the mean cosine silhouette of a further
    ``CHOOSE_SILHOUETTE_POINTS`` of them assigned to those clusters; ties go to the smaller k.
    Why the silhouette: it compares how tight each cluster is with how far the next one is,
    so it needs no reference distribution and no threshold, is scale-free (a cosine), and
    has a maximum rather than the elbow of a curve that only ever falls (inertia), which a
    rule such as "the largest relative drop" locates unreliably. It is exact on the
    subsample; silhouettes are O(n^2), hence the subsample. Its known bias: on data without
    clear clusters it prefers few, broad clusters.
    """
    progress = progress or Progress()
    X = unit_rows(X, "sample vectors")
    lo, hi = int(k_range[0]), int(k_range[1])
    rng = np.random.default_rng(seed)
    order = rng.permutation(X.shape[0])
    fit_rows = X[order[:CHOOSE_FIT_POINTS]]
    sil_rows = X[order[CHOOSE_FIT_POINTS : CHOOSE_FIT_POINTS + CHOOSE_SILHOUETTE_POINTS]]
    if sil_rows.shape[0] < CHOOSE_SILHOUETTE_POINTS:
        # A small sample: the silhouette on (part of) the points the clusters were fitted on.
        sil_rows = fit_rows[:CHOOSE_SILHOUETTE_POINTS]
    hi = min(hi, fit_rows.shape[0] - 1, sil_rows.shape[0] - 1)
    if hi < lo:
        raise EmbeddingsError(
            f"Too few valid pixels ({X.shape[0]}) to choose a number of clusters; give a larger area."
        )
    scores: dict[int, float] = {}
    ks = list(range(lo, hi + 1))
    for i, k in enumerate(ks):
        progress.check_cancelled()
        c = spherical_kmeans(fit_rows, k, seed=seed, restarts=2, use_faiss=use_faiss)
        scores[k] = silhouette(sil_rows, c.assign(sil_rows))
        progress.set_progress(100.0 * (i + 1) / len(ks))
    best = max(ks, key=lambda k: (scores[k] if np.isfinite(scores[k]) else -np.inf, -k))
    return best, scores
