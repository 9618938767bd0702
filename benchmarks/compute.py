"""Neighbour index for SEALS candidates (issue 6): hnswlib vs faiss vs exact numpy on N × 64 float32 — build,
query (k = 10 for 1,000 queries), incremental add of 1% more records, recall@10 against exact search.

The active-learning part (compute saving off vs on) is ``benchmarks/compute_saving.py``.

    python benchmarks/compute.py --n 100000        # or: python benchmarks/compute_saving.py --part index
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def bench_index(n: int, dim: int = 64, n_query: int = 1000, k: int = 10) -> list[dict[str, float | str]]:
    from alloop.compute import NeighbourIndex

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n + n // 100, dim)).astype(np.float32)
    base, more = X[:n], X[n:]
    q = X[rng.choice(n, n_query, replace=False)]
    exact = NeighbourIndex(backend="numpy")
    exact.add(np.arange(n), base)
    truth = exact.query(q, k)
    rows = []
    for backend in ("hnswlib", "faiss", "numpy"):
        idx = NeighbourIndex(backend=backend)
        t0 = time.process_time()
        idx.add(np.arange(n), base)
        build = time.process_time() - t0
        t0 = time.process_time()
        got = idx.query(q, k)
        query = time.process_time() - t0
        t0 = time.process_time()
        idx.add(np.arange(n, n + more.shape[0]), more)
        add = time.process_time() - t0
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got.tolist(), truth.tolist(), strict=True)]))
        rows.append(
            {
                "backend": backend,
                "build_cpu_s": build,
                "query_cpu_s": query,
                "add_1pct_cpu_s": add,
                "recall_at_10": recall,
            }
        )
        print(
            f"{backend:8s} build {build:7.2f}s  query {query:6.3f}s  add 1% {add:6.3f}s  recall@10 {recall:.3f}",
            flush=True,
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=100000)
    args = p.parse_args()
    RESULTS.mkdir(exist_ok=True)
    out = {"command": " ".join(sys.argv), "date": "2026-11-24", "rows": bench_index(args.n)}
    (RESULTS / f"compute_index_{args.n}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
