"""Per-feature caps and the one-pass streaming sample: sizes, determinism, uniformity."""

import numpy as np
import pytest

from earth_embeddings.core.errors import EmbeddingsError
from earth_embeddings.core.sampling import ReservoirSampler, cap_per_feature, hash_keys


def test_cap_keeps_small_features_whole_and_caps_big_ones():
    g = np.repeat([7, 3, 9, 4], [5, 1000, 200, 201])
    keep = cap_per_feature(g, cap=200, seed=1)
    assert np.all(np.diff(keep) > 0)
    counts = {int(k): int(v) for k, v in zip(*np.unique(g[keep], return_counts=True))}
    assert counts == {7: 5, 3: 200, 9: 200, 4: 200}
    assert np.array_equal(keep, cap_per_feature(g, cap=200, seed=1))
    assert not np.array_equal(keep, cap_per_feature(g, cap=200, seed=2))
    with pytest.raises(EmbeddingsError, match="at least 1"):
        cap_per_feature(g, cap=0)


def test_cap_draws_uniformly_within_a_feature():
    g = np.zeros(50, dtype=int)
    hits = np.zeros(50)
    for seed in range(2000):
        hits[cap_per_feature(g, cap=10, seed=seed)] += 1
    # Each pixel is kept with probability 10/50: 400 of 2000 draws, s.d. ~18.
    assert np.all(np.abs(hits - 400) < 5 * 18), hits


def blocks(width, height, size, rng):
    """A raster of int8 codes with random no-data, cut into size x size blocks."""
    data = rng.integers(-127, 128, size=(3, height, width)).astype(np.int8)
    valid = rng.random((height, width)) < 0.6
    out = []
    for r in range(0, height, size):
        for c in range(0, width, size):
            rr, cc = np.meshgrid(np.arange(r, min(height, r + size)), np.arange(c, min(width, c + size)), indexing="ij")
            ids = (rr * width + cc).ravel()
            out.append((data[:, rr, cc].reshape(3, -1), valid[rr, cc].ravel(), ids))
    return data, valid, out


def test_streaming_sample_is_the_same_whatever_the_blocks_and_their_order():
    rng = np.random.default_rng(0)
    data, valid, small = blocks(300, 200, 17, rng)
    _, _, big = blocks(300, 200, 64, np.random.default_rng(0))
    a = ReservoirSampler(1500, seed=4)
    for v, m, ids in small:
        a.add(v, m, ids)
    b = ReservoirSampler(1500, seed=4)
    for v, m, ids in reversed(big):
        b.add(v, m, ids)
    va, ia = a.sample()
    vb, ib = b.sample()
    assert va.shape == (1500, 3) and va.dtype == np.int8
    assert np.array_equal(ia, ib) and np.array_equal(va, vb)
    assert a.seen == b.seen == int(valid.sum())
    # Only valid pixels, each with its own vector.
    rows, cols = np.divmod(ia, 300)
    assert valid[rows, cols].all()
    assert np.array_equal(va, data[:, rows, cols].T)
    # The definition: the valid pixels with the smallest keys.
    all_ids = np.flatnonzero(valid.ravel())
    want = np.sort(all_ids[np.argsort(hash_keys(all_ids, 4))[:1500]])
    assert np.array_equal(ia, want)


def test_streaming_sample_is_uniform():
    # 40 pixels a stream, 10 drawn: each pixel with probability 1/4 over many seeds.
    hits = np.zeros(40)
    values = np.arange(40, dtype=np.float32)[None, :]
    for seed in range(4000):
        s = ReservoirSampler(10, seed=seed)
        for start in range(0, 40, 7):
            s.add(values[:, start : start + 7])
        hits[s.sample()[1]] += 1
    # 1000 expected per pixel, s.d. ~27.
    assert np.all(np.abs(hits - 1000) < 5 * 27), hits
    # The first and the last pixels of the stream alike (no bias towards early or late blocks).
    assert abs(hits[:10].mean() - hits[-10:].mean()) < 40


def test_a_short_stream_is_kept_whole_and_bad_use_is_refused():
    s = ReservoirSampler(100, seed=0)
    s.add(np.ones((2, 30), dtype=np.float32), np.arange(30) % 3 == 0)
    v, ids = s.sample()
    assert v.shape == (10, 2) and list(ids) == list(range(0, 30, 3))
    with pytest.raises(EmbeddingsError, match="same bands"):
        s.add(np.ones((3, 5), dtype=np.float32))
    with pytest.raises(EmbeddingsError, match="at least 1"):
        ReservoirSampler(0)
