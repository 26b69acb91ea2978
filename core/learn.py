"""Classifiers learnt from labelled embeddings, applied block by block.

Training vectors are (n, bands) float32 rows (de-quantized AEF codes or float embeddings);
every method renormalises them to unit length, so a pixel is a direction and closeness is
the cosine. Labels are integer class codes (the user's own codes, which may be 0 or negative).

Four methods behind one interface (``Classifier.predict_block``):

- ``logistic``: multinomial logistic regression with an L2 penalty, fitted by full-batch
  L-BFGS in NumPy (the objective is strictly convex, so the optimum is unique and the fit
  is deterministic). The default.
- ``knn``: K nearest training vectors by cosine, majority vote (faiss's flat inner-product
  search when faiss is importable, NumPy otherwise, the same answers).
- ``centroid``: nearest class centroid (the renormalised mean of each class) by cosine.
- ``forest``: scikit-learn's random forest, only when scikit-learn is importable.

Applying a model reads (bands, pixels) float32 chunks as the reader delivers them (NaN where
there is no data): linear methods are one BLAS product per chunk and a few passes over a
(classes, chunk) float32 array, with no per-pixel Python and no float64 copy of the scores.

Logistic, centroid and kNN models are saved as plain arrays in an ``.npz`` (``save_model``,
``load_model``; never pickle, so a shared model file cannot run code). Forests are not saved.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

from .arrays import Array
from .errors import EmbeddingsError
from .search import load_faiss

METHODS = ("logistic", "knn", "centroid", "forest")
DEFAULT_K_NEIGHBORS = 5
# Inverse L2 strength on standardised features (scikit-learn's C): see fit_logistic.
DEFAULT_C = 1.0
FOREST_TREES = 100
# Pixels per chunk when applying a model (and assigning clusters): (classes, chunk) float32
# scores stay a few MB. Larger than block.CHUNK_PIXELS on purpose: those kernels hold
# (64 bands, chunk) float32 temporaries, which must stay cache-sized.
CHUNK_PIXELS = 65536
# The NumPy kNN holds a (chunk, training vectors) float32 score matrix: at most this many cells.
KNN_SCORE_CELLS = 1 << 22
# A float32 inner product of two unit vectors of 64-128 bands is within ~1e-6 of the exact
# value in faiss and in BLAS alike; scores further apart than this are ordered alike by both.
KNN_TOLERANCE = 1e-5

MODEL_FORMAT = "earth-embeddings-classifier"
MODEL_VERSION = 1
SAVABLE = ("logistic", "knn", "centroid")


# ----------------------------------------------------------------------------- helpers


def unit_rows(X: ArrayLike, what: str = "training vectors") -> Array:
    """float32 (n, bands) rows renormalised to unit length; refuses rows without data."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise EmbeddingsError(f"The {what} must be a non-empty table of vectors (pixels x bands).")
    norm: Array = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
    bad = ~np.isfinite(norm) | (norm == 0)
    if bad.any():
        raise EmbeddingsError(
            f"{int(bad.sum())} of the {what} have no data (NaN or all zero); drop those pixels before fitting."
        )
    unit: Array = X / norm[:, None]  # float64: float32 rows over float64 norms
    return unit.astype(np.float32)


def column_norms(values: Array) -> tuple[Array, Array]:
    """Norms (n,) of the columns of a (bands, n) chunk, with 1 where a column is unusable,
    and the mask of usable columns (finite, non-zero)."""
    norm = np.sqrt(np.einsum("bn,bn->n", values, values))
    ok = np.isfinite(norm) & (norm > 0)
    norm[~ok] = 1.0
    return norm, ok


def best_two(scores: Array, need_second: bool = True) -> tuple[Array, Array, Array | None]:
    """Index (int32), value and runner-up value of the largest score in each column.

    ``scores`` is (classes, n). A pass per class over contiguous rows: as fast as
    ``argmax(axis=0)`` and it yields the runner-up on the way. Ties go to the lower index.
    """
    best = scores[0].copy()
    idx = np.zeros(scores.shape[1], dtype=np.int32)
    second = np.full_like(best, -np.inf) if need_second else None
    for c in range(1, scores.shape[0]):
        row = scores[c]
        better = row > best
        if second is not None:
            # The runner-up is the larger of the old best (when beaten) and this row (when not).
            np.maximum(second, np.where(better, best, row), out=second)
        idx[better] = c
        np.maximum(best, row, out=best)
    return idx, best, second


