"""Spherical k-means against planted classes, faiss = NumPy, size order, the choice of k,
the silhouette's definition, and real Wisconsin vectors."""

import numpy as np
import pytest
from planted import draw, prototypes, real_vectors

from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.kmeans import choose_k, kmeans_plus_plus, silhouette, spherical_kmeans


@pytest.fixture(scope="module")
def wisconsin_vectors(wisconsin_raster):
    return real_vectors(wisconsin_raster)


def four_classes(seed=0, features=12, pixels=60):
    """Four well-separated planted classes; each feature has its own offset, so a class is a
    spread of sub-clusters that more clusters than classes will split."""
    rng = np.random.default_rng(seed)
    protos = prototypes(5, rng)[:4]  # not the confusable pair
    return draw(protos, features, pixels, rng, noise=0.3, feature_noise=0.3)


@pytest.mark.parametrize("use_faiss", [False, True])
def test_more_clusters_than_classes_split_classes_but_never_mix_them(use_faiss):
    X, y, _ = four_classes()
    c = spherical_kmeans(X, 9, seed=3, use_faiss=use_faiss)
    assert c.engine == ("faiss" if use_faiss else "numpy")
    ids = c.assign(X)
    assert set(ids) == set(range(1, 10))
    for cluster in range(1, 10):
        assert np.unique(y[ids == cluster]).size == 1, cluster
    assert all(np.unique(ids[y == cls]).size >= 1 for cls in np.unique(y))


def test_cluster_ids_are_ordered_by_size():
    X, y, _ = four_classes(seed=1)
    keep = np.concatenate([np.flatnonzero(y == 1), np.flatnonzero(y == 2)[:300], np.flatnonzero(y == 3)[:100]])
    X, y = X[keep], y[keep]  # classes of 720, 300, 100 pixels
    c = spherical_kmeans(X, 3, seed=0)
    ids = c.assign(X)
    assert list(c.sizes) == list(np.bincount(ids, minlength=4)[1:])
    assert list(c.sizes) == [720, 300, 100]
    assert [int(np.unique(y[ids == i])[0]) for i in (1, 2, 3)] == [1, 2, 3]


def test_faiss_and_numpy_find_the_same_clusters(wisconsin_vectors):
    X, y, _ = four_classes(seed=2)
    a = spherical_kmeans(X, 6, seed=5, use_faiss=False)
    b = spherical_kmeans(X, 6, seed=5, use_faiss=True)
    assert np.array_equal(a.assign(X), b.assign(X))
    assert np.allclose(a.centroids, b.centroids, atol=1e-5)
    # Real vectors: both run the same Lloyd iterations from the same k-means++ starts.
    R = wisconsin_vectors[0]
    a = spherical_kmeans(R, 8, seed=1, use_faiss=False)
    b = spherical_kmeans(R, 8, seed=1, use_faiss=True)
    assert np.mean(a.assign(R) == b.assign(R)) > 0.995
    assert abs(a.inertia - b.inertia) < 1e-4 * a.inertia


def test_restarts_keep_the_lowest_inertia_and_are_seeded():
    X, _, _ = four_classes(seed=4)
    one = spherical_kmeans(X, 7, seed=2, restarts=1)
    best = spherical_kmeans(X, 7, seed=2, restarts=6)
    assert best.inertia <= one.inertia
    again = spherical_kmeans(X, 7, seed=2, restarts=6)
    assert np.array_equal(best.centroids, again.centroids)
    # The inertia is what it says: the sum of 1 - cosine to the assigned centroid.
    ids = best.assign(X)
    cos = np.einsum("ij,ij->i", X.astype(np.float64), best.centroids[ids - 1].astype(np.float64))
    assert best.inertia == pytest.approx(float(np.sum(1 - cos)), rel=1e-5)
    assert np.allclose(np.linalg.norm(best.centroids, axis=1), 1.0, atol=1e-5)


def test_kmeans_plus_plus_starts_from_distinct_far_apart_points():
    X, y, _ = four_classes(seed=5)
    # On four well-separated classes the greedy weighted draw lands in four different classes.
    for seed in range(10):
        starts = kmeans_plus_plus(X, 4, np.random.default_rng(seed))
        hit = [int(y[np.argmax(X @ s)]) for s in starts]
        assert sorted(hit) == [1, 2, 3, 4], seed


def test_assign_block_marks_nodata_and_ignores_vector_length():
    X, _, _ = four_classes(seed=6)
    c = spherical_kmeans(X, 4, seed=0)
    block = (X[:20] * 3.0).T.copy()
    block[:, 5] = np.nan
    block[:, 6] = 0.0
    ids = c.assign_block(block, nodata=255)
    assert ids[5] == 255 and ids[6] == 255
    keep = np.setdiff1d(np.arange(20), [5, 6])
    assert np.array_equal(ids[keep], c.assign(X[keep]))


def test_silhouette_follows_its_definition():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    labels = rng.integers(0, 3, size=40)
    labels[0] = 5  # a cluster of one point: s = 0 there
    d = 1 - X @ X.T
    s = []
    for i in range(40):
        own = labels == labels[i]
        if own.sum() == 1:
            s.append(0.0)
            continue
        a = d[i, own & (np.arange(40) != i)].mean()
        b = min(d[i, labels == c].mean() for c in set(labels) if c != labels[i])
        s.append((b - a) / max(a, b))
    assert silhouette(X, labels) == pytest.approx(float(np.mean(s)), abs=1e-9)


def test_choose_k_finds_the_planted_number_of_classes():
    rng = np.random.default_rng(8)
    protos = prototypes(7, rng)[:5]
    X, _, _ = draw(protos, 6, 300, rng, noise=0.4, feature_noise=0.1)
    k, scores = choose_k(X, seed=0)
    assert k == 5, scores
    assert sorted(scores) == list(range(2, 21))


def test_real_embeddings_cluster_into_coherent_regions(wisconsin_vectors):
    X, rows, cols = wisconsin_vectors
    c = spherical_kmeans(X, 6, seed=0)
    ids = c.assign(X)
    assert c.sizes.sum() == X.shape[0] and np.all(np.diff(c.sizes) <= 0) and c.sizes[-1] > 0
    grid = np.zeros((rows.max() + 1, cols.max() + 1), dtype=int)
    grid[rows, cols] = ids
    pairs = (grid[:, 1:] > 0) & (grid[:, :-1] > 0)
    same = (grid[:, 1:] == grid[:, :-1]) & pairs
    share = c.sizes / c.sizes.sum()
    # Fields and woods: neighbours share a cluster far more often than by chance.
    assert same.sum() / pairs.sum() > 0.6 > 2 * float(share @ share)
    k, scores = choose_k(X, seed=0)
    assert 2 <= k <= 20 and all(np.isfinite(v) for v in scores.values())


def test_bad_cluster_requests_are_refused():
    X, _, _ = four_classes(seed=9, features=1, pixels=5)
    with pytest.raises(EmbeddingsError, match="more than the 20 sampled pixels"):
        spherical_kmeans(X, 21)
    with pytest.raises(EmbeddingsError, match="at least 1"):
        spherical_kmeans(X, 0)
