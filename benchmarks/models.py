"""The model library on its natural data: AUBC of margin vs random, seconds per loop, peak memory.

    .venv/bin/python benchmarks/models.py                  # every model (torch and text extras installed)
    .venv/bin/python benchmarks/models.py --only mlp cnn   # some of them
    .venv/bin/python benchmarks/models.py --throughput     # MiniLM texts/s with and without the cache

Each model runs in its own subprocess (so the peak resident memory is that model's) through
``alloop.bench.simulate`` — the code behind ``alloop simulate`` — with the paired protocol documented
there. Results go to ``benchmarks/results/models.json``.
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
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "models.json"

# model → (data, seeds, initial, batch, budget); fewer seeds for the slow models (the machine is 2 cores)
PLAN: dict[str, tuple[str, int, int, int, int]] = {
    "logreg": ("digits", 20, 20, 20, 200),
    "naive-bayes": ("digits", 20, 20, 20, 200),
    "knn": ("digits", 20, 20, 20, 200),
    "random-forest": ("digits", 20, 20, 20, 200),
    "svm-rbf": ("digits", 20, 20, 20, 200),
    "gradient-boosting": ("digits", 3, 20, 20, 200),
    "mlp": ("digits", 20, 20, 20, 200),
    "cnn": ("digits", 10, 20, 20, 200),
    "ensemble(logreg, k=5)": ("digits", 20, 20, 20, 200),
    # reviews-test: 1,000 reviews of 500 different products (the training part has 10 products only)
    "naive-bayes-text": ("reviews-test", 20, 20, 20, 200),
    "minilm": ("reviews-test", 5, 20, 20, 200),
}


def run_one(model: str) -> dict[str, object]:
    from alloop.bench import simulate
    from alloop.models import MODELS, model_info

    # alloop.bench.simulate looks specs up in MODELS by exact name; register the ensemble spec here
    # (this process only) until it uses model_info().
    MODELS.setdefault(model, model_info(model))
    data, seeds, initial, batch, budget = PLAN[model]
    start = time.perf_counter()
    out = simulate(data, model, ["margin", "random"], initial=initial, batch=batch, budget=budget, seeds=seeds)
    wall = time.perf_counter() - start
    res = out["results"]
    n_points = len(res["margin"]["labels"])
    loops = 2 * seeds * n_points
    return {
        "model": model,
        "data": data,
        "seeds": seeds,
        "initial": initial,
        "batch": batch,
        "budget": budget,
        "aubc_margin": res["margin"]["aubc_mean"],
        "aubc_margin_std": res["margin"]["aubc_std"],
        "aubc_random": res["random"]["aubc_mean"],
        "aubc_random_std": res["random"]["aubc_std"],
        "aubc_diff": res["margin"]["paired_vs"]["aubc_diff_mean"],
        "wins": res["margin"]["paired_vs"]["wins"],
        "losses": res["margin"]["paired_vs"]["losses"],
        "wilcoxon_p": res["margin"]["paired_vs"]["wilcoxon_pvalue"],
        "final_margin": res["margin"]["final_accuracy_mean"],
        "seconds_per_loop": wall / loops,
        "wall_seconds": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
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
        "mean_chars": sum(map(len, texts)) / len(texts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="Models to run (default: all).")
    parser.add_argument("--throughput", action="store_true", help="Only measure MiniLM throughput.")
    parser.add_argument("--n-texts", type=int, default=300, help="Texts for the throughput measurement.")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(throughput(args.n_texts) if args.child == "throughput" else run_one(args.child)))
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"models": {}, "throughput": None}
    jobs = ["throughput"] if args.throughput else (args.only or list(PLAN))
    for job in jobs:
        if job != "throughput" and job not in PLAN:
            sys.exit(f"unknown model {job!r}; choose from {', '.join(PLAN)}")
        cmd = [sys.executable, __file__, "--child", job, "--n-texts", str(args.n_texts)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0:
            print(f"{job}: FAILED\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        if job == "throughput":
            results["throughput"] = row
        else:
            results["models"][job] = row
        print(json.dumps(row))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
