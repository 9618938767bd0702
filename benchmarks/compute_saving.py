"""Compute-saving active learning (issue 6): compute saving off vs on, same seeds, paired.

Each (seed, arm) is one child process running :func:`alloop.bench.simulate.run_campaign` (margin; the
paired split of ``alloop simulate``; a validation slice of the train part for the drift check, never the
test split). Its whole CPU time (user + system, all threads) is measured from outside with
``resource.getrusage(RUSAGE_CHILDREN)`` around the subprocess — start-up, imports and data generation
included — and inside per phase (train / infer / select). One JSON row per finished run is appended to
``benchmarks/results/compute_saving_<setting>.jsonl``, so an interrupted run continues where it stopped.

Arms: ``off`` (full retrain + full inference every loop), ``on`` (``compute_saving="on"``: the policy the
library picks for the model class and pool size, :func:`alloop.compute.auto_policy`), and ablations of "on"
(see ARMS): ``warm``, ``skip``, ``cand``, ``nodbl``, ``few``. ``--policy JSON`` overrides fields of "on".
The synthetic pool is generated once and cached (``~/.cache/alloop-bench``, outside the repository); a row
of a child that had to generate it is not kept (``data_cached``), so synthesis is never counted.

Session 3 (2026-11-24), the reported runs (docs/benchmarks.md, "Session 3: compute saving"):

    nice -n 19 python benchmarks/compute_saving.py --setting digits-mlp --seeds 20 --arms off,on,nodbl,few --tag=-v3
    nice -n 19 python benchmarks/compute_saving.py --setting synth-logreg --seeds 10 --arms off,on --tag=-v3
    nice -n 19 python benchmarks/compute_saving.py --setting synth-mlp --seeds 10 --arms off,on --tag=-v3
    nice -n 19 python benchmarks/compute_saving.py --setting synth-mlp --seeds 5 --arms off,on,warm,cand,nodbl --tag=-v3

Other uses:

    python benchmarks/compute_saving.py --setting digits-mlp --seeds 3 --seed-offset 1000 --tag tune  # tuning
    python benchmarks/compute_saving.py --quick                                   # 2 seeds of digits-logreg
    python benchmarks/compute_saving.py --part index --n 100000                  # hnswlib vs faiss (compute.py)

Sessions 1-2 passed the "on" policy by hand (``--policy``, on top of the setting's own policy then); their
result files keep the policy they ran with.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
DATE = "2026-11-24"

#: data, model, initial, batch, budget, test_size; the "on" arm is ``compute_saving="on"``: the library picks the
#: policy from the model class and the pool size (``alloop.compute.auto_policy``); ``--policy`` overrides fields
SETTINGS: dict[str, dict[str, Any]] = {
    "digits-logreg": {"data": "digits", "model": "logreg", "initial": 20, "batch": 20, "budget": 300, "test_size": 0.3},
    "digits-mlp": {"data": "digits", "model": "mlp", "initial": 20, "batch": 10, "budget": 500, "test_size": 0.3},
    "synth-logreg": {
        "data": "synthetic", "model": "logreg", "initial": 20, "batch": 20, "budget": 500, "test_size": 0.05,
    },
    "synth-mlp": {"data": "synthetic", "model": "mlp", "initial": 20, "batch": 20, "budget": 500, "test_size": 0.05},
}  # fmt: skip
#: off, on, and ablations of "on": warm = warm start only (no skipping, no cap); skip = skipping only (no warm
#: start, no cap); cand = skipping + cap (no warm start); nodbl = no doubling schedule (the first training is
#: the only full one); few = warm phases on new + 2x replayed records instead of all labeled records
ARMS = ("off", "on", "warm", "skip", "cand", "nodbl", "few")


def on_policy(setting: dict[str, Any], n_pool: int) -> dict[str, Any]:
    """The settings of ``compute_saving="on"`` for this setting's model and pool, with the ``override``."""
    from alloop.compute import resolve_compute

    policy = resolve_compute("on", model=setting["model"], n_pool=n_pool)
    assert policy is not None
    return {**policy.to_config(), **setting.get("override", {})}


def arm_policy(on: dict[str, Any], arm: str) -> dict[str, Any] | None:
    """The ComputePolicy settings of an arm (None = compute saving off), from the "on" settings."""
    if arm == "off":
        return None
    p = dict(on)
    if arm == "warm":
        p.update(skip_inference=False, candidates=None)
    elif arm == "skip":
        p.update(warm_start=False, candidates=None, skip_inference=True)
    elif arm == "cand":
        p.update(warm_start=False, skip_inference=True, candidates=p.get("candidates") or 0.1)
    elif arm == "nodbl":
        p.update(full_every=None, full_growth=None)
    elif arm == "few":
        p.update(replay=2.0)
    return p


