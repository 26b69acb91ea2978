"""Benchmark: top-k search over 10 million 64-d unit vectors.

- exact: faiss IndexFlatIP against NumPy (matrix product + argpartition), same queries;
- binary codes: the sign bit of each of the 64 dimensions (8 bytes a vector, 32x smaller than
  float32), Hamming distance with faiss IndexBinaryFlat; recall@10 against the exact top 10,
  alone and with the 100 best by Hamming re-scored exactly (the usual binary + rescoring).

Vectors: 10 M random unit vectors, float32, generated (2.56 GB; each variant runs in its own
process).
Queries: 32 vectors of the same distribution. Recall of binary codes on real AEF vectors too:
the 10,609 vectors of tests/data/aef_wisconsin_2024_10m.tif, 32 of them as queries against
the others (random vectors are the hard case: real embeddings cluster). Search time is timed inside the process (generation excluded); peak
RSS is the process's.
Writes bench-results/topk.json and .md.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

N = int(os.environ.get("BENCH_TOPK_N", "10000000"))
DIM = 64
QUERIES = 32
K = 10
RESCORE = 100


def _vectors(kind: str, n: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    out = np.empty((n, DIM), dtype=np.float32)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        v = rng.standard_normal((m, DIM), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[i : i + m] = v
    return out


def _real_recall() -> dict:
    """Binary-code recall@10 on real AEF vectors (the Wisconsin test raster)."""
    import faiss
    import numpy as np
    import rasterio

    from earth_embeddings.core.quant import LUT

    with rasterio.open(bl.REPO / "tests" / "data" / "aef_wisconsin_2024_10m.tif") as ds:
        q = ds.read().reshape(ds.count, -1)
    ok = ~(q == -128).any(axis=0)
    v = LUT[q[:, ok].view(np.uint8)].T.astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rng = np.random.default_rng(3)
    pick = rng.choice(len(v), QUERIES, replace=False)
    xq, xb = v[pick], np.delete(v, pick, axis=0)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(xb)
    _, ref = exact.search(xq, K)
    b = faiss.IndexBinaryFlat(DIM)
    b.add(np.packbits(xb > 0, axis=1))
    _, got = b.search(np.packbits(xq > 0, axis=1), K)
    _, cand = b.search(np.packbits(xq > 0, axis=1), RESCORE)
    rescored = np.einsum("qkd,qd->qk", xb[cand], xq)
    rer = np.take_along_axis(cand, np.argsort(-rescored, axis=1)[:, :K], 1)
    return {
        "real_n": int(len(xb)),
        "real_recall_at_10": float(np.mean([len(set(a) & set(c)) / K for a, c in zip(got, ref)])),
        "real_recall_at_10_rescored": float(np.mean([len(set(a) & set(c)) / K for a, c in zip(rer, ref)])),
    }


def child(variant: str, kind: str):
    import faiss
    import numpy as np

    xb = _vectors(kind, N, 1)
    xq = _vectors(kind, QUERIES, 2)
    out = {"n": N, "queries": QUERIES, "k": K, "kind": kind}
    if variant == "faiss":
        t0 = time.perf_counter()
        index = faiss.IndexFlatIP(DIM)
        index.add(xb)
        _, ids = index.search(xq, K)
        out["search_s"] = time.perf_counter() - t0
    elif variant == "numpy":
        t0 = time.perf_counter()
        ids = np.empty((QUERIES, K), dtype=np.int64)
        chunk = 1_000_000  # scores of all queries at once would be 1.3 GB more
        best_s = np.full((QUERIES, 0), -np.inf, dtype=np.float32)
        best_i = np.zeros((QUERIES, 0), dtype=np.int64)
        for i in range(0, N, chunk):
            s = xq @ xb[i : i + chunk].T
            part = np.argpartition(-s, K, axis=1)[:, :K]
            best_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], axis=1)
            best_i = np.concatenate([best_i, part + i], axis=1)
        order = np.argsort(-best_s, axis=1)[:, :K]
        ids = np.take_along_axis(best_i, order, 1)
        out["search_s"] = time.perf_counter() - t0
    elif variant == "binary":
        index = faiss.IndexFlatIP(DIM)
        index.add(xb)
        _, exact = index.search(xq, K)
        del index
        t0 = time.perf_counter()
        codes = np.packbits(xb > 0, axis=1)
        qcodes = np.packbits(xq > 0, axis=1)
        out["encode_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        bindex = faiss.IndexBinaryFlat(DIM)
        bindex.add(codes)
        _, ids = bindex.search(qcodes, K)
        out["search_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, cand = bindex.search(qcodes, RESCORE)
        rescored = np.einsum("qkd,qd->qk", xb[cand], xq)
        reranked = np.take_along_axis(cand, np.argsort(-rescored, axis=1)[:, :K], 1)
        out["search_rescore_s"] = time.perf_counter() - t0
        out["recall_at_10"] = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, exact)]))
        out["recall_at_10_rescored"] = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(reranked, exact)]))
        out["index_mb"] = codes.nbytes / 2**20
        out.update(_real_recall())
    if variant in ("faiss", "numpy"):
        out["ids_head"] = ids[:2].tolist()
    bl.child_result(out)


def main():
    me = str(Path(__file__).resolve())
    result = {}
    rows = []
    for kind in ("random",):
        print(f"== {kind}", flush=True)
        m = bl.measure({v: [bl.PY, me, "child", v, kind] for v in ("faiss", "numpy", "binary")}, env=bl.child_env())
        same = m["faiss"]["payload"]["ids_head"] == m["numpy"]["payload"]["ids_head"]
        result[kind] = m
        med = {v: statistics.median(p["search_s"] for p in m[v]["payloads"]) for v in ("faiss", "numpy", "binary")}
        ratio = statistics.median(
            a["search_s"] / b["search_s"] for a, b in zip(m["numpy"]["payloads"], m["faiss"]["payloads"])
        )
        b = m["binary"]["payload"]
        resc = statistics.median(p["search_rescore_s"] for p in m["binary"]["payloads"])
        rows += [
            [
                kind,
                "faiss IndexFlatIP (exact)",
                f"{med['faiss']:.2f}",
                "1.00",
                f"{m['faiss']['median_peak_rss_mb']:.0f}",
            ],
            [
                kind,
                "NumPy matmul + argpartition (exact)",
                f"{med['numpy']:.2f}",
                f"1.00 ({'same' if same else 'DIFFERENT'} ids)",
                f"{m['numpy']['median_peak_rss_mb']:.0f}",
            ],  # fmt: skip
            [
                kind,
                "binary, faiss IndexBinaryFlat (Hamming)",
                f"{med['binary']:.2f}",
                f"{b['recall_at_10']:.3f}",
                f"{m['binary']['median_peak_rss_mb']:.0f} (index {b['index_mb']:.0f} MB)",
            ],  # fmt: skip
            [kind, f"binary top {RESCORE}, re-scored exactly", f"{resc:.2f}", f"{b['recall_at_10_rescored']:.3f}", ""],
            [f"real AEF ({b['real_n']:,})", "binary (Hamming)", "", f"{b['real_recall_at_10']:.3f}", ""],
            [
                f"real AEF ({b['real_n']:,})",
                f"binary top {RESCORE}, re-scored",
                "",
                f"{b['real_recall_at_10_rescored']:.3f}",
                "",
            ],  # fmt: skip
        ]
        result[kind + "_numpy_over_faiss"] = ratio
    bl.write(
        "topk",
        result,
        "\n".join(
            [
                "# Top-k over 10 M vectors: faiss, NumPy, binary codes",
                "",
                f"{N / 1e6:.0f} M unit vectors x {DIM} float32 (2.56 GB in memory: each variant in its own process), "
                f"{QUERIES} queries, k = {K}; search seconds timed in the process (generation excluded), median of "
                f"{bl.RUNS}. NumPy / faiss, paired: {result['random_numpy_over_faiss']:.1f}x. Binary codes: sign bits, 8 bytes a vector. "
                "Peak RSS includes the generated float32 vectors (and, for binary, the exact index for the recall).",
                "",
                bl.table(["vectors", "method", "search s (32 queries)", "recall@10", "peak RSS MB"], rows),
            ]
        ),
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
