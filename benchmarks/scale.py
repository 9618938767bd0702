"""Scale-out benchmark: top 0.1 % by margin from N records x 10 classes, single process vs Dask workers.

Writes sharded Parquet (fixed-size list column, float16 or float32) generated here, then times
``alloop.scale.score_top_k`` single-process (in a fresh subprocess) and on LocalCluster with 1 and 2 workers
(``threads_per_worker=1``), each in a fresh cluster so peak RSS per worker is that run's. Every distributed
result is checked to equal the single-process ids. Also times 100 simulated campaigns, serial vs 2 workers.
Each selection is timed ``--repeat`` times after a warm-up on every worker (the same warm-up for all three); the
best time is reported. "worker CPU" is the CPU seconds the worker processes spent (all their threads) during
the best run: equal CPU for 1 and 2 workers means the work split cleanly; the wall-time ratio then shows how
much of a second core the machine really gave (also measured directly by "CPU 2w / 1w").

    python benchmarks/scale.py --sizes 1e6 1e7 --dtypes float32 float16 --campaigns 100
    python benchmarks/scale.py --quick        # 1e7 float32 and 100 campaigns only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from alloop.datasets import load_dataset
from alloop.scale import cluster_client, run_simulation_on_cluster, score_top_k, write_snapshot_parts
from alloop.scale._cluster import in_task
from alloop.scale._simulate import _campaign_task

ROWS_PER_FILE = 1_000_000
N_CLASSES = 10


def generate(out: str, n: int, dtype: str, seed: int = 0) -> int:
    """Random softmax rows, written file by file (memory bounded by one file). Returns bytes on disk."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, ROWS_PER_FILE):
        m = min(ROWS_PER_FILE, n - start)
        logits = rng.standard_normal((m, N_CLASSES), dtype=np.float32) * 2
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        q = p.astype(dtype)
        if dtype == "float16":  # float16 rounding can move a row sum by > 1e-3: put the residue on the top class
            top = q.argmax(axis=1)
            rest = q.astype(np.float64).sum(axis=1) - q[np.arange(m), top]
            q[np.arange(m), top] = (1.0 - rest).astype(np.float16)
        write_snapshot_parts(out, np.arange(start, start + m, dtype=np.int64), q,
                             rows_per_file=m, row_group_rows=250_000, start=start // ROWS_PER_FILE)
    return sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))


_SINGLE = """
import json, resource, sys, time
from alloop.scale import score_top_k
score_top_k(sys.argv[1] + "/part-00000.parquet", "margin", 1)  # warm-up: imports, registry, numba cache
best, cpu = float("inf"), 0.0
for _ in range(int(sys.argv[4])):
    t, c = time.perf_counter(), time.process_time()
    sel = score_top_k(sys.argv[1], "margin", int(sys.argv[2]), rows_per_piece=int(sys.argv[3]))
    if time.perf_counter() - t < best:
        best, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"seconds": best, "cpu_s": cpu, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "ids": sel.ids.tolist()}))
"""


def single(path: str, k: int, rows_per_piece: int, repeat: int) -> dict:
    args = [sys.executable, "-c", _SINGLE, path, str(k), str(rows_per_piece), str(repeat)]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spin() -> float:
    """Fixed CPU work (about 0.5 s on an idle core); its wall time shows how much CPU a worker really gets."""
    t = time.perf_counter()
    x = np.arange(2_000_000, dtype=np.float64)
    for _ in range(40):
        x = np.sqrt(x * x + 1.0)
    return time.perf_counter() - t


def _timed_piece(piece, k: int) -> tuple[str, float, float]:
    """One piece's top-k as in score_top_k, timed: (worker, CPU s on the task's thread, CPU s of the process)."""
    from distributed import get_worker

    from alloop.scale._select import _piece_top_k

    t, c = time.thread_time(), time.process_time()
    _piece_top_k(piece, "margin", k, 0, 0)
    return get_worker().address, time.thread_time() - t, time.process_time() - c