def load(data: str, n: int) -> Any:
    from alloop.datasets import Dataset, load_dataset

    if data != "synthetic":
        return load_dataset(data)
    # generated once (the same pool for every seed) and cached outside the repository as .npy files that each
    # child memory-maps: synthesis, decompression and copies are not part of an active-learning run
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "alloop-bench"
    fx, fy = cache / f"synth-{n}x64-X.npy", cache / f"synth-{n}x64-y.npy"
    cached = fx.exists() and fy.exists()
    if not cached:
        from sklearn.datasets import make_classification

        X, y = make_classification(
            n_samples=n, n_features=64, n_informative=20, n_classes=4, n_clusters_per_class=2, random_state=1234
        )
        cache.mkdir(parents=True, exist_ok=True)
        for f, arr in ((fx, X.astype(np.float64)), (fy, y.astype(np.int64))):
            tmp = f.with_suffix(f".{os.getpid()}.npy")
            np.save(tmp, arr)
            os.replace(tmp, f)
    X, y = np.asarray(np.load(fx, mmap_mode="r")), np.load(fy)  # a read-only ndarray view of the mapped file
    return Dataset(
        X=X,
        y=y,
        ids=np.arange(n, dtype=np.int64),
        name=f"synthetic-{n}x64" + ("" if cached else " (generated)"),
        feature_names=tuple(f"f{j}" for j in range(64)),
        classes=np.unique(y),
    )


