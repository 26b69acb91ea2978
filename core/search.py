"""Top-k distinct places: the K highest-scoring pixels at least a minimum distance apart.

The extent is searched block by block. Each block contributes its M best pixels, M = K x
(N_r + 1) where N_r is the number of pixels closer than the separation r to a pixel: the
greedy selection (take the best remaining pixel, drop everything closer than r to it)
removes at most N_r pixels per pick, so it never looks further down the global ranking
than M places, and the global top M is contained in the union of the blocks' top M. The
running pool of candidates is cut to the global top M after every block, so memory holds
M candidates whatever the extent.

A block's candidates come from faiss (``IndexFlatIP`` over the block's unit vectors, one
search per query vector) when faiss is importable, else from NumPy (``argpartition`` on the
block's scores). Either way the candidates are then ranked by the exact scores written to
the heatmap, ties broken by pixel index (row-major in the grid), so both paths give the
same places, and each place's score is the heatmap's value at that pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .progress import Progress

# faiss and NumPy add up 64 products in different orders: scores differ by ~1e-6. A faiss
# candidate set is widened by this much so that it surely holds NumPy's top M.
FAISS_TOLERANCE = 1e-4
# Beyond this many candidates per block the separation guarantee is dropped (logged), to
# keep memory bounded for very large separations.
MAX_CANDIDATES = 2_000_000


def load_faiss():
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


def _rank(ids: np.ndarray, scores: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
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

    ``queries`` (q, bands) are vectors whose inner products bound the score: the block's
    top M by score must lie among the union of each query's top M by inner product. That
    holds for a single linear query (mean of exemplars, with or without negatives) and for
    the maximum over exemplars without negatives. Give ``None`` for any other score (the
    maximum with negatives): candidates then come from the scores with NumPy.
    """

    def __init__(
        self,
        k: int,
        separation_px: float,
        width: int,
        queries: np.ndarray | None = None,
        use_faiss: bool | None = None,
        progress: Progress | None = None,
    ):
        self.k = int(k)
        self.separation_px = float(max(separation_px, 0.0))
        self.width = int(width)
        self.queries = None if queries is None else np.ascontiguousarray(queries, dtype=np.float32)
        self.progress = progress or Progress()
        self.faiss = load_faiss() if use_faiss in (None, True) else None
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

    def add_block(self, ids: np.ndarray, scores: np.ndarray, vectors: np.ndarray | None = None) -> None:
        """One block: global pixel ids (row * width + col), exact scores, unit vectors (n, bands)."""
        if self.k <= 0 or ids.size == 0:
            return
        if self.method == "faiss" and vectors is not None and ids.size > self.m:
            local = self._faiss_candidates(vectors)
            ids, scores = ids[local], scores[local]
        ids, scores = _rank(ids, scores, self.m)
        self.pool_ids, self.pool_scores = _rank(
            np.concatenate([self.pool_ids, ids]), np.concatenate([self.pool_scores, scores]), self.m
        )

    def _faiss_candidates(self, vectors: np.ndarray) -> np.ndarray:
        """Local indices of a superset of the block's top M, from inner products in faiss."""
        faiss = self.faiss
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        found = []
        for q in self.queries:
            q = q[None, :]
            best, _ = index.search(q, self.m)
            # Widen to everything within the tolerance of the M-th inner product, so that
            # rounding differences with the exact scores cannot drop a candidate.
            _, _, labels = index.range_search(q, float(best[0, -1]) - FAISS_TOLERANCE)
            found.append(labels)
        return np.unique(np.concatenate(found)).astype(np.int64)

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
