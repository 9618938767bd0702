"""Label efficiency of uncertainty sampling: the published cross-library protocol, through alloop.

Part 1 (default) reproduces the protocol exactly and checks the reference values every library gives on
digits (AUBC mean ± population std over seeds 0-4, tolerance ±0.002):

* data digits, breast_cancer, wine (bundled with scikit-learn);
* ``X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)``;
  a StandardScaler fitted on the train part, applied to both;
* seed s in 0-4: the initial set is
  ``train_test_split(np.arange(n_train), train_size=20, stratify=y_train, random_state=s)[0]``;
* ``LogisticRegression(max_iter=1000)`` refit from scratch each loop; batch 10; 30 loops (wine 10);
* ties broken by a stable sort on the score (lower train position first);
* accuracy on the test part after the initial fit and after each batch; AUBC = mean of those points;
* strategies margin, least-confidence, entropy, random: every selection goes through
  :class:`alloop.SelectionEngine` and the registered strategies.

Part 2 (``--simulate``) runs the same strategies through :func:`alloop.bench.simulate` (per-seed splits,
the paired design, 20 seeds; digits, logreg, initial 20, batch 10, budget 320, test size 0.3) and
writes ``benchmarks/results/simulate_uncertainty.json``.

    python benchmarks/label_efficiency.py              # part 1; exit status 1 on FAIL
    python benchmarks/label_efficiency.py --simulate   # part 2 only
    python benchmarks/label_efficiency.py --all        # both
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import alloop
from alloop import RecordState, SelectionEngine, Snapshot
from alloop.datasets import load_dataset
from alloop.models import predict_proba_full

RESULTS = Path(__file__).resolve().parent / "results"
STRATEGIES = ("margin", "least-confidence", "entropy", "random")
DATASETS = {"digits": 30, "breast_cancer": 30, "wine": 10}  # data set -> number of loops
SEEDS = range(5)
INITIAL, BATCH, TEST_SIZE = 20, 10, 0.3
TOLERANCE = 0.002
REFERENCE = {  # digits: AUBC mean, population std over seeds 0-4, as every library reports it
    ("digits", "margin"): (0.9237, 0.0056),
    ("digits", "least-confidence"): (0.9137, 0.0058),
    ("digits", "entropy"): (0.9036, 0.0058),
}
console = Console(stderr=True)


def campaign(X_tr, y_tr, X_te, y_te, classes, strategy: str, seed: int, loops: int) -> list[float]:
    """One campaign of the published protocol; returns the accuracy points (initial fit + each batch)."""
    init = train_test_split(np.arange(len(y_tr)), train_size=INITIAL, stratify=y_tr, random_state=seed)[0]
    engine = SelectionEngine(strategy=strategy, seed=seed, classes=classes.tolist())
    engine.add_records(np.arange(len(y_tr)))  # train positions, in order: ties go to the lower position
    engine.observe_labels(init, y_tr[init])
    labeled = np.sort(init)
    points = []
    for loop in range(loops + 1):
        model = LogisticRegression(max_iter=1000).fit(X_tr[labeled], y_tr[labeled])
        points.append(float(np.mean(classes[np.argmax(predict_proba_full(model, X_te, classes), axis=1)] == y_te)))
        if loop == loops:
            break
        unlabeled = engine.pool.ids(RecordState.UNLABELED)
        probs = predict_proba_full(model, X_tr[unlabeled], classes)  # float64 end to end
        engine.ingest(Snapshot(ids=unlabeled, probs=probs, classes=classes.tolist()), loop=loop)
        chosen = engine.recommend(BATCH, loop=loop).ids
        engine.observe_labels(chosen, y_tr[chosen])
        labeled = np.sort(np.concatenate([labeled, chosen]))
    return points


def part1() -> tuple[dict, bool]:
    out: dict = {}
    total = sum(len(STRATEGIES) * len(SEEDS) for _ in DATASETS)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as bar:
        task = bar.add_task("label efficiency", total=total)
        for name, loops in DATASETS.items():
            ds = load_dataset(name)
            X_tr, X_te, y_tr, y_te = train_test_split(ds.X, ds.y, test_size=TEST_SIZE, stratify=ds.y, random_state=0)
            scaler = StandardScaler().fit(X_tr)
            X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
            out[name] = {}
            for strategy in STRATEGIES:
                start = time.perf_counter()
                per_seed, curves = [], []
                for seed in SEEDS:
                    bar.update(task, description=f"{name} · {strategy} · seed {seed}")
                    pts = campaign(X_tr, y_tr, X_te, y_te, ds.classes, strategy, seed, loops)
                    curves.append(pts)
                    per_seed.append(float(np.mean(pts)))
                    bar.advance(task)
                arr = np.asarray(per_seed)
                ref = REFERENCE.get((name, strategy))
                entry = {
                    "aubc_mean": float(arr.mean()),
                    "aubc_std": float(arr.std()),
                    "aubc_per_seed": per_seed,
                    "final_accuracy_mean": float(np.mean([c[-1] for c in curves])),
                    "labels": [INITIAL + BATCH * i for i in range(loops + 1)],
                    "curve_mean": np.mean(curves, axis=0).tolist(),
                    "seconds": round(time.perf_counter() - start, 3),
                }
                if ref is not None:
                    entry["reference_mean"], entry["reference_std"] = ref
                    entry["pass"] = bool(abs(arr.mean() - ref[0]) <= TOLERANCE and abs(arr.std() - ref[1]) <= TOLERANCE)
                out[name][strategy] = entry

    table = Table(title="Label efficiency (published protocol) — AUBC mean ± population std over seeds 0-4")
    for col in ("data", "strategy", "alloop AUBC", "reference", "|Δmean|", "final acc", "check"):
        table.add_column(col, justify="left" if col in ("data", "strategy") else "right")
    ok = True
    for name, per in out.items():
        for strategy, e in per.items():
            ref = f"{e['reference_mean']:.4f} ± {e['reference_std']:.4f}" if "pass" in e else "—"
            delta = f"{abs(e['aubc_mean'] - e['reference_mean']):.4f}" if "pass" in e else "—"
            check = ("[green]PASS[/]" if e["pass"] else "[red]FAIL[/]") if "pass" in e else ""
            ok &= e.get("pass", True)
            table.add_row(
                name,
                strategy,
                f"{e['aubc_mean']:.4f} ± {e['aubc_std']:.4f}",
                ref,
                delta,
                f"{e['final_accuracy_mean']:.4f}",
                check,
            )
    Console(width=140).print(table)
    return out, ok


def part2(seeds: int) -> dict:
    from alloop.bench import simulate

    result = simulate(
        "digits",
        "logreg",
        list(STRATEGIES),
        initial=INITIAL,
        batch=BATCH,
        budget=320,
        seeds=seeds,
        test_size=TEST_SIZE,
        progress=True,
    )
    table = Table(title=f"alloop.bench.simulate — digits, logreg, initial 20, batch 10, budget 320, {seeds} seeds")
    for col in ("strategy", "AUBC mean ± std", "final acc", "Δ vs random ± std", "W/T/L", "t-test p", "Wilcoxon p"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for spec, r in result["results"].items():
        pv = r["paired_vs"]

        def fmt(p: float | None) -> str:
            return "—" if p is None else f"{p:.2g}"

        table.add_row(
            spec,
            f"{r['aubc_mean']:.4f} ± {r['aubc_std']:.4f}",
            f"{r['final_accuracy_mean']:.4f}",
            "baseline" if pv is None else f"{pv['aubc_diff_mean']:+.4f} ± {pv['aubc_diff_std']:.4f}",
            "" if pv is None else f"{pv['wins']}/{pv['ties']}/{pv['losses']}",
            "" if pv is None else fmt(pv["t_pvalue"]),
            "" if pv is None else fmt(pv["wilcoxon_pvalue"]),
        )
    Console(width=140).print(table)
    return result


def environment() -> dict:
    import scipy
    import sklearn

    return {
        "alloop": alloop.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", action="store_true", help="run part 2 (alloop.bench.simulate) only")
    parser.add_argument("--all", action="store_true", help="run part 1 and part 2")
    parser.add_argument("--seeds", type=int, default=20, help="seeds for part 2 (default 20)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    ok = True
    if not args.simulate or args.all:
        results, ok = part1()
        doc = {
            "protocol": {
                "datasets": {k: {"loops": v} for k, v in DATASETS.items()},
                "split": "train_test_split(X, y, test_size=0.3, stratify=y, random_state=0); StandardScaler on train",
                "initial": "train_test_split(arange(n_train), train_size=20, stratify=y_train, random_state=seed)[0]",
                "model": "LogisticRegression(max_iter=1000), refit from scratch each loop",
                "batch": BATCH,
                "seeds": list(SEEDS),
                "tie_break": "stable sort on the score (lower train position first)",
                "aubc": "mean of test accuracy after the initial fit and after each batch",
                "tolerance": TOLERANCE,
            },
            "environment": environment(),
            "results": results,
            "pass": ok,
        }
        (RESULTS / "label_efficiency.json").write_text(json.dumps(doc, indent=2) + "\n")
        console.print(f"wrote {RESULTS / 'label_efficiency.json'}")
    if args.simulate or args.all:
        result = part2(args.seeds)
        result["environment"] = environment()
        (RESULTS / "simulate_uncertainty.json").write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"wrote {RESULTS / 'simulate_uncertainty.json'}")
    if not ok:
        console.print("[red]FAIL: alloop does not match the reference values within ±0.002.[/]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