def run_child(setting_name: str, seed: int, arm: str, n: int, override: dict[str, Any]) -> dict[str, Any]:
    from alloop.bench.simulate import compute_totals, paired_split, run_campaign
    from alloop.compute import ComputePolicy

    st = {**SETTINGS[setting_name], "override": override}
    data = load(st["data"], n)
    train, test, init = paired_split(data.y, seed, st["test_size"], st["initial"])
    rng = np.random.default_rng([seed, 7])
    rest = np.sort(np.setdiff1d(train, init, assume_unique=True))  # = np.setdiff1d(train, init), without a hash
    val = rng.choice(rest, size=min(1000, rest.size // 10), replace=False)  # drift check only; not labeled
    pool = np.sort(np.setdiff1d(train, val, assume_unique=True))
    p = arm_policy(on_policy(st, pool.size), arm)
    trace = run_campaign(
        data,
        st["model"],
        "margin",
        train=pool,
        test=test,
        initial_rows=init,
        batch=st["batch"],
        budget=st["budget"],
        seed=seed,
        compute=None if p is None else ComputePolicy(**p),
        validation=val,
    )
    return {
        "policy": p,
        "data_cached": not data.name.endswith("(generated)"),  # synthetic: only runs that loaded the cache count
        "aubc": trace.aubc,
        "final_accuracy": trace.accuracy[-1],
        "labels": trace.labels,
        "compute": compute_totals([trace.compute]),
        "loops": trace.compute,
    }


def run_measured(args: argparse.Namespace, seed: int, arm: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--setting",
        args.setting,
        "--seed",
        str(seed),
        "--arm",
        arm,
        "--n",
        str(args.n),
        "--policy",
        args.policy,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(
        seed=seed, arm=arm, outside_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    )
    return out


def summarise(rows: list[dict[str, Any]], arms: list[str]) -> dict[str, Any]:
    from alloop.bench.simulate import compute_totals  # the estimate as the library computes it now

    by = {(r["seed"], r["arm"]): r for r in rows}
    seeds = sorted({s for s, a in by if a == "off" and all((s, b) in by for b in arms)})
    out: dict[str, Any] = {"paired_seeds": len(seeds)}
    if not seeds:
        return out
    off_a = np.array([by[s, "off"]["aubc"] for s in seeds])
    off_c = np.array([by[s, "off"]["outside_cpu_s"] for s in seeds])
    for arm in arms:
        a = np.array([by[s, arm]["aubc"] for s in seeds])
        c = np.array([by[s, arm]["outside_cpu_s"] for s in seeds])
        inner = {
            f: float(np.mean([by[s, arm]["compute"][f] for s in seeds]))
            for f in ("train_cpu_s", "infer_cpu_s", "select_cpu_s", "records_inferred", "records_trained", "cpu_s")
        }
        d = a - off_a
        ddof = 1 if len(seeds) > 1 else 0
        out[arm] = {
            "aubc_mean": float(a.mean()),
            "aubc_std": float(a.std(ddof=ddof)),
            "paired_diff_mean": float(d.mean()),
            "paired_diff_std": float(d.std(ddof=ddof)),
            "outside_cpu_s_mean": float(c.mean()),
            "outside_cpu_x": float(off_c.mean() / c.mean()),
            "outside_cpu_x_per_seed_mean": float(np.mean(off_c / c)),
            "inside_cpu_x": float(np.mean([by[s, "off"]["compute"]["cpu_s"] for s in seeds]) / inner["cpu_s"]),
            "from_scratch_estimate_x": float(
                np.mean([compute_totals([by[s, arm]["loops"]])["from_scratch"]["cpu_x"] or 0 for s in seeds])
            ),
            **{f"{k}_mean": v for k, v in inner.items()},
        }
    return out


def print_table(summary: dict[str, Any], arms: list[str]) -> None:
    print(f"paired seeds: {summary['paired_seeds']}")
    print(
        f"{'arm':5s} {'AUBC mean ± std':>17s} {'paired Δ ± std':>17s} {'outside CPU s':>13s} {'off/arm':>8s} "
        f"{'inside off/arm':>14s} {'train s':>8s} {'infer s':>8s} {'select s':>8s} {'inferred':>10s}"
    )
    for arm in arms:
        s = summary.get(arm)
        if s is None:
            continue
        print(
            f"{arm:5s} {s['aubc_mean']:.4f} ± {s['aubc_std']:.4f}  {s['paired_diff_mean']:+.4f} ± "
            f"{s['paired_diff_std']:.4f} {s['outside_cpu_s_mean']:13.2f} {s['outside_cpu_x']:8.2f} "
            f"{s['inside_cpu_x']:14.2f} {s['train_cpu_s_mean']:8.2f} {s['infer_cpu_s_mean']:8.2f} "
            f"{s['select_cpu_s_mean']:8.2f} {s['records_inferred_mean']:10.0f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["al", "index"], default="al")
    p.add_argument("--setting", choices=sorted(SETTINGS), default="digits-mlp")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--seed-offset", type=int, default=0, help="first seed (use e.g. 1000 for tuning runs)")
    p.add_argument("--arms", default="off,on,warm,skip,cand")
    p.add_argument("--n", type=int, default=200_000, help="records of the synthetic pool")
    p.add_argument("--tag", default="")
    p.add_argument("--policy", default="{}", help="JSON overriding the setting's policy, e.g. '{\"shrink\": 1.0}'")
    p.add_argument("--quick", action="store_true", help="2 seeds of digits-logreg, arms off,on")
    p.add_argument("--summary-only", action="store_true", help="summarise the finished runs; start none")
    p.add_argument("--child", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arm", default="off")
    args = p.parse_args()
    if args.child:
        print(json.dumps(run_child(args.setting, args.seed, args.arm, args.n, json.loads(args.policy))))
        return
    if args.part == "index":
        sys.path.insert(0, str(Path(__file__).parent))
        from compute import bench_index  # the neighbour-index part kept in benchmarks/compute.py

        RESULTS.mkdir(exist_ok=True)
        out = {"command": " ".join(sys.argv), "date": DATE, "rows": bench_index(args.n)}
        (RESULTS / f"compute_index_{args.n}.json").write_text(json.dumps(out, indent=1))
        return
    if args.quick:
        args.setting, args.seeds, args.arms, args.tag = "digits-logreg", 2, "off,on", args.tag or "-quick"
    arms = [a for a in args.arms.split(",") if a]
    if "off" not in arms or any(a not in ARMS for a in arms):
        raise SystemExit(f"--arms must include 'off' and name arms from {ARMS}")
    RESULTS.mkdir(exist_ok=True)
    name = f"compute_saving_{args.setting}{'' if args.setting.startswith('digits') else f'-{args.n}'}{args.tag}"
    log = RESULTS / f"{name}.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    rows = [r for r in rows if r.get("data_cached", False) or SETTINGS[args.setting]["data"] != "synthetic"]
    done = {(r["seed"], r["arm"]) for r in rows}
    for seed in range(args.seed_offset, args.seed_offset + args.seeds):
        for arm in arms:
            if (seed, arm) in done or args.summary_only:
                continue
            r = run_measured(args, seed, arm)
            rows.append(r)
            with log.open("a") as fh:
                fh.write(json.dumps(r) + "\n")
            print(
                f"seed {seed} {arm:4s} aubc {r['aubc']:.4f} outside CPU {r['outside_cpu_s']:.2f}s "
                f"inside {r['compute']['cpu_s']:.2f}s inferred {r['compute']['records_inferred']:.0f}",
                flush=True,
            )
    wanted = set(range(args.seed_offset, args.seed_offset + args.seeds))
    summary = summarise([r for r in rows if r["seed"] in wanted], arms)
    print_table(summary, arms)
    setting = {**SETTINGS[args.setting], "override": json.loads(args.policy)}
    out = {
        "command": " ".join(sys.argv),
        "date": DATE,
        "setting": setting,
        "arms": {a: next((r["policy"] for r in rows if r["arm"] == a and "policy" in r), None) for a in arms},
        "summary": summary,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