def as_chunk(values: Array, bands: int) -> Array:
    """A (bands, pixels) float32 array of the expected band count, or one sentence why not."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise EmbeddingsError("Pixels to classify must be a (bands, pixels) array.")
    check_bands(bands, values.shape[0])
    if values.dtype != np.float32:
        values = values.astype(np.float32)
    return values


def check_bands(model_bands: int, data_bands: int) -> None:
    """Refuse data whose band count differs from the model's (one sentence)."""
    if int(model_bands) != int(data_bands):
        raise EmbeddingsError(
            f"The model was trained on {model_bands}-band embeddings but the data has {data_bands} bands; "
            "use a model trained on the same embedding product."
        )


# ----------------------------------------------------------------------------- models


@dataclass
class Classifier:
    """A fitted classifier: class codes (sorted), their names, and the band count it expects."""

    codes: Array
    names: tuple[str, ...]
    bands: int
    method: str = field(init=False, default="")

    @property
    def n_classes(self) -> int:
        return int(len(self.codes))

    def predict_block(self, values: Array, nodata: int = -1) -> tuple[Array, Array]:
        """Class codes (int32) and confidence (float32) of the columns of a (bands, n) chunk.

        Columns with NaN or an all-zero vector get ``nodata`` and a NaN confidence. The
        chunk is processed ``CHUNK_PIXELS`` at a time, so memory stays bounded by the input.
        """
        values = as_chunk(values, self.bands)
        n = values.shape[1]
        out = np.full(n, nodata, dtype=np.int32)
        conf = np.full(n, np.nan, dtype=np.float32)
        codes = self.codes.astype(np.int32)
        step = self._chunk_pixels()
        for start in range(0, n, step):
            sl = slice(start, min(n, start + step))
            norm, ok = column_norms(values[:, sl])
            if not ok.any():
                continue
            idx, c = self._predict_chunk(values[:, sl], norm)
            out[sl] = np.where(ok, codes[idx], nodata)
            conf[sl] = np.where(ok, c, np.nan)
        return out, conf

    def predict(self, X: ArrayLike) -> Array:
        """Class codes (int32) of (n, bands) rows (a convenience over ``predict_block``)."""
        return self.predict_block(np.asarray(X, dtype=np.float32).T)[0]

    def _chunk_pixels(self) -> int:
        return CHUNK_PIXELS

    def _predict_chunk(self, values: Array, norm: Array) -> tuple[Array, Array]:
        raise NotImplementedError

    def arrays(self) -> dict[str, Array | np.int64]:
        """The arrays that define the model (saved by ``save_model``)."""
        raise NotImplementedError


@dataclass
class LogisticModel(Classifier):
    """Multinomial logistic regression on unit vectors: p(class) = softmax(W x / |x| + b).

    ``weights`` (classes, bands) and ``bias`` (classes,) act on the unit vector itself (the
    standardisation used for fitting is folded in). Confidence: the winning class's probability.
    """

    weights: Array
    bias: Array
    method: str = field(init=False, default="logistic")

    def __post_init__(self) -> None:
        self.weights = np.ascontiguousarray(self.weights, dtype=np.float32)
        self.bias = np.ascontiguousarray(self.bias, dtype=np.float32)

    def logits(self, values: Array, norm: Array) -> Array:
        s: Array = self.weights @ values
        s /= norm
        s += self.bias[:, None]
        return s

    def _predict_chunk(self, values: Array, norm: Array) -> tuple[Array, Array]:
        s = self.logits(values, norm)
        idx, best, _ = best_two(s, need_second=False)
        s -= best
        np.exp(s, out=s)
        # max probability = 1 / sum(exp(logit - max logit))
        return idx, 1.0 / s.sum(axis=0)

    def probabilities(self, X: ArrayLike) -> Array:
        """Class probabilities (n, classes) float64 of (n, bands) rows (for tests and reports)."""
        values = as_chunk(np.asarray(X, dtype=np.float32).T, self.bands)
        norm, _ = column_norms(values)
        s = self.logits(values, norm).astype(np.float64)
        s -= s.max(axis=0)
        p = np.exp(s)
        total: Array = p.sum(axis=0)
        return (p / total).T

    def arrays(self) -> dict[str, Array | np.int64]:
        return {"weights": self.weights, "bias": self.bias}


