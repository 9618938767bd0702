"""Labeling benchmark (2): time to finish a batch with a simulated crowd, per allocation policy.

A batch of 100 records (5 classes) is labeled with redundancy 3 by 20 simulated annotators
(alloop.labeling.SimulatedCrowd, virtual clock) whose speed, accuracy and availability vary:

* median seconds per judgement log-uniform in [10, 120], log-normal spread 0.4 around it;
* accuracy uniform in [0.60, 0.95] (a wrong answer is uniform over the other classes);
* 12 annotators online throughout, 5 whose shift ends at a uniform time in [300, 1500] s (a task still
  open then is abandoned and its lease expires), 3 who log in at a uniform time in [200, 1000] s;
* everyone walks away mid-task with probability 0.02 (away 15 min); leases last 300 s;
* the model's predicted class is right for 80 % of the records; 20 gold questions are available.

Every policy sees the same crowd for a seed (seeds 0 … S-1) and the same majority-vote consensus:
alloop's ``Allocator`` (defaults: gold rate 5 %, min accuracy 0.6) vs round-robin dealing, random dealing
and greedy earliest-available (``GreedyAllocator``). Reported: p50 and p95 over seeds of the virtual
seconds from request to the last label, and the mean label accuracy against the truth.

    python benchmarks/labeling_allocation.py              # 40 seeds, ~1 min of CPU
    python benchmarks/labeling_allocation.py --seeds 20 --json benchmarks/results/labeling_allocation.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from alloop.labeling.allocation import Allocator, GreedyAllocator, RandomAllocator, RoundRobinAllocator
from alloop.labeling.crowd import CrowdAnnotator, SimulatedCrowd

N_RECORDS, N_CLASSES, N_ANNOTATORS, REDUNDANCY, N_GOLD = 100, 5, 20, 3, 20


def crowd_spec(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 1])
    truth = {i: int(rng.integers(N_CLASSES)) for i in range(N_RECORDS)}
    gold = {10_000 + g: int(rng.integers(N_CLASSES)) for g in range(N_GOLD)}
    predicted = {
        i: (y if rng.random() < 0.8 else int((y + 1 + rng.integers(N_CLASSES - 1)) % N_CLASSES))
        for i, y in truth.items()
    }
    team = []
    for k in range(N_ANNOTATORS):
        seconds = float(np.exp(rng.uniform(np.log(10), np.log(120))))
        accuracy = float(rng.uniform(0.60, 0.95))
        if k < 12:
            schedule = None
        elif k < 17:
            schedule = [(0.0, float(rng.uniform(300, 1500)))]
        else:
            schedule = [(float(rng.uniform(200, 1000)), 1e9)]
        team.append(
            CrowdAnnotator(
                id=f"a{k:02d}", accuracy=accuracy, seconds=seconds, spread=0.4, schedule=schedule, abandon=0.02
            )
        )
    return {"truth": truth, "gold": gold, "predicted": predicted, "team": team}


POLICIES = {
    "alloop Allocator": lambda seed: Allocator(),
    "round-robin": lambda seed: RoundRobinAllocator(),
    "random": lambda seed: RandomAllocator(seed=seed),
    "greedy earliest-available": lambda seed: GreedyAllocator(),
}


def run_one(policy: str, seed: int) -> dict[str, float]:
    spec = crowd_spec(seed)
    crowd = SimulatedCrowd(
        spec["truth"],
        annotators=spec["team"],
        classes=list(range(N_CLASSES)),
        redundancy=REDUNDANCY,
        allocator=POLICIES[policy](seed),
        gold=spec["gold"],
        predicted=spec["predicted"],
        lease_seconds=300.0,
        seed=seed,
    )
    crowd.request(list(spec["truth"]))
    events = crowd.poll()
    stats = crowd.stats[0]
    assert len(events) == N_RECORDS, (policy, seed, len(events))
    return {"seconds": stats["seconds"], "accuracy": stats["accuracy"], "gold": stats["gold_judgements"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    for policy in POLICIES:
        runs = [run_one(policy, s) for s in range(args.seeds)]
        secs = np.array([r["seconds"] for r in runs])
        acc = np.array([r["accuracy"] for r in runs])
        results[policy] = {
            "p50_seconds": float(np.percentile(secs, 50)),
            "p95_seconds": float(np.percentile(secs, 95)),
            "mean_seconds": float(secs.mean()),
            "accuracy_mean": float(acc.mean()),
            "accuracy_std": float(acc.std()),
            "gold_judgements_mean": float(np.mean([r["gold"] for r in runs])),
            "per_seed_seconds": secs.round(1).tolist(),
        }
    wall = time.perf_counter() - t0
    print(f"{args.seeds} seeds, {wall:.0f} s wall")
    print("| policy | p50 s | p95 s | mean s | label accuracy | gold judgements |")
    print("| --- | --- | --- | --- | --- | --- |")
    for policy, r in results.items():
        print(
            f"| {policy} | {r['p50_seconds']:.0f} | {r['p95_seconds']:.0f} | {r['mean_seconds']:.0f} | "
            f"{r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f} | {r['gold_judgements_mean']:.1f} |"
        )
    mine = results["alloop Allocator"]
    verdict = all(
        mine[q] < results[b][q]
        for b in ("round-robin", "greedy earliest-available")
        for q in ("p50_seconds", "p95_seconds")
    )
    print("target (allocator faster than round-robin and greedy at p50 and p95):", "PASS" if verdict else "FAIL")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "protocol": {
                "records": N_RECORDS, "classes": N_CLASSES, "annotators": N_ANNOTATORS, "redundancy": REDUNDANCY,
                "gold_items": N_GOLD, "seeds": args.seeds, "python": platform.python_version(),
            },
            "results": results,
            "target_met": verdict,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
