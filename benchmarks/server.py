"""Engine service throughput: snapshot ingest and recommendation latency, next to the embedded engine.

    .venv/bin/python benchmarks/server.py [--n 1000000] [--classes 10] [--requests 30] [--backends sqlite,postgres]
    .venv/bin/python benchmarks/server.py --quick     # 200,000 records, 5 requests, SQLite only
    .venv/bin/python benchmarks/server.py --workers 2,1,3 --chunk-rows 125000,250000   # upload variants side by side

For each backend a real `alloop serve` process is started on 127.0.0.1 (PostgreSQL: a throwaway cluster);
a RemoteEngine registers n record ids, uploads one INFER pass (n x C float32) as Arrow IPC chunks and
commits it (loop 0: History arrays are allocated; loop 1: a second pass over the same pool, the steady
state); then asks for k=100 recommendations repeatedly. Each variant (concurrent chunk uploads ``--workers``,
rows per chunk ``--chunk-rows``; the first of each is RemoteEngine's default) gets a fresh server process, so
every loop 0 pays the first-pass History allocation as a user's would. The embedded SelectionEngine does the same
work in-process, side by side, so the table reports ratios. Writes benchmarks/results/server.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from tempfile import mkdtemp

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server_util import ADMIN, Server  # noqa: E402

from alloop import SelectionEngine, Snapshot  # noqa: E402
from alloop.loop import RemoteEngine  # noqa: E402


def _snapshot(n: int, c: int) -> Snapshot:
    rng = np.random.default_rng(0)
    p = rng.random((n, c), dtype=np.float32)
    p /= p.sum(axis=1, keepdims=True)
    return Snapshot(ids=np.arange(n, dtype=np.int64), probs=p)


def _timed(fn, *args, **kw) -> float:
    t0 = time.perf_counter()
    fn(*args, **kw)
    return time.perf_counter() - t0


def measure(eng, snap: Snapshot, requests: int) -> dict[str, float]:
    """The same work on the embedded or the remote engine: register, ingest twice, ``requests`` recommendations."""
    t_reg = _timed(eng.add_records, snap.ids)
    t_ing = _timed(eng.ingest, snap, loop=0)
    t_ing2 = _timed(eng.ingest, snap, loop=1)
    lat = [_timed(eng.recommend, 100, loop=2 + r) for r in range(requests)]
    return {
        "register_s": t_reg,
        "ingest_s": t_ing,
        "ingest2_s": t_ing2,
        "p50_s": float(np.median(lat)),
        "p99_s": float(np.quantile(lat, 0.99)),
    }


def embedded(snap: Snapshot, requests: int) -> dict[str, float]:
    return measure(SelectionEngine("margin", classes=list(range(snap.n_classes))), snap, requests)


def remote(snap: Snapshot, requests: int, db_url: str | None, workers: int, chunk_rows: int) -> dict[str, float]:
    srv = Server(Path(mkdtemp(prefix="alloop-bench-")), db_url=db_url).start()
    try:
        eng = RemoteEngine(
            srv.url, ADMIN, classes=list(range(snap.n_classes)), chunk_rows=chunk_rows, upload_workers=workers
        )
        try:
            return measure(eng, snap, requests)
        finally:
            eng.close()
    finally:
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--workers", default="1,2", help="concurrent chunk uploads to compare (first = default)")
    ap.add_argument("--chunk-rows", default="250000", help="rows per upload chunk to compare")
    ap.add_argument("--quick", action="store_true", help="200,000 records, 5 requests, SQLite only")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "server.json"))
    args = ap.parse_args()
    if args.quick:
        args.n, args.requests, args.backends = 200_000, 5, "sqlite"
    snap = _snapshot(args.n, args.classes)
    rows = {"embedded": embedded(snap, args.requests)}
    cluster = None
    try:
        for backend in args.backends.split(","):
            url = None
            if backend == "postgres" and cluster is None:
                from tests.pg_util import PostgresCluster

                cluster = PostgresCluster().start()
            for w in [int(v) for v in args.workers.split(",")]:
                for cr in [int(v) for v in args.chunk_rows.split(",")]:
                    if backend == "postgres":
                        url = cluster.create_database(f"bench_w{w}_c{cr}")
                    rows[f"{backend} w{w} c{cr // 1000}k"] = remote(snap, args.requests, url, w, cr)
    finally:
        if cluster is not None:
            cluster.stop()
    base = rows["embedded"]
    print(f"n = {args.n:,} records x {args.classes} classes (float32), k = 100, {args.requests} requests")
    print(
        f"{'engine':<20} {'loop0 rec/s':>13} {'loop1 rec/s':>13} {'loop0 x emb':>12} {'loop1 x emb':>12} "
        f"{'rec p50 ms':>11} {'rec p99 ms':>11} {'p50 x emb':>10}"
    )
    for name, r in rows.items():
        print(
            f"{name:<20} {args.n / r['ingest_s']:>13,.0f} {args.n / r['ingest2_s']:>13,.0f} "
            f"{r['ingest_s'] / base['ingest_s']:>12.2f} {r['ingest2_s'] / base['ingest2_s']:>12.2f} "
            f"{1e3 * r['p50_s']:>11.1f} {1e3 * r['p99_s']:>11.1f} {r['p50_s'] / base['p50_s']:>10.2f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(sys.argv)}
    out.write_text(json.dumps({"args": vars(args), **stamp, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
