"""Compute-saving active learning benchmark (issue 6).

Part A — neighbour index: hnswlib vs faiss vs exact numpy on N × 64 float32: build, query (k = 10 for 1,000
queries), incremental add of 1% more records, recall@10 against exact search.
Part B — label efficiency and compute: compute saving off (full retrain + full inference every loop) vs on
(WarmStartLearner + plan_inference + optionally SEALS), same seeds, paired. AUBC of test accuracy over the
labeling loops; CPU seconds of the whole run measured from outside (RUSAGE_CHILDREN around one subprocess per
run) and inside (process time per phase).

    python benchmarks/compute.py --part index --n 100000
    python benchmarks/compute.py --part al --dataset digits --model mlp --seeds 20
    python benchmarks/compute.py --part al --dataset synthetic --n 200000 --model logreg --seeds 10
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
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


# ---- one active-learning run (executed in a child process so that its CPU is measured from outside) ---------
def _data(dataset: str, n: int, seed: int):
    if dataset == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X.astype(np.float32) / 16.0
    else:
        from sklearn.datasets import make_classification

        X, y = make_classification(
            n_samples=n + 4000, n_features=64, n_informative=20, n_classes=4, n_clusters_per_class=2, random_state=1234
        )
        X = X.astype(np.float32)
    rng = np.random.default_rng([seed, 99])
    perm = rng.permutation(len(y))
    n_test = min(1000, len(y) // 4)
    n_val = min(1000, len(y) // 8)
    test, val, pool = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    return X, y, pool, val, test


def _estimator(model: str, seed: int):
    if model == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=500)
    from alloop.models import build_model

    return build_model(model, seed=seed)


def run_once(dataset: str, model: str, n: int, seed: int, saving: str, loops: int, batch: int, init: int) -> dict:
    from alloop.compute import InferencePolicy, WarmStartLearner, WarmStartPolicy, plan_inference
    from alloop.engine import SelectionEngine
    from alloop.loop import SklearnLearner
    from alloop.metadata import Snapshot

    X, y, pool, val, test = _data(dataset, n, seed)
    ids = np.arange(pool.size)
    Xp, yp = X[pool], y[pool]
    base = SklearnLearner(
        _estimator(model, seed), Xp, ids=ids, eval_X=X[val], eval_y=y[val], classes=sorted(set(y.tolist()))
    )
    on = saving != "off"
    learner = (
        WarmStartLearner(base, WarmStartPolicy(full_every=5, drift_threshold=0.02, warm_epochs=5, seed=seed))
        if on
        else base
    )
    strategy = (
        "seals(inner='margin', k_neighbours=20, random_slice=0.02, backend='auto')" if saving == "seals" else "margin"
    )
    engine = SelectionEngine(strategy, seed=seed, classes=sorted(set(y.tolist())))
    engine.add_records(ids)
    rng = np.random.default_rng(seed)
    labeled = np.sort(rng.choice(ids, size=init, replace=False))
    engine.observe_labels(labeled, yp[labeled])
    policy = InferencePolicy(refresh_every=4)
    accs, per_loop = [], []
    for loop in range(loops + 1):
        t0 = time.process_time()
        rep = learner.train(labeled, yp[labeled], warm_start=loop > 0)
        t_train = time.process_time() - t0
        probs = base.model.predict_proba(X[test])
        accs.append(float(np.mean(np.asarray(base.model.classes_)[probs.argmax(1)] == y[test])))
        if loop == loops:
            per_loop.append({"train_cpu_s": t_train, "records_trained": rep.n_records, "mode": rep.mode})
            break
        t0 = time.process_time()
        from alloop.records import RecordState

        cand = engine.pool.indices(RecordState.UNLABELED)
        if on and loop > 0:
            h = engine.history
            feats = h.features(cand)
            feats["last_loop"] = h.last_loop[cand].astype(np.float64)
            cand = cand[plan_inference(feats, loop, policy)]
        cid = engine.pool.ids_at(cand)
        snap = learner.infer(cid)
        if saving == "seals":
            snap = Snapshot(ids=snap.ids, probs=snap.probs, embeddings=Xp[cid], classes=snap.classes)
        engine.ingest(snap, loop=loop)
        t_infer = time.process_time() - t0
        t0 = time.process_time()
        sel = engine.recommend(batch)
        t_select = time.process_time() - t0
        engine.observe_labels(sel.ids, yp[sel.ids])
        labeled = np.concatenate([labeled, sel.ids])
        per_loop.append(
            {
                "train_cpu_s": t_train,
                "infer_cpu_s": t_infer,
                "select_cpu_s": t_select,
                "records_trained": rep.n_records,
                "records_inferred": int(cid.size),
                "mode": rep.mode,
            }
        )
    aubc = float(np.trapezoid(accs, dx=1.0) / max(len(accs) - 1, 1)) if len(accs) > 1 else accs[0]
    return {"aubc": aubc, "final_acc": accs[-1], "loops": per_loop}


def _child(args: argparse.Namespace) -> None:
    out = run_once(args.dataset, args.model, args.n, args.seed, args.saving, args.loops, args.batch, args.init)
    print(json.dumps(out))


def run_measured(args: argparse.Namespace, seed: int, saving: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--dataset",
        args.dataset,
        "--model",
        args.model,
        "--n",
        str(args.n),
        "--seed",
        str(seed),
        "--saving",
        saving,
        "--loops",
        str(args.loops),
        "--batch",
        str(args.batch),
        "--init",
        str(args.init),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["outside_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out


def bench_al(args: argparse.Namespace) -> dict:
    modes = ["off", "on"] + (["seals"] if args.seals else [])
    res: dict[str, list[dict]] = {m: [] for m in modes}
    for seed in range(args.seeds):
        for m in modes:
            res[m].append(run_measured(args, seed, m))
        line = "  ".join(f"{m} aubc {res[m][-1]['aubc']:.4f} cpu {res[m][-1]['outside_cpu_s']:.1f}s" for m in modes)
        print(f"seed {seed}: {line}", flush=True)
    summary = {}
    off = res["off"]
    for m in modes:
        a = np.array([r["aubc"] for r in res[m]])
        d = a - np.array([r["aubc"] for r in off])
        cpu = np.array([r["outside_cpu_s"] for r in res[m]])
        inner = {
            f: float(np.mean([sum(lp.get(f, 0.0) for lp in r["loops"]) for r in res[m]]))
            for f in ("train_cpu_s", "infer_cpu_s", "select_cpu_s", "records_trained", "records_inferred")
        }
        summary[m] = {
            "aubc_mean": float(a.mean()),
            "aubc_std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "paired_diff_mean": float(d.mean()),
            "paired_diff_std": float(d.std(ddof=1)) if d.size > 1 else 0.0,
            "outside_cpu_s_mean": float(cpu.mean()),
            "cpu_ratio_off_over": float(np.mean([o["outside_cpu_s"] for o in off]) / cpu.mean()),
            **{f"{k}_mean": v for k, v in inner.items()},
        }
    return {"summary": summary, "runs": res}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=["index", "al"], default="al")
    p.add_argument("--child", action="store_true")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--model", default="logreg")
    p.add_argument("--n", type=int, default=100000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--saving", default="off")
    p.add_argument("--seals", action="store_true")
    p.add_argument("--loops", type=int, default=15)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--init", type=int, default=20)
    p.add_argument("--tag", default="")
    args = p.parse_args()
    if args.child:
        _child(args)
        return
    RESULTS.mkdir(exist_ok=True)
    meta = {"command": " ".join(sys.argv), "date": "2026-11-23", "args": vars(args)}
    if args.part == "index":
        out = {**meta, "rows": bench_index(args.n)}
        name = f"compute_index_{args.n}.json"
    else:
        out = {**meta, **bench_al(args)}
        for m, s in out["summary"].items():
            print(
                f"{m:6s} AUBC {s['aubc_mean']:.4f} ± {s['aubc_std']:.4f}  paired Δ {s['paired_diff_mean']:+.4f} ± "
                f"{s['paired_diff_std']:.4f}  CPU {s['outside_cpu_s_mean']:.1f}s  "
                f"off/this ×{s['cpu_ratio_off_over']:.2f}  "
                f"train {s['train_cpu_s_mean']:.2f}s infer {s['infer_cpu_s_mean']:.2f}s "
                f"select {s['select_cpu_s_mean']:.2f}s "
                f"inferred {s['records_inferred_mean']:.0f}"
            )
        name = f"compute_al_{args.dataset}_{args.model}{args.tag}.json"
    (RESULTS / name).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
