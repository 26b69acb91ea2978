"""Drawing pixels: a cap per labelled feature, and a uniform sample over a stream of blocks.

Both are deterministic with a seed. The streaming sample does not even depend on how the
stream is cut into blocks or in which order the blocks come: each pixel's random key is a
hash of (seed, pixel id), and the sample is the pixels with the smallest keys.
"""

from __future__ import annotations

import numpy as np

from .arrays import Array
from .errors import EmbeddingsError

DEFAULT_CAP_PER_FEATURE = 200
DEFAULT_SAMPLE_SIZE = 200_000

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def hash_keys(ids: Array, seed: int) -> Array:
    """uint64 pseudo-random keys of integer ids: splitmix64 of (id + seed * golden gamma).

    A counter-based generator: a pixel's key depends only on its id and the seed, never on
    what else was drawn before it.
    """
    with np.errstate(over="ignore"):
        z = np.asarray(ids, dtype=np.int64).astype(np.uint64)
        z = z + np.uint64((int(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z & _M64


def cap_per_feature(groups: Array, cap: int = DEFAULT_CAP_PER_FEATURE, seed: int = 0) -> Array:
    """Indices (sorted) of at most ``cap`` pixels of each feature, a seeded random subset.

    ``groups`` gives each labelled pixel's feature id. A feature with ``cap`` pixels or
    fewer keeps all of them; a bigger one keeps ``cap`` drawn uniformly, so one large
    polygon cannot outweigh many small ones. The choice depends on the seed and on the
    pixels' order within each feature.
    """
    groups = np.asarray(groups)
    cap = int(cap)
    if cap < 1:
        raise EmbeddingsError("The cap of pixels per feature must be at least 1.")
    n = groups.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse = np.unique(groups, return_inverse=True)
    keys = np.random.default_rng(seed).random(n)
    order = np.lexsort((keys, inverse))
    g = inverse[order]
    # Rank of each pixel within its feature in key order.
    start = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    rank = np.arange(n) - np.repeat(start, np.diff(np.r_[start, n]))
    return np.sort(order[rank < cap])


class ReservoirSampler:
    """A uniform random sample of ``size`` valid pixels over a stream of blocks, in one pass.

    Every valid pixel gets a key (``hash_keys`` of its id); the sample is the ``size``
    pixels with the smallest keys, which is a uniform random subset of all valid pixels
    seen. Memory: ``size`` vectors in the blocks' own dtype (int8 codes: 64 bytes a pixel)
    whatever the length of the stream. Give global pixel ids (e.g. row * width + col) to
    make the sample independent of block size and order; without ids, columns are numbered
    in the order they are added. A pixel offered twice (overlapping blocks) counts twice.
    """

    def __init__(self, size: int = DEFAULT_SAMPLE_SIZE, seed: int = 0):
        if int(size) < 1:
            raise EmbeddingsError("The sample size must be at least 1 pixel.")
        self.size = int(size)
        self.seed = int(seed)
        self.seen = 0
        self._next_id = 0
        self._keys = np.zeros(0, dtype=np.uint64)
        self._ids = np.zeros(0, dtype=np.int64)
        self._rows: Array | None = None
        self._count = 0

    def add(self, values: Array, valid: Array | None = None, ids: Array | None = None) -> None:
        """Offer the columns of a (bands, n) block; ``valid`` (n,) marks those with data."""
        values = np.asarray(values)
        if values.ndim != 2:
            raise EmbeddingsError("Blocks offered to the sampler must be (bands, pixels) arrays.")
        n = values.shape[1]
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
            self._next_id += n
        ids = np.asarray(ids, dtype=np.int64)
        if valid is not None:
            keep = np.flatnonzero(np.asarray(valid).ravel())
            ids = ids[keep]
        else:
            keep = None
        if ids.size == 0:
            return
        self.seen += int(ids.size)
        keys = hash_keys(ids, self.seed)
        if self._rows is None:
            self._rows = np.empty((self.size, values.shape[0]), dtype=values.dtype)
            self._keys = np.full(self.size, np.iinfo(np.uint64).max, dtype=np.uint64)
            self._ids = np.full(self.size, -1, dtype=np.int64)
        elif self._rows.shape[1] != values.shape[0] or self._rows.dtype != values.dtype:
            raise EmbeddingsError("Every block offered to the sampler must have the same bands and data type.")
        if self._count == self.size:
            # Only keys below the current largest can enter: after a while, few pixels a block.
            top = self._keys.max()
            cand = np.flatnonzero(keys < top)
            if cand.size == 0:
                return
        else:
            cand = np.arange(ids.size)
        if cand.size > self.size:
            cand = cand[np.argpartition(keys[cand], self.size - 1)[: self.size]]
        # Merge: the union's `size` smallest keys stay; newcomers take the slots of those that leave.
        all_keys = np.concatenate([self._keys, keys[cand]])
        winners = np.argpartition(all_keys, self.size - 1)[: self.size]
        incoming = winners[winners >= self.size] - self.size
        staying = np.zeros(self.size, dtype=bool)
        staying[winners[winners < self.size]] = True
        free = np.flatnonzero(~staying)[: incoming.size]
        src = cand[incoming]
        cols = src if keep is None else keep[src]
        self._rows[free] = values[:, cols].T
        self._keys[free] = keys[src]
        self._ids[free] = ids[src]
        self._count = int(np.count_nonzero(self._ids >= 0))

    def sample(self) -> tuple[Array, Array]:
        """(vectors (m, bands), pixel ids (m,)) sorted by id; m = min(size, valid pixels seen)."""
        if self._rows is None:
            return np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
        filled = np.flatnonzero(self._ids >= 0)
        order = filled[np.argsort(self._ids[filled], kind="stable")]
        return self._rows[order].copy(), self._ids[order].copy()