def task_balance(client, path: str, k: int, rows_per_piece: int) -> dict:
    """Per-task CPU (load-independent): total, the busiest worker's share, and the share run off the task thread.

    ``ideal_speedup`` = total task CPU / busiest worker's task CPU: the 2w/1w wall ratio a machine with a free
    core per worker would give, before scheduling and merge overhead.
    """
    from alloop.scale import list_pieces
    from alloop.scale._cluster import gather_in_order, submit

    out = gather_in_order([submit(client, _timed_piece, p, k) for p in list_pieces(path, rows_per_piece)])
    per_worker: dict[str, float] = {}
    for w, th, _ in out:
        per_worker[w] = per_worker.get(w, 0.0) + th
    total, proc = sum(th for _, th, _ in out), sum(pr for _, _, pr in out)
    return {"tasks": len(out), "task_cpu_s": total, "busiest_worker_cpu_s": max(per_worker.values()),
            "ideal_speedup": total / max(per_worker.values()), "on_task_thread": total / proc if proc else 1.0}


def decode_threads(path: str, pieces: int = 3) -> dict:
    """CPU per 1 M-row piece (read + decode + margin top-k) and the share of it on the calling thread, with
    Arrow's thread pool (what tasks did before 2026-11-24) and without it (what tasks do now)."""
    import pyarrow.parquet as pq

    from alloop._select import select
    from alloop.scale import list_pieces
    from alloop.scale._parquet import split_columns

    select(np.full((2, 4), 0.25, dtype=np.float32), 1, "margin")  # warm-up: numba kernel load
    out = {}
    for threads in (True, False):
        th = pr = 0.0
        chosen = list_pieces(path, 1_000_000)[:pieces]
        for p in chosen:
            t, c = time.thread_time(), time.process_time()
            tab = pq.ParquetFile(p.path, memory_map=True).read_row_groups(list(p.row_groups), use_threads=threads)
            select(split_columns(tab, p.path)[1], 1000, "margin")
            th, pr = th + time.thread_time() - t, pr + time.process_time() - c
        out["arrow_threads" if threads else "task_thread_only"] = {
            "cpu_s_per_piece": pr / len(chosen), "on_calling_thread": th / pr if pr else 1.0}
    return out


def _worker_cpu(client) -> float:
    return sum(client.run(time.process_time).values())


def on_cluster(path: str, k: int, workers: int, rows_per_piece: int, repeat: int) -> dict:
    with cluster_client(f"local:{workers}") as client:
        # warm-up on every worker, through the same task wrapper as the timed runs (one thread per task)
        client.run(in_task, score_top_k, path + "/part-00000.parquet", "margin", 1)
        best, cpu = float("inf"), 0.0
        for _ in range(repeat):
            c = _worker_cpu(client)
            t = time.perf_counter()
            sel = score_top_k(path, "margin", k, cluster=client, rows_per_piece=rows_per_piece)
            dt = time.perf_counter() - t
            if dt < best:
                best, cpu = dt, _worker_cpu(client) - c
        balance = task_balance(client, path, k, rows_per_piece)
        spin = max(client.run(_spin).values())  # all workers at once
        peaks = list(client.run(_peak_mb).values())
    return {"seconds": best, "worker_cpu_s": cpu, "peak_mb_per_worker": max(peaks), "ids": sel.ids.tolist(),
            "spin_s": spin, "balance": balance}


