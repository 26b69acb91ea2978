"""Top-k distinct places: the K highest-scoring pixels at least a minimum distance apart.

The extent is searched block by block. Each block contributes its M best pixels, M = K x
(N_r + 1) where N_r is the number of pixels closer than the separation r to a pixel: the
greedy selection (take the best remaining pixel, drop everything closer than r to it)
removes at most N_r pixels per pick, so it never looks further down the global ranking
than M places, and the global top M is contained in the union of the blocks' top M. The
running pool of candidates is cut to the global top M after every block, so memory holds
M candidates whatever the extent.

A block's candidates are bounded with faiss (the flat inner-product search over the block's
unit vectors, one search per query vector) when faiss is importable, else with NumPy
(``partition`` on the block's scores). Either way the candidates are then ranked by the exact scores written to
the heatmap, ties broken by pixel index (row-major in the grid), so both paths give the
same places, and each place's score is the heatmap's value at that pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import Array
from .progress import Progress

# faiss and NumPy add up 64 products in different orders: scores differ by ~1e-6. A faiss
# candidate set is widened by this much so that it surely holds NumPy's top M.
FAISS_TOLERANCE = 1e-4
# Beyond this many candidates per block the separation guarantee is dropped (logged), to
# keep memory bounded for very large separations.
MAX_CANDIDATES = 2_000_000


def load_faiss() -> Any:
    """The faiss module, or None when it is not importable (it is optional)."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def neighbours_within(separation_px: float) -> int:
    """N_r: how many other pixels have their centre closer than ``separation_px`` to a pixel's."""
    if separation_px <= 0:
        return 0
    reach = int(math.ceil(separation_px))
    d = np.arange(-reach, reach + 1, dtype=np.float64)
    d2 = d[:, None] ** 2 + d[None, :] ** 2
    return int((d2 < separation_px**2).sum()) - 1


def candidates_needed(k: int, separation_px: float) -> int:
    """M = K x (N_r + 1): candidates per block that make the greedy selection exact."""
    return int(k) * (neighbours_within(separation_px) + 1)


@dataclass
class Place:
    """One selected place: grid row/column, its score, and its rank (1 = best)."""

    rank: int
    row: int
    col: int
    score: float


def _rank(ids: Array, scores: Array, limit: int) -> tuple[Array, Array]:
    """The ``limit`` best (score descending, then id ascending) of ids/scores, in that order."""
    if ids.size > limit:
        # Everything tied with the limit-th score is kept before ordering, so the cut is by id.
        kth = np.partition(scores, ids.size - limit)[ids.size - limit]
        keep = scores >= kth
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores.astype(np.float64)))[:limit]
    return ids[order], scores[order]


class TopKSearch:
    """Streams blocks of scores and returns the K best places at least ``separation_px`` apart.

    ``queries`` (q, bands) are vectors whose inner products never exceed the score, so that
    each query's M-th best inner product is a lower bound of the M-th best score. That holds
    for a single linear query (mean of exemplars, with or without negatives: the score is
    the inner product) and for the maximum over exemplars without negatives. Give ``None``
    for any other score (the maximum with negatives): the bound then comes from the scores
    with NumPy.
    """

    def __init__(
        self,
        k: int,
        separation_px: float,
        width: int,
        queries: Array | None = None,
        use_faiss: bool | None = None,
        progress: Progress | None = None,
    ):
        self.k = int(k)
        self.separation_px = float(max(separation_px, 0.0))
        self.width = int(width)
        self.queries = None if queries is None else np.ascontiguousarray(queries, dtype=np.float32)
        self.progress = progress or Progress()
        self.faiss: Any = load_faiss() if use_faiss in (None, True) else None
        if self.queries is not None and self.faiss is None and use_faiss is None:
            self.progress.info(
                "faiss is not installed: the top-k search uses NumPy instead (same places, slower on large extents)."
            )
        self.m = candidates_needed(self.k, self.separation_px)
        self.exact = self.m <= MAX_CANDIDATES
        if not self.exact:
            self.m = MAX_CANDIDATES
            self.progress.warning(
                f"The minimum separation asks for more than {MAX_CANDIDATES:,} candidates per block; the "
                "top-k places keep the separation but may miss a few places the exact search would find."
            )
        self.pool_ids = np.zeros(0, dtype=np.int64)
        self.pool_scores = np.zeros(0, dtype=np.float32)

    @property
    def method(self) -> str:
        return "faiss" if (self.faiss is not None and self.queries is not None) else "numpy"

    def add_block(self, ids: Array, scores: Array, vectors: Array | None = None) -> None:
        """One block: global pixel ids (row * width + col), exact scores, unit vectors (n, bands)."""
        if self.k <= 0 or ids.size == 0:
            return
        if self.method == "faiss" and vectors is not None and ids.size > self.m:
            local = self._faiss_candidates(vectors, scores)
            ids, scores = ids[local], scores[local]
        self.merge(*_rank(ids, scores, self.m))

    def merge(self, ids: Array, scores: Array) -> None:
        """Add candidates (another search's pool, or a block's best): the pool stays the top M
        of everything added, whatever the order, so pools of separate searches merge exactly."""
        self.pool_ids, self.pool_scores = _rank(
            np.concatenate([self.pool_ids, ids]), np.concatenate([self.pool_scores, scores]), self.m
        )

    def _faiss_candidates(self, vectors: Array, scores: Array) -> Array:
        """Local indices of a superset of the block's top M, bounded with faiss inner products.

        faiss finds each query's M-th best inner product over the block's vectors (the flat
        inner-product search of ``IndexFlatIP``, run on the array in place rather than copied
        into an index). No pixel of the top M by score scores below the highest of those,
        less the tolerance that covers faiss's rounding; every pixel above that bound is kept.
        """
        faiss = self.faiss
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        best, _ = faiss.knn(self.queries, vectors, self.m, metric=faiss.METRIC_INNER_PRODUCT)
        bound = float(best[:, -1].max()) - FAISS_TOLERANCE
        return np.flatnonzero(scores >= bound)

    def places(self) -> list[Place]:
        """Greedy selection over the merged candidates: best first, then the best far enough away."""
        ids, scores = self.pool_ids, self.pool_scores
        rows = ids // self.width
        cols = ids % self.width
        alive = np.ones(ids.size, dtype=bool)
        limit2 = self.separation_px**2
        out: list[Place] = []
        start = 0
        while len(out) < self.k:
            self.progress.check_cancelled()
            nxt = np.flatnonzero(alive[start:])
            if nxt.size == 0:
                break
            i = start + int(nxt[0])
            out.append(Place(len(out) + 1, int(rows[i]), int(cols[i]), float(scores[i])))
            alive[i] = False
            if limit2 > 0:
                alive &= (rows - rows[i]) ** 2 + (cols - cols[i]) ** 2 >= limit2
            start = i + 1
        return out
