"""Labeling benchmarks, parts (1) and (3) of issue 8 (part (2), allocation, is a separate script).

(1) Consensus accuracy vs redundancy 1–5 with the exact ``alloop label-sim`` protocol
    (:mod:`alloop.labeling.labelsim`): 1,000 items, 5 classes, 10 annotators with accuracies
    ``np.linspace(0.55, 0.95, 10)``, seeds 0–19. Methods: majority vote, our Dawid–Skene, our one-coin
    Dawid–Skene, crowd-kit's DawidSkene (default settings, when installed), and dynamic overlap with cap = r
    (one-coin aggregation) at target confidences 0.95 (the label-sim default) and 0.90.
(3) Autolabeling on scikit-learn's digits: per seed, a random 100-record labeled slice trains
    ``StandardScaler + LogisticRegression(max_iter=1000)``, a 300-record human-labeled validation slice
    chooses the threshold (:class:`alloop.labeling.autolabel.AutoLabeler`), and the remaining 1,397 records
    are auto-labeled above it. Coverage and achieved accuracy at targets 0.90/0.95/0.98 over 40 seeds, for
    the default fixed-sequence correction and for no correction.

    python benchmarks/labeling.py            # both parts → benchmarks/results/labeling_consensus_autolabel.json
    python benchmarks/labeling.py --part 1
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from alloop.labeling.autolabel import AutoLabeler
from alloop.labeling.consensus import DynamicOverlap
from alloop.labeling.labelsim import draw_crowd, run_dynamic, run_static

OUT = Path(__file__).parent / "results" / "labeling_consensus_autolabel.json"
console = Console()


def _crowdkit_ds(draw: Any, r: int) -> float | None:
    try:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene
    except ImportError:
        return None
    items, anns, labs = draw.judgements(r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab = DawidSkene().fit_predict(pd.DataFrame({"task": items, "worker": anns, "label": labs}))
    lab = lab.sort_index()
    return float(np.mean(lab.to_numpy() == draw.truth[lab.index.to_numpy()]))


def part1(seeds: int = 20) -> dict[str, Any]:
    acc = np.linspace(0.55, 0.95, 10)
    rows: dict[str, dict[int, dict[str, list[float]]]] = {}

    def add(name: str, r: int, a: float, j: float) -> None:
        cell = rows.setdefault(name, {}).setdefault(r, {"acc": [], "judg": []})
        cell["acc"].append(a)
        cell["judg"].append(j)

    t0 = time.perf_counter()
    for r in range(1, 6):
        for seed in range(seeds):
            draw = draw_crowd(seed, n_items=1000, n_classes=5, accuracy=acc)
            for m in ("majority", "dawid-skene", "one-coin"):
                add(m, r, *run_static(m, draw, r, seed))
            ck = _crowdkit_ds(draw, r)
            if ck is not None:
                add("crowd-kit DawidSkene", r, ck, float(r))
            for target in (0.95, 0.90):
                policy = DynamicOverlap(target_confidence=target, max_judgements=r, min_judgements=min(2, r))
                a, j, _ = run_dynamic(draw, policy, seed, aggregator="one-coin")
                add(f"dynamic one-coin, target {target:.2f}", r, a, j)
        console.print(f"redundancy {r} done ({time.perf_counter() - t0:.0f} s)")
    table: dict[str, dict[str, Any]] = {}
    for name, by_r in rows.items():
        table[name] = {
            str(r): {
                "accuracy_mean": float(np.mean(c["acc"])),
                "accuracy_std": float(np.std(c["acc"])),
                "judgements_mean": float(np.mean(c["judg"])),
            }
            for r, c in by_r.items()
        }
    return {"seeds": seeds, "seconds": time.perf_counter() - t0, "results": table}


def part3(seeds: int = 40) -> dict[str, Any]:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    out: dict[str, Any] = {}
    model_acc = []
    cache = []
    for seed in range(seeds):
        perm = np.random.default_rng(seed).permutation(len(y))
        tr, va, po = perm[:100], perm[100:400], perm[400:]
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X[tr], y[tr])
        pv, pp = model.predict_proba(X[va]), model.predict_proba(X[po])
        model_acc.append(float(np.mean(pp.argmax(axis=1) == y[po])))
        cache.append((pv, y[va], pp, y[po]))
    for correction in ("fixed-sequence", "none"):
        for target in (0.90, 0.95, 0.98):
            cov, ach, met, empty = [], [], 0, 0
            for pv, yv, pp, yp in cache:
                al = AutoLabeler(target=target, correction=correction).fit(pv, yv)
                m = al.mask(pp)
                cov.append(float(m.mean()))
                if m.any():
                    a = float(np.mean(pp[m].argmax(axis=1) == yp[m]))
                    ach.append(a)
                    met += a >= target
                else:
                    empty += 1
                    met += 1  # no auto-label, none wrong
            out[f"{correction} {target:.2f}"] = {
                "correction": correction,
                "target": target,
                "coverage_mean": float(np.mean(cov)),
                "achieved_accuracy_mean": float(np.mean(ach)) if ach else None,
                "achieved_accuracy_min": float(np.min(ach)) if ach else None,
                "seeds_meeting_target": met / len(cache),
                "seeds_with_no_auto_label": empty,
            }
    return {"seeds": seeds, "model_accuracy_mean": float(np.mean(model_acc)), "results": out}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["1", "3", "all"], default="all")
    args = ap.parse_args()
    result: dict[str, Any] = {"environment": {"python": platform.python_version(), "numpy": np.__version__}}
    if OUT.exists():
        result = {**json.loads(OUT.read_text()), **result}
    if args.part in ("1", "all"):
        result["consensus"] = part1()
        t = Table(title="(1) consensus accuracy (judgements/item) vs redundancy, 20 seeds")
        t.add_column("method")
        for r in range(1, 6):
            t.add_column(f"r={r}", justify="right")
        for name, by_r in result["consensus"]["results"].items():
            t.add_row(
                name,
                *[f"{by_r[str(r)]['accuracy_mean']:.4f} ({by_r[str(r)]['judgements_mean']:.2f})" for r in range(1, 6)],
            )
        console.print(t)
    if args.part in ("3", "all"):
        result["autolabel"] = part3()
        t = Table(title=f"(3) autolabel on digits, {result['autolabel']['seeds']} seeds")
        for c in ("correction", "target", "coverage", "achieved acc", "min acc", "seeds ≥ target", "none labeled"):
            t.add_column(c)
        for v in result["autolabel"]["results"].values():
            t.add_row(
                v["correction"],
                f"{v['target']:.2f}",
                f"{v['coverage_mean']:.3f}",
                "—" if v["achieved_accuracy_mean"] is None else f"{v['achieved_accuracy_mean']:.4f}",
                "—" if v["achieved_accuracy_min"] is None else f"{v['achieved_accuracy_min']:.4f}",
                f"{100 * v['seeds_meeting_target']:.1f}%",
                str(v["seeds_with_no_auto_label"]),
            )
        console.print(t)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"Wrote {OUT}")


if __name__ == "__main__":
    main()
