"""The model library on its natural data: AUBC of margin vs random, seconds per loop, peak memory.

    .venv/bin/python benchmarks/models.py                  # every model (torch and text extras installed)
    .venv/bin/python benchmarks/models.py --only mlp cnn   # some of them
    .venv/bin/python benchmarks/models.py --throughput     # MiniLM texts/s with and without the cache
    .venv/bin/python benchmarks/models.py --quick          # 2 seeds, budget 60, separate result files
    .venv/bin/python benchmarks/models.py --report         # only re-aggregate the finished runs

Resumable: every finished (model, seed) run is one JSON line appended to ``results/models_runs.jsonl``;
a re-run skips the (model, seed) pairs already there (delete the lines, or the file, to redo them).
Each model runs in its own subprocess (so the peak resident memory is that model's) through
``alloop.bench.simulate`` — the code behind ``alloop simulate`` — with its paired protocol: seed ``s``
gives one train/test split and initial set shared by ``margin`` and ``random``. The aggregate (AUBC
mean ± std, the paired difference, Wilcoxon/t p-values, s/loop, peak MB) is rebuilt from the run lines
with ``alloop.bench.simulate.assemble`` and written to ``results/models.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "results"
STRATEGIES = ("margin", "random")

# model → (data, seeds, initial, batch, budget); fewer seeds only for the slow text model
PLAN: dict[str, tuple[str, int, int, int, int]] = {
    "gradient-boosting": ("digits", 20, 20, 20, 200),
    "cnn": ("digits", 20, 20, 20, 200),
    # reviews-test: 1,000 reviews of 500 different products (the training part has 10 products only)
    "minilm": ("reviews-test", 20, 20, 20, 200),
    "svm-rbf": ("digits", 20, 20, 20, 200),
    "logreg": ("digits", 20, 20, 20, 200),
    "gaussian-nb": ("digits", 20, 20, 20, 200),
    "knn": ("digits", 20, 20, 20, 200),
    "mlp": ("digits", 20, 20, 20, 200),
    "ensemble(logreg, k=5)": ("digits", 20, 20, 20, 200),
    "naive-bayes": ("reviews-test", 20, 20, 20, 200),
    "random-forest": ("digits", 20, 20, 20, 200),
}
QUICK = {"seeds": 2, "budget": 60}


def paths(quick: bool) -> tuple[Path, Path]:
    """(run lines, aggregate) for the full or the quick benchmark."""
    tag = "models_quick" if quick else "models"
    return HERE / f"{tag}_runs.jsonl", HERE / f"{tag}.json"


def plan(model: str, quick: bool) -> tuple[str, int, int, int, int]:
    data, seeds, initial, batch, budget = PLAN[model]
    return (data, QUICK["seeds"], initial, batch, QUICK["budget"]) if quick else (data, seeds, initial, batch, budget)


def run_seeds(model: str, seeds: list[int], quick: bool) -> None:
    """Child: run both strategies on each seed, print one JSON line per finished seed."""
    from alloop.bench.simulate import paired_split, prepare, run_campaign

    data, _, initial, batch, budget = plan(model, quick)
    setup = prepare(data, model, list(STRATEGIES), initial, batch, budget, 1, 0.3, None)
    for s in seeds:
        train, test, init = paired_split(setup.dataset.y, s, setup.test_size, initial)
        row: dict[str, Any] = {"model": model, "data": data, "seed": s, "initial": initial, "batch": batch}
        row |= {"budget": budget, "seconds": {}, "accuracy": {}}
        for spec in STRATEGIES:
            t0 = time.perf_counter()
            trace = run_campaign(
                setup.dataset,
                model,
                spec,
                train=train,
                test=test,
                initial_rows=init,
                batch=batch,
                budget=budget,
                seed=s,
            )
            row["seconds"][spec] = time.perf_counter() - t0
            row["accuracy"][spec] = trace.accuracy
            row["labels"] = trace.labels
        row["loops"] = len(STRATEGIES) * len(row["labels"])
        row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row["load_avg_1min"] = os.getloadavg()[0]
        row["date"] = date.today().isoformat()
        row["threads"] = os.environ.get("OMP_NUM_THREADS")
        print(json.dumps(row), flush=True)


def read_runs(runs: Path) -> list[dict[str, Any]]:
    if not runs.exists():
        return []
    return [json.loads(line) for line in runs.read_text().splitlines() if line.strip()]


def aggregate(model: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row from a model's run lines (seeds sorted), via the ``alloop simulate`` result contract."""
    import numpy as np

    from alloop.bench.simulate import assemble, prepare

    rows = sorted(rows, key=lambda r: r["seed"])
    first = rows[0]
    setup = prepare(first["data"], model, list(STRATEGIES), first["initial"], first["batch"], first["budget"],
                    len(rows), 0.3, None)  # fmt: skip
    curves = {spec: np.array([r["accuracy"][spec] for r in rows]) for spec in STRATEGIES}
    seconds = {spec: sum(r["seconds"][spec] for r in rows) for spec in STRATEGIES}
    res = assemble(setup, curves, seconds, first["labels"])["results"]
    paired = res["margin"]["paired_vs"]
    loops = sum(r["loops"] for r in rows)
    return {
        "model": model,
        "data": first["data"],
        "seeds": len(rows),
        "seed_list": [r["seed"] for r in rows],
        "initial": first["initial"],
        "batch": first["batch"],
        "budget": first["budget"],
        "aubc_margin": res["margin"]["aubc_mean"],
        "aubc_margin_std": res["margin"]["aubc_std"],
        "aubc_random": res["random"]["aubc_mean"],
        "aubc_random_std": res["random"]["aubc_std"],
        "aubc_diff": paired["aubc_diff_mean"],
        "aubc_diff_std": paired["aubc_diff_std"],
        "wins": paired["wins"],
        "losses": paired["losses"],
        "wilcoxon_p": paired["wilcoxon_pvalue"],
        "t_p": paired["t_pvalue"],
        "final_margin": res["margin"]["final_accuracy_mean"],
        "seconds_per_loop": (seconds["margin"] + seconds["random"]) / loops,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
        "load_avg_1min": [min(r["load_avg_1min"] for r in rows), max(r["load_avg_1min"] for r in rows)],
        "dates": sorted({r["date"] for r in rows}),
        "threads": sorted({str(r.get("threads")) for r in rows}),
    }


