"""Scale-out benchmark: top 0.1 % by margin from N records x 10 classes, single process vs Dask workers.

Writes sharded Parquet (fixed-size list column, float16 or float32) generated here, then times
``alloop.scale.score_top_k`` single-process (in a fresh subprocess) and on LocalCluster with 1 and 2 workers
(``threads_per_worker=1``), each in a fresh cluster so peak RSS per worker is that run's. Every distributed
result is checked to equal the single-process ids. Also times 100 simulated campaigns, serial vs 2 workers.

    python benchmarks/scale.py --sizes 1e6 1e7 --dtypes float32 float16 --campaigns 100
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
t = time.perf_counter(); sel = score_top_k(sys.argv[1], "margin", int(sys.argv[2]), rows_per_piece=int(sys.argv[3]))
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "ids": sel.ids.tolist()}))
"""


def single(path: str, k: int, rows_per_piece: int) -> dict:
    args = [sys.executable, "-c", _SINGLE, path, str(k), str(rows_per_piece)]
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


def on_cluster(path: str, k: int, workers: int, rows_per_piece: int) -> dict:
    with cluster_client(f"local:{workers}") as client:
        client.run(score_top_k, path + "/part-00000.parquet", "margin", 1)  # warm-up on every worker
        t = time.perf_counter()
        sel = score_top_k(path, "margin", k, cluster=client, rows_per_piece=rows_per_piece)
        dt = time.perf_counter() - t
        spin = max(client.run(_spin).values())  # all workers at once
        peaks = list(client.run(_peak_mb).values())
    return {"seconds": dt, "peak_mb_per_worker": max(peaks), "ids": sel.ids.tolist(), "spin_s": spin}


def campaigns(n: int) -> dict:
    kwargs = dict(model="naive-bayes", strategies=["margin", "random"], initial=10, batch=10, budget=100,
                  seeds=n // 2, test_size=0.3)
    run_simulation_on_cluster("digits", **dict(kwargs, seeds=1))  # warm-up
    t = time.perf_counter()
    serial = run_simulation_on_cluster("digits", **kwargs)
    t_serial = time.perf_counter() - t
    with cluster_client("local:2") as client:
        d = load_dataset("digits")
        client.run(_campaign_task, d, "naive-bayes", "margin", 0, 10, 10, 100, 0.3)  # warm-up on every worker
        t = time.perf_counter()
        par = run_simulation_on_cluster("digits", cluster=client, **kwargs)
        t_par = time.perf_counter() - t
    same = all(serial["results"][s]["aubc_per_seed"] == par["results"][s]["aubc_per_seed"] for s in serial["results"])
    return {"campaigns": n, "protocol": "digits · naive-bayes · margin+random · initial 10, batch 10, budget 100",
            "serial_s": t_serial, "two_workers_s": t_par, "speedup": t_serial / t_par, "identical": same}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 1e8])
    ap.add_argument("--dtypes", nargs="+", default=["float16", "float32"])
    ap.add_argument("--campaigns", type=int, default=100)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default="benchmarks/results/scale.json")
    args = ap.parse_args()
    rows: list[dict] = []

    def save(sims: dict | None) -> None:
        result = {"date": "2026-11-23", "command": "python " + " ".join(sys.argv), "cpus": os.cpu_count(),
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
                rpp = min(1_000_000, max(1, n // 4))  # one file = one piece, but at least 4 pieces
                base = single(path, k, rpp)
                row = {"n": n, "dtype": dtype, "k": k, "rows_per_piece": rpp, "bytes_on_disk": nbytes,
                       "generate_s": gen_s,
                       "single": {x: base[x] for x in ("seconds", "peak_mb")}}
                for w in (1, 2):
                    r = on_cluster(path, k, w, rpp)
                    row[f"workers_{w}"] = {x: r[x] for x in ("seconds", "peak_mb_per_worker", "spin_s")}
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
                      f"CPU x{row['cpu_capacity_2_vs_1']:.2f} | "
                      f"equal {row['workers_1']['equal_to_single'] and row['workers_2']['equal_to_single']}",
                      flush=True)
                save(None)
    sims = campaigns(args.campaigns) if args.campaigns else None
    if sims:
        print(f"{sims['campaigns']} campaigns: serial {sims['serial_s']:.1f} s, "
              f"2 workers {sims['two_workers_s']:.1f} s,"
              f" x{sims['speedup']:.2f}, identical {sims['identical']}")
    save(sims)


if __name__ == "__main__":
    main()
