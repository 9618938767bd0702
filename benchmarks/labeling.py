"""Labeling benchmarks, parts (1) and (3) of issue 8 (part (2), allocation, is a separate script).

(1) Consensus accuracy vs redundancy 1–5 with the exact ``alloop label-sim`` protocol
    (:mod:`alloop.labeling.labelsim`): 1,000 items, 5 classes, 10 annotators with accuracies
    ``np.linspace(0.55, 0.95, 10)``, seeds 0–19. Methods: majority vote, our Dawid–Skene, our one-coin
    Dawid–Skene, crowd-kit's DawidSkene (default settings, when installed), and dynamic overlap with cap = r
    (one-coin aggregation) at the label-sim default target 0.95 and at the target chosen on *tuning seeds*
    1000–1019 (:func:`alloop.labeling.labelsim.tune_target_confidence`: the lowest target whose accuracy at
    cap 5 is never below fixed redundancy 3 on any tuning seed). Then a paired comparison over seeds 0–19:
    dynamic (cap 5, tuned target) vs one-coin at fixed redundancy 3.
(3) Autolabeling on scikit-learn's digits, 40 seeds. Per seed a random permutation: the first 100 (or 300)
    records train ``StandardScaler + LogisticRegression(max_iter=1000)``, records 300–1499 are four loops of
    300 human-labeled records pooled into the calibration set (:meth:`AutoLabeler.update`; the model is frozen
    while pooling), and the last 297 records are the batch auto-labeled at the chosen threshold. Coverage and
    achieved accuracy at targets 0.90/0.95/0.98, after 1–4 loops, for the region bound (level 0.99) and the
    batch-aware rule (``batch_size=297``, level 0.95: 2.5 % for the region bound, 2.5 % for the batch).

    python benchmarks/labeling.py            # both parts → benchmarks/results/labeling_consensus_autolabel.json
    python benchmarks/labeling.py --part 1
    python benchmarks/labeling.py --quick    # 5 seeds (tuning on 5 others), no crowd-kit: a smoke run, ~1 min
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
from alloop.labeling.labelsim import draw_crowd, run_dynamic, run_static, tune_target_confidence

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


def part1(seeds: int = 20, *, crowdkit: bool = True) -> dict[str, Any]:
    from scipy import stats

    acc = np.linspace(0.55, 0.95, 10)
    rows: dict[str, dict[int, dict[str, list[float]]]] = {}

    def add(name: str, r: int, a: float, j: float) -> None:
        cell = rows.setdefault(name, {}).setdefault(r, {"acc": [], "judg": []})
        cell["acc"].append(a)
        cell["judg"].append(j)

    t0 = time.perf_counter()
    tuning = tune_target_confidence(seeds=list(range(1000, 1000 + seeds)), cap=5, compare_redundancy=3)
    tuned = tuning["chosen"] if tuning["chosen"] is not None else 0.95
    console.print(f"tuned target {tuned} on seeds 1000–{999 + seeds} ({time.perf_counter() - t0:.0f} s)")
    for r in range(1, 6):
        for seed in range(seeds):
            draw = draw_crowd(seed, n_items=1000, n_classes=5, accuracy=acc)
            for m in ("majority", "dawid-skene", "one-coin"):
                add(m, r, *run_static(m, draw, r, seed))
            ck = _crowdkit_ds(draw, r) if crowdkit else None
            if ck is not None:
                add("crowd-kit DawidSkene", r, ck, float(r))
            for target, label in ((0.95, "0.95 (label-sim default)"), (tuned, f"{tuned:.2f} (tuned)")):
                policy = DynamicOverlap(target_confidence=target, max_judgements=r, min_judgements=min(2, r))
                a, j, _ = run_dynamic(draw, policy, seed, aggregator="one-coin")
                add(f"dynamic one-coin, target {label}", r, a, j)
        console.print(f"redundancy {r} done ({time.perf_counter() - t0:.0f} s)")
    table: dict[str, dict[str, Any]] = {}
    for name, by_r in rows.items():
        table[name] = {
            str(r): {
                "accuracy_mean": float(np.mean(c["acc"])),
                "accuracy_std": float(np.std(c["acc"])),
                "judgements_mean": float(np.mean(c["judg"])),
                "accuracy_per_seed": c["acc"],
            }
            for r, c in by_r.items()
        }
    dyn = np.asarray(rows[f"dynamic one-coin, target {tuned:.2f} (tuned)"][5]["acc"])
    dyn_j = np.asarray(rows[f"dynamic one-coin, target {tuned:.2f} (tuned)"][5]["judg"])
    fixed = np.asarray(rows["one-coin"][3]["acc"])
    diff = dyn - fixed
    paired = {
        "dynamic": f"one-coin, cap 5, target {tuned:.2f}",
        "fixed": "one-coin, redundancy 3",
        "accuracy_dynamic_mean": float(dyn.mean()),
        "accuracy_dynamic_std": float(dyn.std()),
        "accuracy_fixed_mean": float(fixed.mean()),
        "accuracy_fixed_std": float(fixed.std()),
        "diff_mean": float(diff.mean()),
        "diff_std": float(diff.std(ddof=1)) if diff.size > 1 else 0.0,
        "diff_min": float(diff.min()),
        "wins_ties_losses": [int((diff > 0).sum()), int((diff == 0).sum()), int((diff < 0).sum())],
        "paired_t_p": float(stats.ttest_rel(dyn, fixed).pvalue) if diff.size > 1 else None,
        "judgements_dynamic_mean": float(dyn_j.mean()),
        "judgements_dynamic_std": float(dyn_j.std()),
        "judgements_fixed": 3.0,
    }
    return {
        "seeds": seeds,
        "seconds": time.perf_counter() - t0,
        "tuning": tuning,
        "tuned_target": tuned,
        "paired_cap5_vs_fixed3": paired,
        "results": table,
    }


def part3(seeds: int = 40) -> dict[str, Any]:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    loop_size, loops, batch = 300, 4, len(y) - 1500
    cache: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {100: [], 300: []}
    model_acc: dict[int, list[float]] = {100: [], 300: []}
    for seed in range(seeds):
        perm = np.random.default_rng(seed).permutation(len(y))
        rest = perm[300:]  # calibration loops (300–1499) then the auto-labeled batch (1500–)
        for n_train in cache:
            tr = perm[:n_train]
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X[tr], y[tr])
            p = model.predict_proba(X[rest])
            cache[n_train].append((p, y[rest]))
            model_acc[n_train].append(float(np.mean(p[-batch:].argmax(axis=1) == y[rest][-batch:])))
    out: dict[str, Any] = {}
    for n_train, runs in cache.items():
        for rule, batch_size, level in (("region", None, 0.99), ("batch-aware", batch, 0.95)):
            for target in (0.90, 0.95, 0.98):
                cells: list[list[tuple[float, float]]] = [[] for _ in range(loops)]
                for p, yy in runs:
                    al = AutoLabeler(target=target, batch_size=batch_size, level=level)
                    for loop in range(loops):
                        sl = slice(loop * loop_size, (loop + 1) * loop_size)
                        (al.fit if loop == 0 else al.update)(p[sl], yy[sl])
                        m = al.mask(p[-batch:])
                        ok = p[-batch:].argmax(axis=1) == yy[-batch:]
                        cells[loop].append((float(m.mean()), float(ok[m].mean()) if m.any() else np.nan))
                for loop, cell in enumerate(cells):
                    v = np.asarray(cell)
                    ach = v[~np.isnan(v[:, 1]), 1]
                    met = float(np.mean(np.where(np.isnan(v[:, 1]), True, v[:, 1] >= target)))
                    out[f"train {n_train} {rule} {target:.2f} pool {(loop + 1) * loop_size}"] = {
                        "train": n_train,
                        "rule": rule,
                        "level": level,
                        "target": target,
                        "calibration": (loop + 1) * loop_size,
                        "coverage_mean": float(v[:, 0].mean()),
                        "coverage_std": float(v[:, 0].std()),
                        "achieved_accuracy_mean": float(ach.mean()) if ach.size else None,
                        "achieved_accuracy_min": float(ach.min()) if ach.size else None,
                        "seeds_meeting_target": met,
                        "seeds_with_no_auto_label": int(np.isnan(v[:, 1]).sum()),
                    }
    return {
        "seeds": seeds,
        "batch": batch,
        "model_accuracy_mean": {str(k): float(np.mean(v)) for k, v in model_acc.items()},
        "results": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["1", "3", "all"], default="all")
    ap.add_argument("--quick", action="store_true", help="5 seeds, no crowd-kit; writes *_quick.json")
    args = ap.parse_args()
    out = OUT.with_name(OUT.stem + "_quick.json") if args.quick else OUT
    result: dict[str, Any] = {
        "environment": {"python": platform.python_version(), "numpy": np.__version__},
        "command": "python benchmarks/labeling.py"
        + (f" --part {args.part}" if args.part != "all" else "")
        + (" --quick" if args.quick else ""),
        "date": time.strftime("%Y-%m-%d"),
    }
    if out.exists():
        result = {**json.loads(out.read_text()), **result}
    if args.part in ("1", "all"):
        result["consensus"] = c = part1(5 if args.quick else 20, crowdkit=not args.quick)
        t = Table(title=f"(1) consensus accuracy (judgements/item) vs redundancy, {c['seeds']} seeds")
        t.add_column("method")
        for r in range(1, 6):
            t.add_column(f"r={r}", justify="right")
        for name, by_r in c["results"].items():
            t.add_row(
                name,
                *[f"{by_r[str(r)]['accuracy_mean']:.4f} ({by_r[str(r)]['judgements_mean']:.2f})" for r in range(1, 6)],
            )
        console.print(t)
        t = Table(title=f"tuning on seeds {c['tuning']['seeds'][0]}–{c['tuning']['seeds'][-1]} (cap 5 vs fixed 3)")
        for col in ("target", "accuracy", "judgements/item", "mean diff", "worst-seed diff"):
            t.add_column(col, justify="right")
        for row in c["tuning"]["rows"]:
            keys = ("target", "accuracy_mean", "judgements_mean", "diff_mean", "diff_min")
            t.add_row(*[f"{row[k]:.4f}" for k in keys])
        console.print(t)
        console.print(c["paired_cap5_vs_fixed3"])
    if args.part in ("3", "all"):
        result["autolabel"] = a = part3(5 if args.quick else 40)
        t = Table(title=f"(3) autolabel on digits, {a['seeds']} seeds, batch {a['batch']}")
        for col in ("train", "rule", "target", "calib", "coverage", "achieved", "worst", "seeds ≥ target", "none"):
            t.add_column(col)
        for v in a["results"].values():
            t.add_row(
                str(v["train"]), v["rule"], f"{v['target']:.2f}", str(v["calibration"]), f"{v['coverage_mean']:.3f}",
                "—" if v["achieved_accuracy_mean"] is None else f"{v['achieved_accuracy_mean']:.4f}",
                "—" if v["achieved_accuracy_min"] is None else f"{v['achieved_accuracy_min']:.4f}",
                f"{100 * v['seeds_meeting_target']:.1f}%", str(v["seeds_with_no_auto_label"]),
            )  # fmt: skip
        console.print(t)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"Wrote {out}")


if __name__ == "__main__":
    main()