def throughput(n_texts: int) -> dict[str, object]:
    """MiniLM texts/s: ``n_texts`` reviews encoded with an empty cache, then again from the cache."""
    from alloop.datasets import load_dataset
    from alloop.models import encode_texts

    texts = load_dataset("reviews").texts[:n_texts]
    encode_texts(texts[:8], use_cache=False)  # load the encoder once, outside the timings
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        encode_texts(texts, cache_dir=cache)  # every text is new: encoded, then written to the cache
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        encode_texts(texts, cache_dir=cache)  # all cached
        warm = time.perf_counter() - t0
    return {
        "n_texts": n_texts,
        "texts_per_s_without_cache": n_texts / cold,
        "texts_per_s_from_cache": n_texts / warm,
        "cache_speedup": cold / warm,
        "mean_chars": sum(map(len, texts)) / len(texts),
        "load_avg_1min": os.getloadavg()[0],
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "date": date.today().isoformat(),
    }


def write_report(quick: bool) -> dict[str, Any]:
    runs, out = paths(quick)
    previous = json.loads(out.read_text()) if out.exists() else {}
    rows = read_runs(runs)
    models = {m: aggregate(m, [r for r in rows if r["model"] == m]) for m in PLAN if any(r["model"] == m for r in rows)}
    result = {"models": models, "throughput": previous.get("throughput")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'model':24} {'data':13} {'seeds':>5} {'AUBC margin':>16} {'AUBC random':>16} {'diff':>16} "
          f"{'w/l':>6} {'Wilcoxon p':>10} {'s/loop':>7} {'peak MB':>7}")  # fmt: skip
    for m in models.values():
        print(
            f"{m['model']:24} {m['data']:13} {m['seeds']:5d} {m['aubc_margin']:.4f} ± {m['aubc_margin_std']:.4f} "
            f"{m['aubc_random']:.4f} ± {m['aubc_random_std']:.4f} {m['aubc_diff']:+.4f} ± {m['aubc_diff_std']:.4f} "
            f"{m['wins']:>2}/{m['losses']:<3} {m['wilcoxon_p'] or float('nan'):10.2g} {m['seconds_per_loop']:7.3f} "
            f"{m['peak_rss_mb']:7.0f}"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="Models to run (default: all).")
    parser.add_argument("--throughput", action="store_true", help="Only measure MiniLM throughput.")
    parser.add_argument("--n-texts", type=int, default=300, help="Texts for the throughput measurement.")
    parser.add_argument("--seeds", type=int, default=None, help="Run seeds 0..N-1 (default: the plan's).")
    parser.add_argument("--quick", action="store_true", help="2 seeds, budget 60, separate result files.")
    parser.add_argument("--report", action="store_true", help="Only rebuild models.json from the run lines.")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP/BLAS/torch threads per model (default 1).")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-seeds", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "throughput":
        print(json.dumps(throughput(args.n_texts)))
        return
    if args.child is not None:
        run_seeds(args.child, args.child_seeds, args.quick)
        return
    runs, out = paths(args.quick)
    # one thread by default: on a shared 2-core machine, OpenMP busy-waiting (HistGradientBoosting, torch)
    # makes multi-threaded timings meaningless; every model gets the same setting, so ratios stay fair
    threads = {k: str(args.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **threads}
    if args.throughput:
        cmd = [sys.executable, __file__, "--child", "throughput", "--n-texts", str(args.n_texts)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        result = json.loads(out.read_text()) if out.exists() else {"models": {}}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result | {"throughput": row}, indent=2) + "\n")
        print(json.dumps(row))
        return
    for model in [] if args.report else (args.only or list(PLAN)):
        if model not in PLAN:
            sys.exit(f"unknown model {model!r}; choose from {', '.join(PLAN)}")
        n_seeds = args.seeds or plan(model, args.quick)[1]
        done = {r["seed"] for r in read_runs(runs) if r["model"] == model}
        todo = [s for s in range(n_seeds) if s not in done]
        if not todo:
            continue
        print(f"{model}: seeds {todo}", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--child", model, "--child-seeds", *map(str, todo)]
        cmd += ["--quick"] if args.quick else []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:  # one finished seed per line: append it at once (resumable)
                runs.parent.mkdir(parents=True, exist_ok=True)
                with runs.open("a") as fh:
                    fh.write(line.strip() + "\n")
        if proc.returncode != 0:
            print(f"{model}: FAILED (exit {proc.returncode})", file=sys.stderr)
    write_report(args.quick)


if __name__ == "__main__":
    main()