@dataclass
class CentroidModel(Classifier):
    """Nearest class centroid by cosine; confidence = cosine to the best centroid minus the
    cosine to the runner-up (0 = on the boundary)."""

    centroids: Array
    method: str = field(init=False, default="centroid")

    def __post_init__(self) -> None:
        self.centroids = np.ascontiguousarray(self.centroids, dtype=np.float32)

    def _predict_chunk(self, values: Array, norm: Array) -> tuple[Array, Array]:
        # The norm does not change the ranking: divide only the margin, not every score.
        idx, best, second = best_two(self.centroids @ values)
        return idx, (best - second) / norm

    def arrays(self) -> dict[str, Array | np.int64]:
        return {"centroids": self.centroids}


@dataclass
class KnnModel(Classifier):
    """K nearest training vectors by cosine, majority vote; confidence = share of the votes.

    Neighbours are ranked by cosine, ties by training row (the lower first). Candidates come
    from faiss (``IndexFlatIP``) or from a NumPy product, 2K of them; where their float32
    scores are too close to trust the order, they are re-scored in float64 by the same code
    on both paths: the paths rank the same neighbours, although faiss and BLAS round their
    float32 sums differently. A tied vote goes to the class of the nearest neighbour among
    the tied classes.
    """

    vectors: Array  # (m, bands) float32, unit rows
    labels: Array  # (m,) int32 index into codes
    k: int = DEFAULT_K_NEIGHBORS
    use_faiss: bool | None = None  # None: faiss when importable
    method: str = field(init=False, default="knn")

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        self.labels = np.ascontiguousarray(self.labels, dtype=np.int32)
        self.k = int(self.k)
        self._vectors64 = self.vectors.astype(np.float64)
        self._faiss: ModuleType | None = load_faiss() if self.use_faiss in (None, True) else None
        if self.use_faiss and self._faiss is None:
            raise EmbeddingsError("faiss is not installed; install faiss-cpu or let the kNN use NumPy.")
        self._index: Any = None  # a faiss.IndexFlatIP once built (faiss has no type information)

    @property
    def search(self) -> str:
        """Which library finds the candidate neighbours: "faiss" or "numpy"."""
        return "faiss" if self._faiss is not None else "numpy"

    def _chunk_pixels(self) -> int:
        if self._faiss is not None:
            return CHUNK_PIXELS
        return max(256, KNN_SCORE_CELLS // max(1, self.vectors.shape[0]))

    def _candidates(self, q: Array, depth: int) -> tuple[Array, Array]:
        """(n, depth) training rows of highest inner product with unit rows q (n, bands) and
        those float32 products, best first."""
        if self._faiss is not None:
            if self._index is None:
                self._index = self._faiss.IndexFlatIP(self.bands)
                self._index.add(self.vectors)
            scores, ids = self._index.search(q, depth)
            return ids, scores
        s = q @ self.vectors.T
        if depth < s.shape[1]:
            ids = np.argpartition(-s, depth - 1, axis=1)[:, :depth]
        else:
            ids = np.broadcast_to(np.arange(s.shape[1]), s.shape)
        scores = np.take_along_axis(s, ids, axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)

    def neighbours(self, q: Array) -> Array:
        """The K nearest training rows (n, K) of unit rows q (n, bands), nearest first.

        Where the float32 products of the K + 1 best candidates are all further apart than
        any rounding of either library (KNN_TOLERANCE), their order is the exact order and is
        used as it is; elsewhere the candidates are re-scored in float64 (the products of
        float32 numbers are exact in float64) and ranked by (cosine, training row).
        """
        m = self.vectors.shape[0]
        depth = min(m, 2 * self.k)
        cand, approx = self._candidates(np.ascontiguousarray(q, dtype=np.float32), depth)
        upto = min(depth, self.k + 1)
        gaps = approx[:, : upto - 1] - approx[:, 1:upto]
        unsure = np.flatnonzero((gaps < KNN_TOLERANCE).any(axis=1)) if upto > 1 else np.zeros(0, dtype=np.int64)
        out = np.array(cand[:, : self.k])
        if unsure.size:
            c = cand[unsure]
            q64 = q[unsure].astype(np.float64)
            s = np.empty(c.shape, dtype=np.float64)
            piece = max(1, (1 << 20) // (depth * self.bands))  # bounds the (n, depth, bands) gather
            for i in range(0, c.shape[0], piece):
                j = min(c.shape[0], i + piece)
                s[i:j] = np.einsum("nb,nkb->nk", q64[i:j], self._vectors64[c[i:j]])
            order = np.lexsort((c, -s), axis=1)[:, : self.k]
            out[unsure] = np.take_along_axis(c, order, axis=1)
        return out

    def _predict_chunk(self, values: Array, norm: Array) -> tuple[Array, Array]:
        q = np.ascontiguousarray((values / norm).T)
        q[~np.isfinite(q)] = 0.0  # unusable columns are masked by the caller; keep faiss away from NaN
        nb = self.neighbours(q)
        lab = self.labels[nb]  # (n, K), nearest first
        n, k = lab.shape
        c = self.n_classes
        ar = np.arange(n)
        counts = np.zeros((n, c), dtype=np.int32)
        first = np.full((n, c), k, dtype=np.int32)
        for r in range(k - 1, -1, -1):
            counts[ar, lab[:, r]] += 1
            first[ar, lab[:, r]] = r
        # More votes wins; among equal votes, the class whose nearest voter is nearer.
        key = counts * (k + 1) + (k - first)
        idx = key.argmax(axis=1).astype(np.int32)
        return idx, (counts[ar, idx] / np.float32(k)).astype(np.float32)

    def arrays(self) -> dict[str, Array | np.int64]:
        return {"vectors": self.vectors, "labels": self.labels, "k": np.int64(self.k)}


class ProbabilisticEstimator(Protocol):
    """What ForestModel uses of a fitted scikit-learn classifier (scikit-learn has no type information)."""

    def predict_proba(self, X: Array) -> Array: ...


@dataclass
class ForestModel(Classifier):
    """scikit-learn's RandomForestClassifier on unit vectors; confidence = the share of trees'
    probability for the winning class. Not savable (its only format is pickle)."""

    estimator: ProbabilisticEstimator
    method: str = field(init=False, default="forest")

    def _chunk_pixels(self) -> int:
        return 16384

    def _predict_chunk(self, values: Array, norm: Array) -> tuple[Array, Array]:
        q = (values / norm).T
        q[~np.isfinite(q)] = 0.0
        p = self.estimator.predict_proba(q).astype(np.float32)
        idx = p.argmax(axis=1).astype(np.int32)
        return idx, p[np.arange(p.shape[0]), idx]

    def arrays(self) -> dict[str, Array | np.int64]:
        raise EmbeddingsError("A random forest cannot be saved as plain arrays; choose logistic, kNN or centroid.")


# ----------------------------------------------------------------------------- fitting


def _training(X: ArrayLike, y: ArrayLike, names: dict[int, str] | None) -> tuple[Array, Array, Array, tuple[str, ...]]:
    """Unit rows, class index per row, sorted class codes and their names."""
    X = unit_rows(X)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise EmbeddingsError("Give exactly one class label per training vector.")
    if not np.issubdtype(y.dtype, np.integer):
        try:
            as_real = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            as_real = np.full(y.shape, np.nan)
        # Integers stored as reals (GeoJSON, shapefiles) count as integers.
        if not np.all(np.isfinite(as_real)) or not np.all(as_real % 1 == 0):
            raise EmbeddingsError("Class labels must be integer codes; map text labels to codes first.")
        y = as_real.astype(np.int64)
    codes, index = np.unique(y, return_inverse=True)
    if codes.size < 2:
        raise EmbeddingsError(
            f"All training labels belong to one class ({int(codes[0])}); label places of at least two classes."
        )
    names = names or {}
    return X, index.astype(np.int32), codes.astype(np.int64), tuple(str(names.get(int(c), int(c))) for c in codes)


def standardisation(X: Array) -> tuple[Array, float]:
    """Centre (mean row) and one global scale of unit rows X used to fit the logistic model.

    Centring makes the intercept cheap to learn. The scale is one number (the RMS deviation
    per band), not one per band: it makes the penalty independent of the band count and of
    the product's value range while keeping the geometry, so that no noisy low-variance band
    is inflated and the penalty treats every direction of the embedding space alike.
    """
    mu = X.mean(axis=0, dtype=np.float64)
    dev = X - mu
    scale = float(np.sqrt(np.mean(dev * dev)))
    return mu, (scale if scale > 0 else 1.0)


def fit_logistic(
    X: ArrayLike, y: ArrayLike, names: dict[int, str] | None = None, c: float = DEFAULT_C, max_iter: int = 1000
) -> LogisticModel:
    """Multinomial logistic regression, L2-penalised, on the standardised unit vectors.

    Minimises sum_i -log p(y_i | z_i) + |W|^2 / (2 c) over W (classes, bands) and b (classes,),
    z = (x - mean) / scale (see ``standardisation``); the intercept is not penalised. This is
    scikit-learn's convention for ``C``: the penalty is a fixed prior, so with more labels
    the data speak louder. ``c`` = 1 on standardised features (each band of unit variance)
    keeps weights moderate when a few labels per class would let them grow without bound
    (few labels in 64 dimensions are always linearly separable), and is in the flat part of
    the accuracy curve on the planted data (tests/test_core_learn.py).
    """
    X, idx, codes, names_t = _training(X, y, names)
    if not c > 0:
        raise EmbeddingsError("The regularisation C must be a positive number.")
    mu, scale = standardisation(X)
    Z = (X - mu) / scale
    n, bands = Z.shape
    k = codes.size
    onehot = np.zeros((n, k))
    onehot[np.arange(n), idx] = 1.0
    inv_c = 1.0 / float(c)

    def fg(theta: Array) -> tuple[float, Array]:
        W = theta[: k * bands].reshape(k, bands)
        b = theta[k * bands :]
        s = Z @ W.T + b
        smax = s.max(axis=1, keepdims=True)
        e = np.exp(s - smax)
        tot = e.sum(axis=1, keepdims=True)
        lse = np.log(tot) + smax
        f = float(np.sum(lse[:, 0] - s[np.arange(n), idx])) + 0.5 * inv_c * float(np.sum(W * W))
        g = e / tot - onehot
        gw = g.T @ Z + inv_c * W
        gb = g.sum(axis=0)
        return f, np.concatenate([gw.ravel(), gb])

    theta = lbfgs(fg, np.zeros(k * bands + k), max_iter=max_iter, gtol=1e-6 * max(1.0, n**0.5))
    W = theta[: k * bands].reshape(k, bands) / scale
    b = theta[k * bands :] - W @ mu
    return LogisticModel(codes=codes, names=names_t, bands=bands, weights=W, bias=b)


def lbfgs(
    fg: Callable[[Array], tuple[float, Array]],
    x0: ArrayLike,
    max_iter: int = 1000,
    memory: int = 10,
    gtol: float = 1e-6,
    ftol: float = 1e-12,
) -> Array:
    """Minimise a smooth function by L-BFGS with a backtracking (Armijo) line search.

    ``fg(x) -> (f, gradient)``. Stops when the largest gradient component falls below
    ``gtol``, when an iteration lowers f by less than ``ftol`` relative, or after
    ``max_iter`` iterations. Deterministic: no randomness, fixed arithmetic order.
    """
    x = np.asarray(x0, dtype=np.float64).copy()
    f, g = fg(x)
    s_hist: list[Array] = []
    y_hist: list[Array] = []
    for it in range(max_iter):
        if np.max(np.abs(g)) <= gtol:
            break
        # Two-loop recursion: d = -H g with the implicit inverse Hessian of the stored pairs.
        q = g.copy()
        alphas = []
        for s, yv in zip(reversed(s_hist), reversed(y_hist)):
            a = (s @ q) / (yv @ s)
            alphas.append(a)
            q -= a * yv
        if s_hist:
            q *= (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1])
        else:
            q /= max(1.0, float(np.linalg.norm(g)))
        for (s, yv), a in zip(zip(s_hist, y_hist), reversed(alphas)):
            bcoef = (yv @ q) / (yv @ s)
            q += (a - bcoef) * s
        d = -q
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction (numerical trouble): restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            d = -g / max(1.0, float(np.linalg.norm(g)))
            slope = float(g @ d)
        step = 1.0
        while True:
            x_new = x + step * d
            f_new, g_new = fg(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-12:
                break
            step *= 0.5
        s, yv = x_new - x, g_new - g
        if float(s @ yv) > 1e-12 * float(yv @ yv):
            s_hist.append(s)
            y_hist.append(yv)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        done = f - f_new <= ftol * max(1.0, abs(f))
        x, f, g = x_new, f_new, g_new
        if done and it > 0:
            break
    return x


def fit_centroid(X: ArrayLike, y: ArrayLike, names: dict[int, str] | None = None) -> CentroidModel:
    """Class centroids: the renormalised mean of each class's unit vectors."""
    X, idx, codes, names_t = _training(X, y, names)
    sums = np.zeros((codes.size, X.shape[1]), dtype=np.float64)
    np.add.at(sums, idx, X)
    norm = np.linalg.norm(sums, axis=1, keepdims=True)
    if np.any(norm == 0):
        bad = [names_t[i] for i in np.flatnonzero(norm[:, 0] == 0)]
        raise EmbeddingsError(f"The vectors of class {bad[0]} cancel out (their mean is zero); add other labels.")
    return CentroidModel(codes=codes, names=names_t, bands=X.shape[1], centroids=sums / norm)


def fit_knn(
    X: ArrayLike,
    y: ArrayLike,
    names: dict[int, str] | None = None,
    k: int = DEFAULT_K_NEIGHBORS,
    use_faiss: bool | None = None,
) -> KnnModel:
    """Store the unit training vectors for a K-nearest-neighbour vote."""
    X, idx, codes, names_t = _training(X, y, names)
    k = int(k)
    if k < 1:
        raise EmbeddingsError("The number of neighbours K must be at least 1.")
    if k > X.shape[0]:
        raise EmbeddingsError(
            f"K = {k} neighbours is more than the {X.shape[0]} labelled pixels; lower K or add labels."
        )
    return KnnModel(codes=codes, names=names_t, bands=X.shape[1], vectors=X, labels=idx, k=k, use_faiss=use_faiss)


def fit_forest(
    X: ArrayLike, y: ArrayLike, names: dict[int, str] | None = None, seed: int = 0, trees: int = FOREST_TREES
) -> ForestModel:
    """scikit-learn's RandomForestClassifier (seeded); refused with the install command without it."""
    from .deps import require

    require("sklearn", "The random forest")
    from sklearn.ensemble import RandomForestClassifier

    X, idx, codes, names_t = _training(X, y, names)
    est = RandomForestClassifier(n_estimators=int(trees), random_state=int(seed), n_jobs=1)
    est.fit(X, idx)
    return ForestModel(codes=codes, names=names_t, bands=X.shape[1], estimator=est)


def fit_classifier(
    method: str,
    X: ArrayLike,
    y: ArrayLike,
    names: dict[int, str] | None = None,
    seed: int = 0,
    k_neighbors: int = DEFAULT_K_NEIGHBORS,
    c: float = DEFAULT_C,
    use_faiss: bool | None = None,
) -> Classifier:
    """Fit one of ``METHODS`` on (n, bands) vectors and integer labels (n,)."""
    if method == "logistic":
        return fit_logistic(X, y, names, c=c)
    if method == "knn":
        return fit_knn(X, y, names, k=k_neighbors, use_faiss=use_faiss)
    if method == "centroid":
        return fit_centroid(X, y, names)
    if method == "forest":
        return fit_forest(X, y, names, seed=seed)
    raise EmbeddingsError(f"Unknown classification method {method!r}; choose one of {', '.join(METHODS)}.")


# ----------------------------------------------------------------------------- model files


def save_model(model: Classifier, path: str | os.PathLike[str]) -> None:
    """Write a logistic, centroid or kNN model as plain arrays in an .npz (no pickle).

    Written under a temporary name and renamed into place, so a failed save leaves no file.
    """
    from .output import atomic_path

    if model.method not in SAVABLE:
        raise EmbeddingsError(
            f"A {model.method} model cannot be saved as plain arrays; choose logistic, kNN or centroid to save one."
        )
    arrays: dict[str, Array | np.int64] = {
        "format": np.array(MODEL_FORMAT),
        "version": np.int64(MODEL_VERSION),
        "method": np.array(model.method),
        "bands": np.int64(model.bands),
        "class_codes": np.asarray(model.codes, dtype=np.int64),
        "class_names": np.array([str(n) for n in model.names], dtype=np.str_),
    }
    arrays.update(model.arrays())
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


_REQUIRED = {
    "logistic": ("weights", "bias"),
    "centroid": ("centroids",),
    "knn": ("vectors", "labels", "k"),
}


def load_model(path: str | os.PathLike[str], use_faiss: bool | None = None) -> Classifier:
    """Read a model written by ``save_model``; refuse anything else in one sentence."""
    name = os.fspath(path)
    not_model = f"{name} is not an Earth Embeddings classifier model (saved by the classify algorithm's model output)"
    try:
        with np.load(name, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise EmbeddingsError(f"The model file {name} does not exist; choose a saved model file.") from None
    except Exception:
        raise EmbeddingsError(f"{not_model}; choose a model file saved by Earth Embeddings.") from None
    try:
        if str(data["format"]) != MODEL_FORMAT:
            raise KeyError("format")
        version = int(data["version"])
        method = str(data["method"])
        bands = int(data["bands"])
        codes = np.asarray(data["class_codes"], dtype=np.int64)
        names = tuple(str(n) for n in data["class_names"])
        parts = {k: data[k] for k in _REQUIRED[method]}
    except (KeyError, ValueError, TypeError):
        raise EmbeddingsError(f"{not_model}; choose a model file saved by Earth Embeddings.") from None
    if version > MODEL_VERSION:
        raise EmbeddingsError(
            f"{name} was saved by a newer Earth Embeddings (model version {version}); update the plugin to use it."
        )
    c = codes.size
    try:
        if len(names) != c or c < 2 or bands < 1:
            raise ValueError
        model: Classifier
        if method == "logistic":
            logistic = LogisticModel(codes=codes, names=names, bands=bands, **parts)
            ok = logistic.weights.shape == (c, bands) and logistic.bias.shape == (c,)
            model = logistic
        elif method == "centroid":
            centroid = CentroidModel(codes=codes, names=names, bands=bands, **parts)
            ok = centroid.centroids.shape == (c, bands)
            model = centroid
        else:
            k = int(parts.pop("k"))
            knn = KnnModel(codes=codes, names=names, bands=bands, k=k, use_faiss=use_faiss, **parts)
            m = knn.vectors.shape[0]
            ok = (
                knn.vectors.shape == (m, bands)
                and knn.labels.shape == (m,)
                and 1 <= k <= m
                and knn.labels.min() >= 0
                and knn.labels.max() < c
            )
            model = knn
        finite = all(np.all(np.isfinite(np.asarray(a, dtype=np.float64))) for a in parts.values())
        if not (ok and finite):
            raise ValueError
    except (ValueError, TypeError):
        raise EmbeddingsError(f"{name} is a damaged Earth Embeddings model file; save the model again.") from None
    return model


def describe(model: Classifier) -> str:
    """One line for the log: method, classes and band count."""
    extra = f", K = {model.k}, {model.vectors.shape[0]} training vectors" if isinstance(model, KnnModel) else ""
    return f"{model.method} model: {model.n_classes} classes ({', '.join(model.names)}), " f"{model.bands} bands{extra}"
