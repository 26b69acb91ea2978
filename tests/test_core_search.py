"""Streaming top-k with minimum separation: exact against a brute-force greedy, faiss = NumPy."""

import sys

import numpy as np
import pytest

from earth_embeddings.core.progress import Progress
from earth_embeddings.core.search import TopKSearch, candidates_needed, neighbours_within
from earth_embeddings.core.similarity import Scorer


class Log(Progress):
    def __init__(self):
        self.lines = []

    def info(self, message):
        self.lines.append(message)

    def warning(self, message):
        self.lines.append(message)


def brute_force(scores, valid, k, separation_px):
    """The definition: walk all valid pixels best first (ties by row-major index), keep a pixel
    when it is at least the separation from every kept one."""
    h, w = scores.shape
    ids = np.flatnonzero(valid.ravel())
    s = scores.ravel()[ids]
    order = sorted(range(ids.size), key=lambda i: (-float(s[i]), int(ids[i])))
    kept = []
    for i in order:
        r, c = divmod(int(ids[i]), w)
        if all((r - r2) ** 2 + (c - c2) ** 2 >= separation_px**2 for r2, c2, _ in kept):
            kept.append((r, c, float(s[i])))
            if len(kept) == k:
                break
    return kept


def stream(scores, valid, k, separation_px, block=37, vectors=None, queries=None, use_faiss=None, progress=None):
    h, w = scores.shape
    search = TopKSearch(k, separation_px, w, queries, use_faiss, progress)
    for r0 in range(0, h, block):
        for c0 in range(0, w, block):
            sub = valid[r0 : r0 + block, c0 : c0 + block]
            rr, cc = np.nonzero(sub)
            ids = (rr + r0).astype(np.int64) * w + (cc + c0)
            vec = None if vectors is None else vectors[r0 : r0 + block, c0 : c0 + block][sub]
            search.add_block(ids, scores[r0 : r0 + block, c0 : c0 + block][sub], vec)
    return [(p.row, p.col, p.score) for p in search.places()], search


def smooth_field(h, w, seed):
    # Bumps of different heights: many near-equal neighbours, as in a real heatmap.
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    f = np.zeros((h, w))
    for _ in range(12):
        cy, cx, s, a = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, 15), rng.uniform(0.3, 1)
        f += a * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return (f + rng.normal(0, 0.01, f.shape)).astype(np.float32)


def test_neighbour_counts():
    assert neighbours_within(0) == 0
    assert neighbours_within(1.0) == 0  # the 4 nearest centres are exactly 1 pixel away: allowed
    assert neighbours_within(1.2) == 4
    assert neighbours_within(2.0) == 8
    assert neighbours_within(2.01) == 12
    assert candidates_needed(5, 2.0) == 45
    assert abs(neighbours_within(10) - np.pi * 100) < 40


@pytest.mark.parametrize("k,sep", [(1, 0), (10, 0), (10, 10), (25, 7.5), (40, 3)])
def test_streamed_top_k_equals_brute_force(k, sep):
    scores = smooth_field(120, 150, seed=k)
    valid = np.ones(scores.shape, bool)
    valid[40:60, 10:90] = False  # a no-data strip
    got, _ = stream(scores, valid, k, sep, use_faiss=False)
    assert got == brute_force(scores, valid, k, sep)
    pts = np.array([(r, c) for r, c, _ in got])
    if sep > 0 and len(pts) > 1:
        d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
        assert d2[~np.eye(len(pts), dtype=bool)].min() >= sep**2
    assert all(valid[r, c] for r, c, _ in got)


def test_ties_are_broken_by_pixel_order_whatever_the_blocks():
    scores = np.ones((50, 60), np.float32)
    valid = np.ones(scores.shape, bool)
    for block in (7, 16, 64):
        got, _ = stream(scores, valid, 6, 20, block=block, use_faiss=False)
        # (0, 59) is 19 px from (0, 40); the next far-enough pixel in row-major order is (7, 59).
        assert [(r, c) for r, c, _ in got][:4] == [(0, 0), (0, 20), (0, 40), (7, 59)]
        assert got == brute_force(scores, valid, 6, 20)


def test_fewer_places_than_k_when_the_separation_leaves_no_room():
    scores = smooth_field(30, 30, seed=3)
    valid = np.ones(scores.shape, bool)
    got, _ = stream(scores, valid, 50, 20, use_faiss=False)
    assert got == brute_force(scores, valid, 50, 20) and 0 < len(got) < 50


def unit_vectors(h, w, seed):
    # Vectors near a few prototypes, like land cover: many close scores.
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(5, 64))
    cls = rng.integers(0, 5, size=(h, w))
    v = protos[cls] + rng.normal(0, 0.4, size=(h, w, 64))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    return v.astype(np.float32), protos


@pytest.mark.parametrize("aggregate,negatives", [("mean", False), ("mean", True), ("max", False)])
def test_faiss_and_numpy_give_the_same_places(aggregate, negatives):
    vectors, protos = unit_vectors(90, 110, seed=5)
    pos = protos[:2] / np.linalg.norm(protos[:2], axis=1, keepdims=True)
    neg = protos[2:3] / np.linalg.norm(protos[2:3], axis=1, keepdims=True) if negatives else None
    scorer = Scorer(pos.astype(np.float32), None if neg is None else neg.astype(np.float32), aggregate)
    scores = scorer.scores(vectors.reshape(-1, 64)).reshape(90, 110)
    valid = np.ones(scores.shape, bool)
    valid[::7, ::5] = False
    for k, sep in ((15, 0), (15, 4)):
        with_faiss, s1 = stream(scores, valid, k, sep, 32, vectors, scorer.search_queries, use_faiss=True)
        with_numpy, s2 = stream(scores, valid, k, sep, 32, vectors, scorer.search_queries, use_faiss=False)
        assert s1.method == "faiss" and s2.method == "numpy"
        assert with_faiss == with_numpy == brute_force(scores, valid, k, sep)


def test_without_faiss_numpy_is_used_and_the_log_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    vectors, protos = unit_vectors(40, 40, seed=2)
    scorer = Scorer((protos[:1] / np.linalg.norm(protos[0])).astype(np.float32))
    scores = scorer.scores(vectors.reshape(-1, 64)).reshape(40, 40)
    valid = np.ones(scores.shape, bool)
    log = Log()
    got, search = stream(scores, valid, 5, 3, 16, vectors, scorer.search_queries, progress=log)
    assert search.method == "numpy"
    assert any("faiss is not installed" in line and "NumPy" in line for line in log.lines)
    assert got == brute_force(scores, valid, 5, 3)


def test_max_with_negatives_has_no_linear_query():
    pos = np.eye(64, dtype=np.float32)[:2]
    neg = np.eye(64, dtype=np.float32)[2:3]
    assert Scorer(pos, neg, "max").search_queries is None
    assert Scorer(pos, None, "max").search_queries.shape == (2, 64)
    q = Scorer(pos, neg, "mean").search_queries
    x = np.eye(64, dtype=np.float32)[[0, 2, 5]]
    assert np.allclose(x @ q[0], Scorer(pos, neg, "mean").scores(x))