def campaigns(n: int) -> dict:
    kwargs = dict(model="gaussian-nb", strategies=["margin", "random"], initial=10, batch=10, budget=100,
                  seeds=n // 2, test_size=0.3)
    run_simulation_on_cluster("digits", **dict(kwargs, seeds=1))  # warm-up
    t = time.perf_counter()
    serial = run_simulation_on_cluster("digits", **kwargs)
    t_serial = time.perf_counter() - t
    with cluster_client("local:2") as client:
        d = load_dataset("digits")
        client.run(_campaign_task, d, "gaussian-nb", "margin", 0, 10, 10, 100, 0.3)  # warm-up on every worker
        t = time.perf_counter()
        par = run_simulation_on_cluster("digits", cluster=client, **kwargs)
        t_par = time.perf_counter() - t
    same = all(serial["results"][s]["aubc_per_seed"] == par["results"][s]["aubc_per_seed"] for s in serial["results"])
    return {"campaigns": n, "protocol": "digits · gaussian-nb · margin+random · initial 10, batch 10, budget 100",
            "serial_s": t_serial, "two_workers_s": t_par, "speedup": t_serial / t_par, "identical": same}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 1e8])
    ap.add_argument("--dtypes", nargs="+", default=["float16", "float32"])
    ap.add_argument("--campaigns", type=int, default=100)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per configuration (the best is reported)")
    ap.add_argument("--rows-per-piece", type=int, default=None,
                    help="default min(5e5, N/4): >= 4 pieces, and many per worker so they split evenly")
    ap.add_argument("--quick", action="store_true", help="only 1e7 float32 and 100 campaigns")
    ap.add_argument("--out", default=None, help="default benchmarks/results/scale.json (scale_quick.json with --quick)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.dtypes, args.campaigns = [1e7], ["float32"], 100
    args.out = args.out or f"benchmarks/results/scale{'_quick' if args.quick else ''}.json"
    rows: list[dict] = []

    def save(sims: dict | None) -> None:
        result = {"date": "2026-11-24", "command": "python " + " ".join(sys.argv), "cpus": os.cpu_count(),
                  "selection": rows, "simulations": sims}
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)

    for n in (int(s) for s in args.sizes):
        for dtype in args.dtypes:
            with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
                path = os.path.join(tmp, "snap")
                t = time.perf_counter()
                nbytes = generate(path, n, dtype)
                gen_s = time.perf_counter() - t
                k = max(1, n // 1000)
                rpp = args.rows_per_piece or min(500_000, max(1, n // 4))  # 2 row groups; >= 4 pieces
                base = single(path, k, rpp, args.repeat)
                why = decode_threads(path)
                row = {"n": n, "dtype": dtype, "k": k, "rows_per_piece": rpp, "bytes_on_disk": nbytes,
                       "generate_s": gen_s, "load_average": os.getloadavg()[0], "decode_threads": why,
                       "single": {x: base[x] for x in ("seconds", "cpu_s", "peak_mb")}}
                for w in (1, 2):
                    r = on_cluster(path, k, w, rpp, args.repeat)
                    row[f"workers_{w}"] = {x: r[x] for x in ("seconds", "worker_cpu_s", "peak_mb_per_worker", "spin_s",
                                                             "balance")}
                    row[f"workers_{w}"]["equal_to_single"] = r["ids"] == base["ids"]
                for key in ("single", "workers_1", "workers_2"):
                    row[key]["records_per_s"] = n / row[key]["seconds"]
                    row[key]["gb_per_s"] = nbytes / 1e9 / row[key]["seconds"]
                row["speedup_2_vs_1"] = row["workers_1"]["seconds"] / row["workers_2"]["seconds"]
                # 2 x (fixed work alone on 1 worker) / (same work on each of 2 workers at once): CPU actually available
                row["cpu_capacity_2_vs_1"] = 2 * row["workers_1"]["spin_s"] / row["workers_2"]["spin_s"]
                rows.append(row)
                print(f"{n:>11,} {dtype:8} {nbytes / 1e9:6.2f} GB | single {row['single']['seconds']:7.2f} s "
                      f"{row['single']['peak_mb']:7.0f} MB | 1w {row['workers_1']['seconds']:7.2f} s "
                      f"{row['workers_1']['peak_mb_per_worker']:7.0f} MB | 2w {row['workers_2']['seconds']:7.2f} s "
                      f"{row['workers_2']['peak_mb_per_worker']:7.0f} MB | 2w/1w x{row['speedup_2_vs_1']:.2f} | "
                      f"CPU x{row['cpu_capacity_2_vs_1']:.2f} | worker CPU 1w {row['workers_1']['worker_cpu_s']:.2f} s "
                      f"2w {row['workers_2']['worker_cpu_s']:.2f} s | task CPU 2w: ideal x"
                      f"{row['workers_2']['balance']['ideal_speedup']:.2f}, "
                      f"{100 * row['workers_2']['balance']['on_task_thread']:.0f} % on task thread | "
                      f"load {row['load_average']:.1f} | "
                      f"equal {row['workers_1']['equal_to_single'] and row['workers_2']['equal_to_single']}",
                      flush=True)
                print("   per piece: " + "; ".join(f"{m}: {v['cpu_s_per_piece']:.3f} CPU s, "
                                                 f"{100 * v['on_calling_thread']:.0f} % on the calling thread"
                                                 for m, v in why.items()), flush=True)
                save(None)
    sims = campaigns(args.campaigns) if args.campaigns else None
    if sims:
        print(f"{sims['campaigns']} campaigns: serial {sims['serial_s']:.1f} s, "
              f"2 workers {sims['two_workers_s']:.1f} s,"
              f" x{sims['speedup']:.2f}, identical {sims['identical']}")
    save(sims)


if __name__ == "__main__":
    main()
